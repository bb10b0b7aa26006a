//! Tideline and Litestream 0.5.17 over SFTP, both directions, on OpenSSH's real `sshd`
//! on 127.0.0.1 ([`SshServer`]): each restores (latest, at TXIDs and at a timestamp,
//! which Litestream takes from the files' mtimes) what the other replicated and
//! compacted, and an idle replicator sends nothing.
//!
//! Litestream's `sftp` URL form carries no `key-path` or `host-key`, so its side runs
//! from a config file (`litestream restore -config`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tideline_e2e::{Litestream, app, checkpointed, litestream, rows, write};
use tideline_engine::config::{DbConfig, SftpReplicaConfig};
use tideline_engine::replicate::{Event, EventSink, ReplicateSettings, replicate_to};
use tideline_engine::restore::{IntegrityCheck, Target, list_levels, restore};
use tideline_engine::storage::ReplicaClient;
use tideline_engine::storage::sftp::SftpReplica;
use tideline_engine::time::format_rfc3339;
use tideline_ltx::Txid;
use tideline_testkit::SshServer;
use tokio::sync::oneshot;

/// The replica's folder below the server's root.
const PATH: &str = "backups/app.db";

/// mtimes have whole seconds: a `-timestamp` this far from any upload sees the same
/// files in Litestream (mtime) as in Tideline (the LTX header's milliseconds).
const TIME_MARGIN: Duration = Duration::from_millis(1300);

/// The `tideline` binary built for this test run (next to the test executable).
fn tideline_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = dir.join(format!("tideline{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} not built: run `cargo build -p tideline-cli`",
        bin.display()
    );
    bin
}

fn replica_path(server: &SshServer) -> PathBuf {
    server.root().join(PATH)
}

fn client(server: &SshServer) -> Arc<dyn ReplicaClient> {
    let cfg = SftpReplicaConfig {
        host: server.host_port(),
        user: server.user().to_owned(),
        password: None,
        path: replica_path(server).display().to_string(),
        key_path: Some(server.client_key()),
        host_key: Some(server.host_key().to_owned()),
        concurrent_writes: true,
    };
    Arc::new(SftpReplica::new(&cfg).unwrap())
}

/// A Litestream config replicating `db` to the server, in Litestream's own keys.
fn ls_config(dir: &Path, db: &Path, server: &SshServer) -> PathBuf {
    let path = dir.join("litestream.yml");
    fs::write(
        &path,
        format!(
            "levels:\n  - interval: 2s\nsnapshot:\n  interval: 4s\n  retention: 1h\nl0-retention: 1h\ndbs:\n  - path: {}\n    monitor-interval: 100ms\n    replica:\n      type: sftp\n      host: {}\n      user: {}\n      path: {}\n      key-path: {}\n      host-key: {}\n      sync-interval: 100ms\n",
            db.display(),
            server.host_port(),
            server.user(),
            replica_path(server).display(),
            server.client_key().display(),
            server.host_key()
        ),
    )
    .unwrap();
    path
}

/// Restores `db`'s replica with Litestream, from the config.
fn ls_restore(bin: &Path, config: &Path, db: &Path, out: &Path, extra: &[&str]) {
    let _ = fs::remove_file(out);
    let o = Command::new(bin)
        .arg("restore")
        .arg("-config")
        .arg(config)
        .args(extra)
        .arg("-o")
        .arg(out)
        .arg(db)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "litestream restore {extra:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

async fn tl_restore(server: &SshServer, out: &Path, target: Target) -> Txid {
    restore(client(server), target, out, IntegrityCheck::Full)
        .await
        .unwrap()
        .txid
}

/// Waits (bounded) until a restore of the replica has `want` rows.
async fn wait_rows(server: &SshServer, scratch: &Path, want: i64) {
    let out = scratch.join("probe.db");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if restore(client(server), Target::Latest, &out, IntegrityCheck::None)
            .await
            .is_ok()
            && rows(&out) == want
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "replica did not reach {want} rows within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn setup() -> (tempfile::TempDir, PathBuf, rusqlite::Connection) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let c = app(&db);
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    write(&c, 0, 100);
    (dir, db, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn litestream_restores_what_tideline_replicated_to_sftp() {
    let Some(ls) = litestream("litestream_restores_what_tideline_replicated_to_sftp") else {
        return;
    };
    let (dir, db, c) = setup();
    let server = SshServer::start(&dir.path().join("sshd")).unwrap();

    let mut cfg = DbConfig::new(&db);
    cfg.monitor_interval = Duration::from_millis(100);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let events = Arc::new(std::sync::Mutex::new(Vec::<Event>::new()));
    let sink: EventSink = {
        let events = Arc::clone(&events);
        Arc::new(move |e: &Event| events.lock().unwrap().push(e.clone()))
    };
    let tl_client = client(&server);
    // Short compaction windows and snapshots: L0, L1, L2 and L9 past TXID 1.
    let mut settings = ReplicateSettings::default();
    settings.levels.levels = vec![Duration::from_secs(1), Duration::from_secs(2)];
    settings.levels.snapshot_interval = Duration::from_secs(3);
    let task = tokio::spawn(replicate_to(
        vec![(cfg, Arc::clone(&tl_client))],
        settings,
        async move {
            let _ = stop_rx.await;
        },
        sink,
    ));
    wait_rows(&server, dir.path(), 100).await;
    for k in 0..10 {
        write(&c, 1000 + k * 50, 50);
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    wait_rows(&server, dir.path(), 600).await;
    let mid = list_levels(client(&server).as_ref())
        .await
        .unwrap()
        .iter()
        .flatten()
        .map(|f| f.max_txid)
        .max()
        .unwrap();
    // A moment between the 600-row state and the next write, for -timestamp.
    tokio::time::sleep(TIME_MARGIN).await;
    let between = SystemTime::now();
    tokio::time::sleep(TIME_MARGIN).await;
    write(&c, 5000, 300);
    wait_rows(&server, dir.path(), 900).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let levels = list_levels(client(&server).as_ref()).await.unwrap();
        if !levels[1].is_empty()
            && !levels[2].is_empty()
            && levels[9].iter().any(|f| f.max_txid > Txid(1))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no L1/L2/L9 from tideline on SFTP: {:?}",
            events.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Once settled, an idle replicator sends nothing: its own count stays, and the
    // server's session processes move no more bytes (probe sessions that end only
    // lower the sum).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let before = tl_client.request_counts().unwrap();
        let io_before = server.session_io();
        tokio::time::sleep(Duration::from_secs(3)).await;
        if tl_client.request_counts().unwrap() == before {
            assert!(server.session_io() <= io_before);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still making requests 30 s after the last write: {:?}",
            tl_client.request_counts()
        );
    }

    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("stops")
        .unwrap()
        .unwrap();
    assert!(
        !events.lock().unwrap().iter().any(Event::is_error),
        "{:?}",
        events.lock().unwrap()
    );
    drop(c);
    let want = checkpointed(&db);

    let config = ls_config(dir.path(), &db, &server);
    let out = dir.path().join("ls.db");
    ls_restore(&ls, &config, &db, &out, &[]);
    assert!(
        fs::read(&out).unwrap() == want,
        "litestream's restore of tideline's SFTP replica is not byte-identical"
    );
    ls_restore(&ls, &config, &db, &out, &["-txid", &mid.to_string()]);
    let ours = dir.path().join("tl.db");
    tl_restore(&server, &ours, Target::Txid(mid)).await;
    assert!(
        fs::read(&out).unwrap() == fs::read(&ours).unwrap(),
        "restores at TXID {mid} differ"
    );
    assert_eq!(rows(&out), 600);
    // By time: Litestream reads our mtimes.
    ls_restore(
        &ls,
        &config,
        &db,
        &out,
        &["-timestamp", &format_rfc3339(between)],
    );
    assert_eq!(rows(&out), 600, "litestream -timestamp");
    tl_restore(&server, &ours, Target::Time(between)).await;
    assert_eq!(rows(&ours), 600, "tideline by time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tideline_restores_what_litestream_replicated_to_sftp() {
    let Some(ls) = litestream("tideline_restores_what_litestream_replicated_to_sftp") else {
        return;
    };
    let (dir, db, c) = setup();
    let server = SshServer::start(&dir.path().join("sshd")).unwrap();
    let config = ls_config(dir.path(), &db, &server);
    let proc = Litestream::replicate(&ls, &config, dir.path().join("ls.log"));
    let mut between = None;
    for k in 0..25 {
        write(&c, 1000 + k * 20, 20);
        tokio::time::sleep(Duration::from_millis(200)).await;
        if k == 12 {
            wait_rows(&server, dir.path(), 100 + 13 * 20).await;
            tokio::time::sleep(TIME_MARGIN).await;
            between = Some(SystemTime::now());
            tokio::time::sleep(TIME_MARGIN).await;
        }
    }
    wait_rows(&server, dir.path(), 600).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let levels = list_levels(client(&server).as_ref()).await.unwrap();
        if !levels[1].is_empty() && levels[9].iter().any(|f| f.max_txid > Txid(1)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no L1/L9 from litestream:\n{}",
            fs::read_to_string(dir.path().join("ls.log")).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    proc.stop();
    drop(c);
    let want = checkpointed(&db);
    // Litestream's SFTP layout, as we read it: `<path>/ltx/<level>/<min>-<max>.ltx`.
    let snapshots: Vec<String> = fs::read_dir(replica_path(&server).join("ltx/9"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".ltx"))
        .collect();
    assert!(
        snapshots.iter().any(|n| n.starts_with("0000000000000001-")),
        "{snapshots:?}"
    );

    let out = dir.path().join("tl.db");
    tl_restore(&server, &out, Target::Latest).await;
    assert!(
        fs::read(&out).unwrap() == want,
        "tideline's restore of litestream's SFTP replica is not byte-identical"
    );
    // The `tideline` binary, drop-in, with Litestream's own config file: its keys
    // (type: sftp, key-path, host-key) reach the SFTP client.
    let by_cli = dir.path().join("cli.db");
    let o = Command::new(tideline_bin())
        .arg("restore")
        .arg("-config")
        .arg(&config)
        .arg("-o")
        .arg(&by_cli)
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "tideline restore failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        fs::read(&by_cli).unwrap() == want,
        "the tideline binary's restore is not byte-identical"
    );
    let theirs = dir.path().join("ls.db");
    let ends: Vec<Txid> = list_levels(client(&server).as_ref()).await.unwrap()[0]
        .iter()
        .map(|f| f.max_txid)
        .collect();
    for txid in ends.iter().step_by(5) {
        ls_restore(&ls, &config, &db, &theirs, &["-txid", &txid.to_string()]);
        tl_restore(&server, &out, Target::Txid(*txid)).await;
        assert!(
            fs::read(&out).unwrap() == fs::read(&theirs).unwrap(),
            "TXID {txid}: restores differ"
        );
    }
    // By time: Litestream's mtimes, our header reads.
    let t = format_rfc3339(between.unwrap());
    ls_restore(&ls, &config, &db, &theirs, &["-timestamp", &t]);
    tl_restore(&server, &out, Target::Time(between.unwrap())).await;
    assert_eq!(rows(&out), 100 + 13 * 20);
    assert!(
        fs::read(&out).unwrap() == fs::read(&theirs).unwrap(),
        "restores at {t} differ"
    );
}
