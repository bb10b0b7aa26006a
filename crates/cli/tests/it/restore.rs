//! `tideline restore` against folder replicas written with known TXIDs and times.

use std::fs;
use std::time::Duration;

use crate::common::*;

#[test]
fn restores_latest_by_txid_and_by_timestamp_byte_identically() {
    let s = two_states();
    let d = s.dir.path();
    let url = file_url(&s.replica);

    ok_in(d, &["restore", "-o", "latest.db", &url]);
    assert_eq!(fs::read(d.join("latest.db")).unwrap(), s.v2);

    ok_in(
        d,
        &["restore", "-o", "tx1.db", "-txid", "0000000000000001", &url],
    );
    assert_eq!(fs::read(d.join("tx1.db")).unwrap(), s.v1);

    // Between the two files: the first state. After both: the latest (Litestream would
    // refuse a time past its newest file).
    let between = rfc3339(s.t1 + Duration::from_secs(60));
    ok_in(d, &["restore", "-o", "t1.db", "-timestamp", &between, &url]);
    assert_eq!(fs::read(d.join("t1.db")).unwrap(), s.v1);
    let after = rfc3339(s.t2 + Duration::from_secs(60));
    ok_in(d, &["restore", "-o", "t2.db", "-timestamp", &after, &url]);
    assert_eq!(fs::read(d.join("t2.db")).unwrap(), s.v2);
    // A numeric offset names the same instant.
    ok_in(
        d,
        &[
            "restore",
            "-o",
            "t3.db",
            "-timestamp",
            "2999-01-01T02:00:00+02:00",
            &url,
        ],
    );
    assert_eq!(fs::read(d.join("t3.db")).unwrap(), s.v2);
}

#[test]
fn a_timestamp_before_every_backup_names_the_oldest_restore_point() {
    let s = two_states();
    let before = rfc3339(s.t1 - Duration::from_secs(60));
    let out = run_in(
        s.dir.path(),
        &[
            "restore",
            "-o",
            "x.db",
            "-timestamp",
            &before,
            &file_url(&s.replica),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("no backup exists before"), "{err}");
    assert!(err.contains(&rfc3339(s.t1)[..19]), "{err}");
    assert!(!s.dir.path().join("x.db").exists());
}

#[test]
fn go_style_flag_spellings_all_work() {
    let s = two_states();
    let d = s.dir.path();
    let url = file_url(&s.replica);
    for (i, args) in [
        vec!["-o", "a.db", "-txid", "0000000000000001"],
        vec!["-o", "b.db", "--txid", "0000000000000001"],
        vec!["-o", "c.db", "-txid=0000000000000001"],
        vec!["-o=d.db", "--txid=0000000000000001", "-parallelism", "4"],
    ]
    .into_iter()
    .enumerate()
    {
        let mut full = vec!["restore"];
        full.extend(&args);
        full.push(&url);
        ok_in(d, &full);
        let name = ["a.db", "b.db", "c.db", "d.db"][i];
        assert_eq!(fs::read(d.join(name)).unwrap(), s.v1, "{args:?}");
    }
}

#[test]
fn dry_run_prints_the_plan_and_restores_nothing() {
    let s = two_states();
    let d = s.dir.path();
    let url = file_url(&s.replica);
    let text = ok_in(d, &["restore", "-dry-run", "-o", "x.db", &url]);
    assert!(
        text.contains("0000000000000001-0000000000000001.ltx"),
        "{text}"
    );
    assert!(
        text.contains("0000000000000002-0000000000000002.ltx"),
        "{text}"
    );
    assert!(text.contains("to TXID 0000000000000002"), "{text}");
    assert!(!d.join("x.db").exists());

    let json = ok_in(
        d,
        &[
            "restore",
            "-dry-run",
            "-json",
            "-txid",
            "0000000000000001",
            "-o",
            "x.db",
            &url,
        ],
    );
    let plan: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(plan["txid"], "0000000000000001");
    let files = plan["files"].as_array().unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0]["level"], 0);
    assert_eq!(files[0]["min_txid"], "0000000000000001");
    assert_eq!(files[0]["max_txid"], "0000000000000001");
    assert_eq!(
        files[0]["size"].as_u64().unwrap(),
        fs::metadata(
            s.replica
                .join("ltx/0/0000000000000001-0000000000000001.ltx")
        )
        .unwrap()
        .len()
    );
    assert!(
        files[0]["created_at"]
            .as_str()
            .unwrap()
            .starts_with(&rfc3339(s.t1)[..19])
    );
    assert!(!d.join("x.db").exists());
}

#[test]
fn json_summary() {
    let s = two_states();
    let d = s.dir.path();
    let json = ok_in(
        d,
        &[
            "restore",
            "-json",
            "-integrity-check",
            "full",
            "-o",
            "x.db",
            &file_url(&s.replica),
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["txid"], "0000000000000002");
    assert_eq!(v["db_path"], "x.db");
    assert_eq!(v["integrity_check"], "full");
    assert!(v["duration_ms"].is_u64());
    assert!(v["replica"].as_str().unwrap().starts_with("file://"));
    assert_eq!(fs::read(d.join("x.db")).unwrap(), s.v2);
    // The check's own read-only connection leaves nothing behind.
    assert!(!d.join("x.db-wal").exists() && !d.join("x.db-shm").exists());
}

#[test]
fn an_existing_output_or_sidecar_is_refused_without_force() {
    let s = two_states();
    let d = s.dir.path();
    let url = file_url(&s.replica);
    fs::write(d.join("x.db"), b"precious").unwrap();
    let out = run_in(d, &["restore", "-o", "x.db", &url]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("x.db already exists"), "{err}");
    assert!(err.contains("-force") && err.contains("-o"), "{err}");
    assert_eq!(fs::read(d.join("x.db")).unwrap(), b"precious");

    // An empty output is fine to replace, but not next to a stale -wal.
    fs::write(d.join("y.db"), b"").unwrap();
    fs::write(d.join("y.db-wal"), b"stale").unwrap();
    let out = run_in(d, &["restore", "-o", "y.db", &url]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("y.db-wal exists") && err.contains("-force"),
        "{err}"
    );

    // -force overwrites and removes the sidecars.
    fs::write(d.join("x.db-shm"), b"stale").unwrap();
    fs::write(d.join("x.db-journal"), b"stale").unwrap();
    ok_in(d, &["restore", "-force", "-o", "x.db", &url]);
    assert_eq!(fs::read(d.join("x.db")).unwrap(), s.v2);
    assert!(!d.join("x.db-shm").exists() && !d.join("x.db-journal").exists());
    ok_in(
        d,
        &[
            "restore",
            "-force",
            "-integrity-check",
            "quick",
            "-o",
            "y.db",
            &url,
        ],
    );
    assert_eq!(fs::read(d.join("y.db")).unwrap(), s.v2);
    assert!(!d.join("y.db-wal").exists());
}

#[test]
fn if_db_not_exists_skips_an_existing_output() {
    let s = two_states();
    let d = s.dir.path();
    fs::write(d.join("x.db"), b"precious").unwrap();
    ok_in(
        d,
        &[
            "restore",
            "-if-db-not-exists",
            "-o",
            "x.db",
            &file_url(&s.replica),
        ],
    );
    assert_eq!(fs::read(d.join("x.db")).unwrap(), b"precious");
    ok_in(
        d,
        &[
            "restore",
            "-if-db-not-exists",
            "-o",
            "new.db",
            &file_url(&s.replica),
        ],
    );
    assert_eq!(fs::read(d.join("new.db")).unwrap(), s.v2);
}

#[test]
fn if_replica_exists_succeeds_without_a_backup() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let empty = file_url(&d.join("nothing-here"));
    let out = run_in(d, &["restore", "-o", "x.db", &empty]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("holds no backup") && err.contains("-if-replica-exists"),
        "{err}"
    );

    ok_in(d, &["restore", "-if-replica-exists", "-o", "x.db", &empty]);
    assert!(!d.join("x.db").exists());

    // A TXID past the end of a real replica is "no matching backup" too.
    let s = two_states();
    let url = file_url(&s.replica);
    ok_in(
        d,
        &[
            "restore",
            "-if-replica-exists",
            "-txid",
            "0000000000000009",
            "-o",
            "y.db",
            &url,
        ],
    );
    assert!(!d.join("y.db").exists());
    let out = run_in(
        d,
        &["restore", "-txid", "0000000000000009", "-o", "y.db", &url],
    );
    assert!(
        stderr(&out).contains("no matching backup files available"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn usage_errors_exit_2_with_a_clear_message() {
    let s = two_states();
    let d = s.dir.path();
    let url = file_url(&s.replica);
    let out = run_in(d, &["restore", "-o", "x.db", "-txid", "3", &url]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("16 hex digits"), "{}", stderr(&out));

    let out = run_in(
        d,
        &[
            "restore",
            "-o",
            "x.db",
            "-txid",
            "0000000000000001",
            "-timestamp",
            "2026-01-01T00:00:00Z",
            &url,
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot be used with"),
        "{}",
        stderr(&out)
    );

    let out = run_in(
        d,
        &["restore", "-o", "x.db", "-timestamp", "yesterday", &url],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("RFC 3339"), "{}", stderr(&out));

    // A replica URL needs -o, and does not go with -config.
    let out = run_in(d, &["restore", &url]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("needs an output path"),
        "{}",
        stderr(&out)
    );
    let out = run_in(d, &["restore", "-config", "x.yml", "-o", "x.db", &url]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("-config"), "{}", stderr(&out));
    assert!(!d.join("x.db").exists());
}

#[test]
fn restores_a_configured_database_to_its_own_path() {
    let s = two_states();
    let d = s.dir.path();
    fs::write(
        d.join("litestream.yml"),
        format!(
            "dbs:\n  - path: app.db\n    replica:\n      type: file\n      path: {}\n",
            s.replica.display()
        ),
    )
    .unwrap();
    ok_in(d, &["restore", "-config", "litestream.yml", "app.db"]);
    assert_eq!(fs::read(d.join("app.db")).unwrap(), s.v2);
    // $LITESTREAM_CONFIG is the default config, with -o to another path.
    let out = crate::common::bin()
        .current_dir(d)
        .env("LITESTREAM_CONFIG", d.join("litestream.yml"))
        .args([
            "restore",
            "-o",
            "copy.db",
            "-txid",
            "0000000000000001",
            "app.db",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fs::read(d.join("copy.db")).unwrap(), s.v1);

    let out = run_in(
        d,
        &[
            "restore",
            "-config",
            "litestream.yml",
            "-o",
            "z.db",
            "other.db",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("other.db is not in") && err.contains("app.db"),
        "{err}"
    );
}

#[test]
fn force_with_a_failing_integrity_check_keeps_the_old_database() {
    let s = two_states();
    let d = s.dir.path();
    // A replica whose checksums are valid but whose database is damaged: page 2 (the
    // table's root) starts with garbage instead of a b-tree page header.
    let mut damaged = s.v2.clone();
    let ps = usize::from(u16::from_be_bytes([damaged[16], damaged[17]]));
    damaged[ps..ps + 100].fill(0xA5);
    let bad = d.join("bad");
    write_ltx(&bad, 0, 1, 1, &damaged, s.t1);
    fs::write(d.join("x.db"), &s.v1).unwrap();
    fs::write(d.join("x.db-wal"), b"the old database's frames").unwrap();

    let out = run_in(
        d,
        &[
            "restore",
            "-force",
            "-integrity-check",
            "full",
            "-o",
            "x.db",
            &file_url(&bad),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("integrity_check") && err.contains("x.db was left untouched"),
        "{err}"
    );
    // Checked before anything was touched: the old database and its WAL are as they
    // were, and no temporary file is left.
    assert_eq!(fs::read(d.join("x.db")).unwrap(), s.v1);
    assert_eq!(
        fs::read(d.join("x.db-wal")).unwrap(),
        b"the old database's frames"
    );
    assert!(!d.join("x.db.tmp").exists());

    // The same with a good replica replaces both.
    ok_in(
        d,
        &[
            "restore",
            "-force",
            "-integrity-check",
            "full",
            "-o",
            "x.db",
            &file_url(&s.replica),
        ],
    );
    assert_eq!(fs::read(d.join("x.db")).unwrap(), s.v2);
    assert!(!d.join("x.db-wal").exists() && !d.join("x.db.tmp").exists());
}

#[test]
fn restore_if_db_not_exists_refuses_a_stale_wal_of_the_missing_database() {
    let s = two_states();
    let d = s.dir.path();
    let url = file_url(&s.replica);
    fs::write(d.join("app.db-wal"), b"frames of a deleted database").unwrap();
    let out = run_in(
        d,
        &[
            "replicate",
            "-once",
            "-restore-if-db-not-exists",
            "app.db",
            &url,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("app.db-wal exists"), "{err}");
    assert!(!d.join("app.db").exists());

    fs::remove_file(d.join("app.db-wal")).unwrap();
    let out = run_in(
        d,
        &[
            "replicate",
            "-once",
            "-restore-if-db-not-exists",
            "app.db",
            &url,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(count_rows(&d.join("app.db")), 60);
}
