//! `tideline reset`: after local LTX files are damaged, a reset lets replication go
//! on with a fresh snapshot, and the replica restores every row the application
//! committed; a dry run removes nothing; a running replicator's state is never reset.

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::common::*;
use crate::replicate::{Guard, insert, wal_db};

/// The local L0 files of `app.db` in directory `d`.
fn local_l0(d: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = fs::read_dir(d.join(".app.db-litestream/ltx/0"))
        .map(|rd| rd.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// Restores `url` with `flags` into a new file in `d`; returns its row count.
fn restored_rows(d: &Path, flags: &[&str], url: &str) -> i64 {
    let out = d.join(format!("restored-{}.db", flags.join("-")));
    let mut args = vec!["restore", "-o", out.to_str().unwrap()];
    args.extend_from_slice(flags);
    args.push(url);
    ok_in(d, &args);
    count_rows(&out)
}

#[test]
fn after_damaged_local_files_a_reset_resumes_with_a_fresh_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let app = wal_db(&d.join("app.db"), 100);
    let url = file_url(&d.join("replica"));
    ok_in(d, &["replicate", "-once", "app.db", &url]);
    insert(&app, 100..200);
    ok_in(d, &["replicate", "-once", "app.db", &url]);

    // The newest local file is the position; damage it as a bad disk would.
    let newest = local_l0(d).pop().expect("a local L0 file");
    fs::write(&newest, b"not an LTX file").unwrap();
    insert(&app, 200..300);
    let out = run_in(d, &["replicate", "-once", "app.db", &url]);
    assert!(
        !out.status.success(),
        "replication went on from a damaged position"
    );

    // A dry run lists the files and removes none.
    let before = local_l0(d);
    let dry = ok_in(d, &["reset", "-dry-run", "app.db"]);
    assert!(dry.contains(newest.to_str().unwrap()), "{dry}");
    assert!(dry.contains("No files were removed."), "{dry}");
    assert_eq!(local_l0(d), before);

    let done = ok_in(d, &["reset", "app.db"]);
    assert!(done.contains("Reset complete"), "{done}");
    assert!(!d.join(".app.db-litestream/ltx").exists());

    ok_in(d, &["replicate", "-once", "app.db", &url]);
    insert(&app, 300..350);
    ok_in(d, &["replicate", "-once", "app.db", &url]);
    assert_eq!(restored_rows(d, &["-integrity-check", "full"], &url), 350);
    // The replica's history before the reset stays restorable: TXID 2 held 200 rows.
    assert_eq!(restored_rows(d, &["-txid", "0000000000000002"], &url), 200);
    drop(app);
}

#[test]
fn a_running_replicator_s_state_is_not_reset() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let _app = wal_db(&d.join("app.db"), 10);
    let url = file_url(&d.join("replica"));
    let _guard = Guard(
        bin()
            .current_dir(d)
            .args(["replicate", "app.db", &url])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let started = wait_for(Duration::from_secs(20), || {
        (!local_l0(d).is_empty()).then_some(())
    });
    assert!(started.is_some(), "the replicator never captured");
    let out = run_in(d, &["reset", "app.db"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("already being replicated"),
        "{}",
        stderr(&out)
    );
    assert!(
        !local_l0(d).is_empty(),
        "files were removed under a replicator"
    );
}

#[test]
fn nothing_to_reset_and_a_missing_database_are_said_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let _app = wal_db(&d.join("app.db"), 1);
    let out = ok_in(d, &["reset", "app.db"]);
    assert!(out.contains("No local state to reset"), "{out}");
    let out = run_in(d, &["reset", "gone.db"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
}
