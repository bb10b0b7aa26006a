//! Directory replication (`dir:`) against Litestream 0.5.17: the same config file,
//! replicated by either tool, gives the same replica layout (one replica per database
//! under the directory replica's path), and each tool restores every database the
//! other replicated, row for row.

use std::fs;
use std::path::{Path, PathBuf};

use tideline_e2e::{Litestream, app, litestream, tideline_bin, wait_restored, write};

/// A `dir:` config for `data` (recursive, watched) replicated to `replica`.
fn dir_config(d: &Path, name: &str, replica: &Path) -> PathBuf {
    let path = d.join(name);
    fs::write(
        &path,
        format!(
            "dbs:\n  - dir: {}\n    pattern: \"*.db\"\n    recursive: true\n    watch: true\n    \
             monitor-interval: 100ms\n    replica:\n      type: file\n      path: {}\n      \
             sync-interval: 100ms\n",
            d.join("data").display(),
            replica.display()
        ),
    )
    .unwrap();
    path
}

/// The databases' folders in a directory replica (`a.db`, `sub/b.db`).
fn replica_dbs(replica: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![replica.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                if e.path().join("ltx").is_dir() {
                    let rel = e.path().strip_prefix(replica).unwrap().to_owned();
                    out.push(rel.to_string_lossy().into_owned());
                } else {
                    stack.push(e.path());
                }
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_same_directory_config_replicated_by_either_tool_is_restored_by_the_other() {
    let Some(ls) = litestream("the_same_directory_config_replicated_by_either_tool") else {
        return;
    };
    let tl = tideline_bin();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    fs::create_dir_all(data.join("sub")).unwrap();
    let a = app(&data.join("a.db"));
    let b = app(&data.join("sub/b.db"));
    for c in [&a, &b] {
        c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
            .unwrap();
    }
    write(&a, 0, 100);
    write(&b, 0, 50);
    let out = d.join("out.db");

    // Litestream replicates the directory; tideline restores each database, found in
    // the same config by its path.
    let ls_replica = d.join("ls-replica");
    let ls_cfg = dir_config(d, "ls.yml", &ls_replica);
    let proc = Litestream::replicate(&ls, &ls_cfg, d.join("ls.log"));
    let at = |rel: &str| data.join(rel).to_string_lossy().into_owned();
    wait_restored(&tl, &at("a.db"), &out, Some(&ls_cfg), 100);
    wait_restored(&tl, &at("sub/b.db"), &out, Some(&ls_cfg), 50);
    // A database created while Litestream watches.
    let c = app(&data.join("sub/c.db"));
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    write(&c, 0, 20);
    wait_restored(&tl, &at("sub/c.db"), &out, Some(&ls_cfg), 20);
    proc.stop();

    // Tideline replicates the same directory elsewhere; Litestream restores each
    // database from its place under the replica's path.
    write(&a, 100, 10);
    let tl_replica = d.join("tl-replica");
    let tl_cfg = dir_config(d, "tl.yml", &tl_replica);
    let proc = Litestream::replicate(&tl, &tl_cfg, d.join("tl.log"));
    let url = |rel: &str| format!("file://{}", tl_replica.join(rel).display());
    wait_restored(&ls, &url("a.db"), &out, None, 110);
    wait_restored(&ls, &url("sub/b.db"), &out, None, 50);
    wait_restored(&ls, &url("sub/c.db"), &out, None, 20);
    // And one created while tideline watches.
    let e = app(&data.join("e.db"));
    e.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    write(&e, 0, 5);
    wait_restored(&ls, &url("e.db"), &out, None, 5);
    proc.stop();

    // One layout: each database's replica at the same place under either path.
    assert_eq!(
        replica_dbs(&tl_replica),
        ["a.db", "e.db", "sub/b.db", "sub/c.db"]
    );
    assert_eq!(replica_dbs(&ls_replica), ["a.db", "sub/b.db", "sub/c.db"]);
    drop((a, b, c, e));
}
