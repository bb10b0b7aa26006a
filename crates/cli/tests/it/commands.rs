//! `tideline ltx`, `databases`, `status` and `version`.

use std::fs;

use crate::common::*;

#[test]
fn ltx_lists_levels_sorted_as_json_and_text() {
    let s = two_states();
    let d = s.dir.path();
    // A compaction and a snapshot too, so levels and sorting show.
    write_ltx(&s.replica, 9, 1, 2, &s.v2, s.t2);
    write_ltx(&s.replica, 1, 1, 2, &s.v2, s.t2);
    let url = file_url(&s.replica);

    let json = ok_in(d, &["ltx", "-level", "all", "-json", &url]);
    let files: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    let seen: Vec<(u64, &str, &str)> = files
        .iter()
        .map(|f| {
            (
                f["level"].as_u64().unwrap(),
                f["min_txid"].as_str().unwrap(),
                f["max_txid"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (0, "0000000000000001", "0000000000000001"),
            (0, "0000000000000002", "0000000000000002"),
            (1, "0000000000000001", "0000000000000002"),
            (9, "0000000000000001", "0000000000000002"),
        ]
    );
    assert!(
        files[0]["created_at"]
            .as_str()
            .unwrap()
            .starts_with(&rfc3339(s.t1)[..19])
    );
    assert!(files.iter().all(|f| f["size"].as_u64().unwrap() > 100));

    // Default: level 0 only, as a table.
    let text = ok_in(d, &["ltx", &url]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].starts_with("level") && lines[0].contains("created"),
        "{text}"
    );
    assert!(lines[2].contains("0000000000000002"), "{text}");
    let nine = ok_in(d, &["ltx", "--level=9", &url]);
    assert_eq!(nine.lines().count(), 2, "{nine}");

    let out = run_in(d, &["ltx", "-level", "10", &url]);
    assert_eq!(out.status.code(), Some(2));
}

fn config_with_two_dbs(dir: &std::path::Path) {
    fs::write(
        dir.join("litestream.yml"),
        "access-key-id: AKIDEXAMPLE\n\
         secret-access-key: VERYSECRETKEY\n\
         dbs:\n\
         \x20 - path: one.db\n\
         \x20   replica:\n\
         \x20     url: file:///backups/one\n\
         \x20 - path: two.db\n\
         \x20   replica:\n\
         \x20     url: s3://bucket/two?endpoint=http://127.0.0.1:9000&region=us-east-1\n",
    )
    .unwrap();
}

#[test]
fn databases_lists_the_config_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config_with_two_dbs(d);
    let json = ok_in(d, &["databases", "-config", "litestream.yml", "-json"]);
    assert!(!json.contains("SECRET") && !json.contains("AKID"), "{json}");
    let dbs: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    assert_eq!(dbs.len(), 2);
    assert_eq!(dbs[0]["path"], d.join("one.db").display().to_string());
    assert_eq!(dbs[0]["replica"], "/backups/one");
    assert_eq!(dbs[0]["replica_type"], "file");
    assert_eq!(dbs[1]["replica"], "s3://bucket/two");
    assert_eq!(dbs[1]["replica_type"], "s3");

    let text = ok_in(d, &["databases", "--config", "litestream.yml"]);
    assert!(text.starts_with("path"), "{text}");
    assert!(
        text.contains("one.db") && text.contains("s3://bucket/two"),
        "{text}"
    );
    assert!(!text.contains("SECRET"), "{text}");

    let out = run_in(d, &["databases", "-config", "missing.yml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("missing.yml"), "{}", stderr(&out));
}

#[test]
fn status_shows_local_and_replica_positions() {
    let s = two_states();
    let d = s.dir.path();
    fs::copy(d.join("src.db"), d.join("app.db")).unwrap();
    // The local position is the newest L0 file in the meta directory: TXID 3 here,
    // which the replica (at 2) does not have yet.
    write_ltx(&d.join(".app.db-litestream"), 0, 3, 3, &s.v2, s.t2);
    fs::write(
        d.join("litestream.yml"),
        format!(
            "dbs:\n  - path: app.db\n    replica:\n      path: {}\n  - path: gone.db\n    replica:\n      path: {}\n",
            s.replica.display(),
            d.join("empty").display()
        ),
    )
    .unwrap();
    let json = ok_in(d, &["status", "-config", "litestream.yml", "-json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["local_txid"], "0000000000000003");
    assert_eq!(rows[0]["replica_txid"], "0000000000000002");
    assert_eq!(rows[0]["behind"], true);
    assert_eq!(rows[0]["db_size"].as_u64().unwrap(), s.v2.len() as u64);
    assert_eq!(rows[0]["wal_size"], 0);
    assert_eq!(rows[1]["status"], "database missing");
    assert_eq!(rows[1]["local_txid"], serde_json::Value::Null);

    let text = ok_in(d, &["status", "-config", "litestream.yml"]);
    assert!(text.contains("replica behind"), "{text}");
}

#[test]
fn version() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok_in(dir.path(), &["version"]);
    assert_eq!(
        out.trim(),
        format!("tideline {}", env!("CARGO_PKG_VERSION"))
    );
    let verbose = ok_in(dir.path(), &["version", "-verbose"]);
    assert!(
        verbose.contains("compatible with Litestream 0.5 replicas"),
        "{verbose}"
    );
    let flag = ok_in(dir.path(), &["-version"]);
    assert!(flag.contains(env!("CARGO_PKG_VERSION")), "{flag}");
}

#[test]
fn unknown_commands_and_flags_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(run_in(dir.path(), &["frobnicate"]).status.code(), Some(2));
    assert_eq!(
        run_in(dir.path(), &["restore", "-bogus", "x"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        run_in(dir.path(), &["restore", "-help"]).status.code(),
        Some(0)
    );
}

#[test]
fn status_and_replicate_say_when_the_destination_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_db(&d.join("app.db"), 0..10);
    let replica = d.join("drive").join("app");
    fs::write(
        d.join("litestream.yml"),
        format!(
            "dbs:\n  - path: app.db\n    replica:\n      path: {}\n",
            replica.display()
        ),
    )
    .unwrap();
    ok_in(d, &["replicate", "-once", "-config", "litestream.yml"]);
    let json = ok_in(d, &["status", "-config", "litestream.yml", "-json"]);
    assert!(json.contains("in sync"), "{json}");

    // The drive is not mounted: status says so, and replicate -once refuses to write.
    fs::rename(d.join("drive"), d.join("drive-unmounted")).unwrap();
    let json = ok_in(d, &["status", "-config", "litestream.yml", "-json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    let status = rows[0]["status"].as_str().unwrap();
    assert!(status.contains("is the drive connected?"), "{status}");
    let out = run_in(d, &["replicate", "-once", "-config", "litestream.yml"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("destination missing"),
        "{}",
        stderr(&out)
    );
    assert!(!replica.exists(), "nothing was written where the drive was");
}
