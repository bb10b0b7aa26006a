//! The control socket (`socket:`), driven by the real commands while replicating:
//! `tideline register`, `stop`, `start`, `unregister`, `list` and `info` against a
//! running `tideline replicate`, each checked by what a restore of the replica holds;
//! and Litestream 0.5.17's own commands against Tideline's socket and Tideline's
//! against Litestream's (one wire protocol).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use tideline_e2e::{Litestream, app, litestream, newest_txid_in, tideline_bin, write};

fn new_db(path: &Path, n: i64) -> rusqlite::Connection {
    let c = app(path);
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    write(&c, 0, n);
    c
}

fn url(replica: &Path) -> String {
    format!("file://{}", replica.display())
}

/// `bin ARGS…`, its output.
fn run(bin: &Path, args: &[&str]) -> Output {
    Command::new(bin).args(args).output().unwrap()
}

fn stdout_ok(bin: &Path, args: &[&str]) -> String {
    let o = run(bin, args);
    assert!(
        o.status.success(),
        "{} {args:?}: {}{}",
        bin.display(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// The rows a restore of the folder replica `replica` gives, if it restores.
fn restored(tl: &Path, replica: &Path, out: &Path) -> Option<i64> {
    tideline_e2e::restored(tl, &url(replica), out, None)
}

fn wait_restored(tl: &Path, replica: &Path, out: &Path, want: i64) {
    tideline_e2e::wait_restored(tl, &url(replica), out, None, want);
}

fn wait_for_socket(socket: &Path, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "no socket within 30 s:\n{}",
            fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The newest TXID of a folder replica (any level).
fn newest_txid(replica: &Path) -> u64 {
    newest_txid_in((0..=9).map(|level| replica.join(format!("ltx/{level}"))))
}

fn socket_config(d: &Path, name: &str, socket: &Path, db: &Path, replica: &Path) -> PathBuf {
    let cfg = d.join(name);
    fs::write(
        &cfg,
        format!(
            "socket:\n  enabled: true\n  path: {}\ndbs:\n  - path: {}\n    monitor-interval: 100ms\n    \
             replica:\n      path: {}\n      sync-interval: 100ms\n",
            socket.display(),
            db.display(),
            replica.display()
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn the_control_commands_register_stop_start_and_unregister_while_replicating() {
    let tl = tideline_bin();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let socket = d.join("ctl.sock");
    let s = socket.to_str().unwrap();
    let (a_db, a_rep) = (d.join("a.db"), d.join("a-replica"));
    let a = new_db(&a_db, 100);
    let cfg = socket_config(d, "t.yml", &socket, &a_db, &a_rep);
    let log = d.join("t.log");
    let daemon = Litestream::replicate(&tl, &cfg, log.clone());
    wait_for_socket(&socket, &log);
    let out = d.join("out.db");
    wait_restored(&tl, &a_rep, &out, 100);
    let a_path = a_db.to_str().unwrap();

    let list = stdout_ok(&tl, &["list", "-socket", s]);
    assert!(list.contains(&format!("{a_path} [replicating]")), "{list}");

    // A database not in the config, registered while replicating, is backed up.
    let (b_db, b_rep) = (d.join("b.db"), d.join("b-replica"));
    let b = new_db(&b_db, 40);
    let b_path = b_db.to_str().unwrap();
    let reg = stdout_ok(
        &tl,
        &["register", "-socket", s, "-replica", &url(&b_rep), b_path],
    );
    assert!(reg.starts_with("status: registered\n"), "{reg}");
    wait_restored(&tl, &b_rep, &out, 40);
    let again = stdout_ok(
        &tl,
        &["register", "-socket", s, "-replica", &url(&b_rep), b_path],
    );
    assert!(again.starts_with("status: already registered\n"), "{again}");

    // Stopped: its final upload is in, then nothing more reaches its replica, while
    // the other database goes on.
    let stop = stdout_ok(&tl, &["stop", "-socket", s, "-json", a_path]);
    let stop: serde_json::Value = serde_json::from_str(&stop).unwrap();
    assert_eq!(stop["status"], "stopped");
    assert_eq!(stop["state"], "stopped");
    assert_eq!(stop["txid"].as_u64().unwrap(), newest_txid(&a_rep));
    write(&a, 100, 10);
    write(&b, 40, 10);
    wait_restored(&tl, &b_rep, &out, 50);
    assert_eq!(
        restored(&tl, &a_rep, &out),
        Some(100),
        "a stopped database shipped"
    );
    let list = stdout_ok(&tl, &["list", "-socket", s]);
    assert!(list.contains(&format!("{a_path} [stopped]")), "{list}");
    let again = stdout_ok(&tl, &["stop", "-socket", s, a_path]);
    assert!(again.starts_with("status: already_stopped\n"), "{again}");

    // Started again: what was written meanwhile is captured and shipped.
    let start = stdout_ok(&tl, &["start", "-socket", s, a_path]);
    assert!(start.starts_with("status: started\n"), "{start}");
    wait_restored(&tl, &a_rep, &out, 110);

    // Unregistered: final upload, then forgotten.
    write(&b, 50, 5);
    let unreg = stdout_ok(&tl, &["unregister", "-socket", s, "-json", b_path]);
    let unreg: serde_json::Value = serde_json::from_str(&unreg).unwrap();
    assert_eq!(unreg["status"], "unregistered");
    assert_eq!(unreg["final_txid"].as_u64().unwrap(), newest_txid(&b_rep));
    assert_eq!(
        restored(&tl, &b_rep, &out),
        Some(55),
        "the final upload is in"
    );
    let list = stdout_ok(&tl, &["list", "-socket", s, "-json"]);
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let paths: Vec<&str> = list["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|db| db["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, [a_path]);

    let info = stdout_ok(&tl, &["info", "-socket", s, "-json"]);
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["database_count"], 1);
    assert!(info["pid"].as_u64().unwrap() > 0);

    // Mistakes are named, with the fix.
    let o = run(&tl, &["stop", "-socket", s, "/nowhere/x.db"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("database not found: /nowhere/x.db"),
        "{err}"
    );
    let o = run(&tl, &["register", "-socket", s, b_path]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("-replica is required"),
        "{err}"
    );
    let o = run(
        &tl,
        &["register", "-socket", s, "-replica", "ftp://x/y", b_path],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("register failed"),
        "{err}"
    );
    let missing = d.join("none.sock");
    let o = run(&tl, &["list", "-socket", missing.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success()
            && err.contains("failed to connect to control socket")
            && err.contains("-socket"),
        "{err}"
    );
    daemon.stop();
    assert!(!socket.exists(), "the socket is removed at exit");
}

#[test]
fn litestreams_commands_drive_tidelines_socket_and_tidelines_drive_litestreams() {
    let Some(ls) = litestream("litestreams_commands_drive_tidelines_socket") else {
        return;
    };
    let tl = tideline_bin();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = d.join("out.db");
    for (daemon_bin, client_bin, tag) in [(&tl, &ls, "tl"), (&ls, &tl, "ls")] {
        let socket = d.join(format!("{tag}.sock"));
        let s = socket.to_str().unwrap();
        let (db, rep) = (
            d.join(format!("{tag}-a.db")),
            d.join(format!("{tag}-a-replica")),
        );
        new_db(&db, 30);
        let cfg = socket_config(d, &format!("{tag}.yml"), &socket, &db, &rep);
        let log = d.join(format!("{tag}.log"));
        let daemon = Litestream::replicate(daemon_bin, &cfg, log.clone());
        wait_for_socket(&socket, &log);
        wait_restored(&tl, &rep, &out, 30);
        let list = stdout_ok(client_bin, &["list", "-socket", s]);
        assert!(
            list.contains(&format!("{} [replicating]", db.display())),
            "{tag}: {list}"
        );
        // A registration by the other tool's command is replicated by the daemon.
        let (c_db, c_rep) = (
            d.join(format!("{tag}-c.db")),
            d.join(format!("{tag}-c-replica")),
        );
        new_db(&c_db, 12);
        let reg = stdout_ok(
            client_bin,
            &[
                "register",
                "-socket",
                s,
                "-replica",
                &url(&c_rep),
                c_db.to_str().unwrap(),
            ],
        );
        assert!(reg.starts_with("status: registered\n"), "{tag}: {reg}");
        wait_restored(&tl, &c_rep, &out, 12);
        let info = stdout_ok(client_bin, &["info", "-socket", s, "-json"]);
        let info: serde_json::Value = serde_json::from_str(&info).unwrap();
        assert_eq!(info["database_count"], 2, "{tag}: {info}");
        daemon.stop();
    }
}
