//! `tideline replicate`, end to end: a replica written by `replicate` restores
//! byte-identically, and a running replicator picks up writes and stops cleanly on
//! SIGTERM.

use std::fs;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::common::*;
use rusqlite::Connection;

/// A WAL-mode database with `rows` rows; the connection stays open so the WAL is kept.
pub(crate) fn wal_db(path: &Path, rows: i64) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.pragma_update(None, "journal_mode", "wal").unwrap();
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);")
        .unwrap();
    insert(&conn, 0..rows);
    conn
}

pub(crate) fn insert(conn: &Connection, ids: std::ops::Range<i64>) {
    let tx = conn.unchecked_transaction().unwrap();
    for i in ids {
        tx.execute(
            "INSERT INTO t (id, v) VALUES (?1, ?2)",
            rusqlite::params![i, format!("row {i} {}", "y".repeat(200))],
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

#[test]
fn replicate_once_then_restore_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("app.db");
    let app = wal_db(&db, 500);
    let url = file_url(&d.join("replica"));

    ok_in(d, &["replicate", "-once", "app.db", &url]);
    // Another write and another pass: the replica continues at TXID 2.
    insert(&app, 500..700);
    ok_in(d, &["replicate", "-once", "app.db", &url]);
    let listing = ok_in(d, &["ltx", "-level", "all", "-json", &url]);
    let files: Vec<serde_json::Value> = serde_json::from_str(&listing).unwrap();
    assert!(files.len() >= 2, "{listing}");

    // Closing the last connection checkpoints the WAL into the file.
    drop(app);
    assert!(!d.join("app.db-wal").exists());
    ok_in(
        d,
        &[
            "restore",
            "-o",
            "restored.db",
            "-integrity-check",
            "full",
            &url,
        ],
    );
    assert_eq!(
        fs::read(d.join("restored.db")).unwrap(),
        fs::read(&db).unwrap()
    );
    assert_eq!(count_rows(&d.join("restored.db")), 700);

    // The first TXID is the state after the first pass.
    ok_in(
        d,
        &[
            "restore",
            "-o",
            "first.db",
            "-txid",
            "0000000000000001",
            &url,
        ],
    );
    assert_eq!(count_rows(&d.join("first.db")), 500);
}

#[test]
fn replicate_flag_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = run_in(
        d,
        &["replicate", "-once", "-exec", "true", "app.db", "file:///x"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("-once"), "{}", stderr(&out));
    let out = run_in(d, &["replicate", "app.db"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("REPLICA_URL"), "{}", stderr(&out));
    let out = run_in(d, &["replicate", "-force-snapshot", "app.db", "file:///x"]);
    assert!(stderr(&out).contains("-once"), "{}", stderr(&out));
    let out = run_in(d, &["replicate", "-once", "missing.db", "file:///x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("missing.db"), "{}", stderr(&out));
    fs::write(d.join("empty.yml"), "dbs: []\n").unwrap();
    let out = run_in(d, &["replicate", "-config", "empty.yml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no databases"), "{}", stderr(&out));
}

/// Kills the child on drop, so a failing test leaves no process behind.
pub(crate) struct Guard(pub(crate) Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(unix)]
#[test]
fn replicate_picks_up_writes_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let app = wal_db(&d.join("app.db"), 100);
    let replica = d.join("replica");
    fs::write(
        d.join("litestream.yml"),
        format!(
            "dbs:\n  - path: app.db\n    monitor-interval: 100ms\n    replica:\n      \
             path: {}\n      sync-interval: 100ms\n",
            replica.display()
        ),
    )
    .unwrap();
    let log = fs::File::create(d.join("replicate.log")).unwrap();
    let mut guard = Guard(
        bin()
            .current_dir(d)
            .args(["replicate", "-config", "litestream.yml"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let url = file_url(&replica);
    let log_text = || fs::read_to_string(d.join("replicate.log")).unwrap_or_default();

    // Rows restored from the replica right now (None while it has nothing).
    let mut attempt = 0;
    let mut replica_rows = || {
        attempt += 1;
        let out = d.join(format!("check-{attempt}.db"));
        let ok = run_in(d, &["restore", "-o", out.to_str().unwrap(), &url]);
        ok.status.success().then(|| count_rows(&out))
    };
    let first = wait_for(Duration::from_secs(20), || {
        replica_rows().filter(|n| *n == 100)
    });
    assert_eq!(
        first,
        Some(100),
        "initial sync never arrived:\n{}",
        log_text()
    );

    // Writes made while it runs reach the replica.
    for batch in 0..5 {
        insert(&app, 100 + batch * 50..150 + batch * 50);
        std::thread::sleep(Duration::from_millis(150));
    }
    let caught_up = wait_for(Duration::from_secs(20), || {
        replica_rows().filter(|n| *n == 350)
    });
    assert_eq!(
        caught_up,
        Some(350),
        "writes never arrived:\n{}",
        log_text()
    );

    // SIGTERM: a graceful stop with status 0.
    let pid = guard.0.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = wait_for(Duration::from_secs(20), || guard.0.try_wait().unwrap());
    let status = status.unwrap_or_else(|| panic!("no exit after SIGTERM:\n{}", log_text()));
    assert!(status.success(), "{status:?}\n{}", log_text());
    let text = log_text();
    assert!(text.contains("SIGTERM received"), "{text}");
    assert!(!text.contains("ERROR"), "{text}");
    drop(app);
}

#[cfg(unix)]
#[test]
fn exec_runs_alongside_and_its_exit_code_is_passed_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let _app = wal_db(&d.join("app.db"), 10);
    let url = file_url(&d.join("replica"));
    let out = bin()
        .current_dir(d)
        .args([
            "replicate",
            "-exec",
            "echo started > exec.txt; exit 7",
            "app.db",
            &url,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert_eq!(
        fs::read_to_string(d.join("exec.txt")).unwrap().trim(),
        "started"
    );
    // The final sync ran before exiting: the replica holds the database.
    ok_in(d, &["restore", "-o", "r.db", &url]);
    assert_eq!(count_rows(&d.join("r.db")), 10);
}

#[cfg(unix)]
#[test]
fn sigterm_is_forwarded_to_the_exec_command_before_shutting_down() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let _app = wal_db(&d.join("app.db"), 10);
    let url = file_url(&d.join("replica"));
    let log = fs::File::create(d.join("replicate.log")).unwrap();
    // `exec` so the shell is replaced by sleep and the signal reaches it directly.
    let mut guard = Guard(
        bin()
            .current_dir(d)
            .args(["replicate", "-exec", "exec sleep 60", "app.db", &url])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let log_text = || fs::read_to_string(d.join("replicate.log")).unwrap_or_default();
    let started = wait_for(Duration::from_secs(20), || {
        log_text()
            .contains("started the exec command")
            .then_some(())
    });
    assert!(
        started.is_some(),
        "exec command never started:\n{}",
        log_text()
    );
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &guard.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = wait_for(Duration::from_secs(20), || guard.0.try_wait().unwrap())
        .unwrap_or_else(|| panic!("no exit after SIGTERM:\n{}", log_text()));
    assert!(status.success(), "{status:?}\n{}", log_text());
    assert!(
        log_text().contains("sending SIGTERM to the exec command"),
        "{}",
        log_text()
    );
}

#[test]
fn replicate_once_force_snapshot_and_enforce_retention() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let app = wal_db(&d.join("app.db"), 100);
    let replica = d.join("replica");
    let config = d.join("litestream.yml");
    fs::write(
        &config,
        format!(
            "snapshot:\n  interval: 24h\n  retention: 1s\ndbs:\n  - path: {}\n    replica:\n      type: file\n      path: {}\n",
            d.join("app.db").display(),
            replica.display()
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let snapshots = || -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(replica.join("ltx/9"))
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().into_string().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    ok_in(d, &["replicate", "-once", "-config", cfg]);
    assert!(
        snapshots().is_empty(),
        "no snapshot without -force-snapshot"
    );
    insert(&app, 100..200);
    ok_in(
        d,
        &["replicate", "-once", "-force-snapshot", "-config", cfg],
    );
    assert_eq!(
        snapshots(),
        ["0000000000000001-0000000000000002.ltx"],
        "a snapshot of TXID 2"
    );
    insert(&app, 200..300);
    ok_in(
        d,
        &["replicate", "-once", "-force-snapshot", "-config", cfg],
    );
    assert_eq!(snapshots().len(), 2);
    // Both are past the 1 s retention now; the newest is always kept.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = ok_in(
        d,
        &["replicate", "-once", "-enforce-retention", "-config", cfg],
    );
    let _ = out;
    assert_eq!(snapshots(), ["0000000000000001-0000000000000003.ltx"]);
    // The snapshot restores the latest state.
    ok_in(
        d,
        &[
            "restore",
            "-o",
            "r.db",
            "-config",
            cfg,
            "-txid",
            "0000000000000003",
            d.join("app.db").to_str().unwrap(),
        ],
    );
    assert_eq!(count_rows(&d.join("r.db")), 300);
}
