//! Directory replication (`dir:` with `pattern`, `recursive`, `watch`): the real
//! binary follows a folder of databases as they are created and removed, each
//! replicated under the directory replica's path as Litestream lays it out, and each
//! restored row for row.

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::common::{bin, count_rows, file_url, ok_in, run_in, stderr, wait_for};
use crate::replicate::{Guard, insert, wal_db};

/// Rows of a restore of `url` now, if it restores.
fn restored_rows(d: &Path, url: &str, n: &mut u32) -> Option<i64> {
    *n += 1;
    let out = d.join(format!("probe-{n}.db"));
    let ok = run_in(d, &["restore", "-o", out.to_str().unwrap(), url]);
    ok.status.success().then(|| count_rows(&out))
}

#[cfg(unix)]
#[test]
fn a_watched_directory_is_followed_as_databases_come_and_go() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    fs::create_dir_all(data.join("sub")).unwrap();
    let a = wal_db(&data.join("a.db"), 100);
    let b = wal_db(&data.join("sub/b.db"), 50);
    // Not the pattern, and not a database: neither is replicated.
    drop(wal_db(&data.join("c.sqlite"), 10));
    fs::write(data.join("notes.db"), "not a database").unwrap();
    let replica = d.join("replica");
    fs::write(
        d.join("litestream.yml"),
        format!(
            "dbs:\n  - dir: data\n    pattern: \"*.db\"\n    recursive: true\n    watch: true\n    \
             monitor-interval: 100ms\n    replica:\n      path: {}\n      sync-interval: 100ms\n",
            replica.display()
        ),
    )
    .unwrap();
    let log_path = d.join("replicate.log");
    let mut guard = Guard(
        bin()
            .current_dir(d)
            .args(["replicate", "-config", "litestream.yml"])
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap(),
    );
    let log = || fs::read_to_string(&log_path).unwrap_or_default();
    let mut n = 0;
    let url = |rel: &str| file_url(&replica.join(rel));

    // Those found at start, each under the replica's path + its path in the folder.
    for (rel, want) in [("a.db", 100), ("sub/b.db", 50)] {
        let got = wait_for(Duration::from_secs(20), || {
            restored_rows(d, &url(rel), &mut n).filter(|r| *r == want)
        });
        assert_eq!(got, Some(want), "{rel} never arrived:\n{}", log());
    }

    // A database created while running is found by its file events and replicated,
    // its later writes too; one in a new sub-folder as well.
    let new = wal_db(&data.join("new.db"), 30);
    fs::create_dir(data.join("later")).unwrap();
    let deep = wal_db(&data.join("later/deep.db"), 7);
    for (rel, want) in [("new.db", 30), ("later/deep.db", 7)] {
        let got = wait_for(Duration::from_secs(20), || {
            restored_rows(d, &url(rel), &mut n).filter(|r| *r == want)
        });
        assert_eq!(got, Some(want), "{rel} created while running:\n{}", log());
    }
    insert(&new, 30..80);
    insert(&b, 50..60);
    for (rel, want) in [("new.db", 80), ("sub/b.db", 60)] {
        let got = wait_for(Duration::from_secs(20), || {
            restored_rows(d, &url(rel), &mut n).filter(|r| *r == want)
        });
        assert_eq!(got, Some(want), "writes to {rel}:\n{}", log());
    }

    // A removed database stops (its replica stays restorable).
    insert(&a, 100..120);
    let got = wait_for(Duration::from_secs(20), || {
        restored_rows(d, &url("a.db"), &mut n).filter(|r| *r == 120)
    });
    assert_eq!(got, Some(120), "{}", log());
    drop(a);
    for f in ["a.db", "a.db-wal", "a.db-shm"] {
        let _ = fs::remove_file(data.join(f));
    }
    let stopped = wait_for(Duration::from_secs(20), || {
        log()
            .lines()
            .any(|l| l.contains("a.db") && l.contains("removed from its directory"))
            .then_some(())
    });
    assert!(stopped.is_some(), "a.db was not stopped:\n{}", log());
    assert_eq!(restored_rows(d, &url("a.db"), &mut n), Some(120));
    assert!(!replica.join("c.sqlite").exists() && !replica.join("notes.db").exists());

    // Stops cleanly on SIGTERM.
    let pid = guard.0.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = wait_for(Duration::from_secs(30), || guard.0.try_wait().unwrap())
        .unwrap_or_else(|| panic!("no exit after SIGTERM:\n{}", log()));
    assert!(status.success(), "{status:?}\n{}", log());
    assert!(!log().contains("ERROR"), "{}", log());

    // The other commands know a directory's databases by their paths.
    let out = d.join("by-path.db");
    ok_in(
        d,
        &[
            "restore",
            "-config",
            "litestream.yml",
            "-o",
            out.to_str().unwrap(),
            "data/sub/b.db",
        ],
    );
    assert_eq!(count_rows(&out), 60);
    let listed = ok_in(d, &["databases", "-config", "litestream.yml"]);
    for want in ["new.db", "sub/b.db", "later/deep.db"] {
        assert!(listed.contains(want), "{want} not in:\n{listed}");
    }
    assert!(
        !listed.contains("c.sqlite") && !listed.contains("notes.db"),
        "{listed}"
    );
    drop((b, new, deep));
}

#[test]
fn directory_configs_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::create_dir(d.join("empty")).unwrap();
    let cases = [
        // No database found and nothing to wait for: said, with the fix.
        (
            "dbs:\n  - dir: empty\n    pattern: \"*.db\"\n    replica:\n      path: r\n",
            "no SQLite databases found in directory",
        ),
        (
            "dbs:\n  - dir: missing\n    pattern: \"*.db\"\n    replica:\n      path: r\n",
            "cannot read the directory",
        ),
        (
            "dbs:\n  - dir: empty\n    replica:\n      path: r\n",
            "'pattern' is required when using 'dir'",
        ),
        (
            "dbs:\n  - path: a.db\n    watch: true\n    replica:\n      path: r\n",
            "'watch' can only be enabled with a directory",
        ),
        (
            "dbs:\n  - dir: empty\n    pattern: \"*.db\"\n    replica:\n      url: nats://127.0.0.1:4222/b\n",
            "NATS replica has no path",
        ),
    ];
    for (config, want) in cases {
        fs::write(d.join("litestream.yml"), config).unwrap();
        let out = run_in(d, &["replicate", "-config", "litestream.yml", "-once"]);
        assert!(!out.status.success(), "{config}");
        assert!(stderr(&out).contains(want), "{config}: {}", stderr(&out));
    }
}
