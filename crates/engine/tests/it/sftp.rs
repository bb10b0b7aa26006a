//! The SFTP replica against OpenSSH's real `sshd` on 127.0.0.1 ([`SshServer`]): the
//! replica contract in Litestream's layout, the listing cache, host-key and login
//! failures, a server that is down or restarts, and large files.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use tideline_engine::config::SftpReplicaConfig;
use tideline_engine::storage::sftp::SftpReplica;
use tideline_engine::storage::{RemoteFailure, ReplicaClient, ReplicaError};
use tideline_ltx::Txid;
use tideline_testkit::{LatencyProxy, PasswordSftpServer, SshServer};

use crate::replica_contract::{contract, ltx};

/// A config for `server`, folder `path`, logging in with `key`.
fn config(server: &SshServer, path: &str, key: &Path) -> SftpReplicaConfig {
    SftpReplicaConfig {
        host: server.host_port(),
        user: server.user().to_owned(),
        password: None,
        path: path.to_owned(),
        key_path: Some(key.to_path_buf()),
        host_key: Some(server.host_key().to_owned()),
        concurrent_writes: true,
    }
}

fn client(server: &SshServer, path: &str) -> Arc<SftpReplica> {
    Arc::new(SftpReplica::new(&config(server, path, &server.client_key())).unwrap())
}

fn remote_failure(e: &ReplicaError) -> &RemoteFailure {
    match e {
        ReplicaError::Remote { failure, .. } => failure,
        other => panic!("not a remote failure: {other}"),
    }
}

fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                todo.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_replica_meets_the_contract_in_litestreams_layout() {
    let dir = tempfile::tempdir().unwrap();
    let server = SshServer::start(&dir.path().join("sshd")).unwrap();
    let scratch = dir.path().join("scratch");
    fs::create_dir_all(&scratch).unwrap();
    let root = server.root().join("backups/app.db");
    let c = client(&server, root.to_str().unwrap());
    assert_eq!(
        c.describe(),
        format!(
            "sftp://{}@{}{}",
            server.user(),
            server.host_port(),
            root.display()
        )
    );
    contract(c.clone(), &scratch).await;

    // Litestream's layout, and mtime = the LTX creation time (Litestream's CreatedAt),
    // to the second: SFTP v3 carries whole seconds.
    let snap = root.join("ltx/9/0000000000000001-0000000000000001.ltx");
    let mtime = fs::metadata(&snap).unwrap().modified().unwrap();
    assert_eq!(mtime, UNIX_EPOCH + Duration::from_secs(1_800_000_000));
    assert!(
        root.join("ltx/1/0000000000000001-0000000000000003.ltx")
            .is_file()
    );
    // No temporary file is left behind.
    let left: Vec<_> = files_below(&root)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // Temporary files, other names and folders are not LTX files; a new client (not
    // the writer, so not cached) lists what the server has.
    fs::write(
        root.join("ltx/9/0000000000000001-0000000000000005.ltx.77.123.tmp"),
        b"partial",
    )
    .unwrap();
    fs::write(root.join("ltx/9/notes.txt"), b"x").unwrap();
    fs::create_dir_all(root.join("ltx/9/0000000000000001-0000000000000009.ltx")).unwrap();
    let fresh = client(&server, root.to_str().unwrap());
    let l9 = fresh.list(9).await.unwrap();
    assert_eq!(l9.len(), 1);
    assert_eq!(
        l9[0].created_at,
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    );
    // The exact listing reads the header's millisecond timestamp.
    assert_eq!(
        fresh.list_exact(9).await.unwrap()[0].created_at,
        UNIX_EPOCH + Duration::from_millis(1_800_000_000_001)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relative_path_is_below_the_login_folder_and_rewrites_replace_files() {
    let dir = tempfile::tempdir().unwrap();
    let server = SshServer::start(&dir.path().join("sshd")).unwrap();
    // The test server starts SFTP sessions in root(): the login folder.
    let c = client(&server, "rel/db");
    let (src, t) = ltx(dir.path(), 1, 1, 5);
    c.write(0, Txid(1), Txid(1), t, &src).await.unwrap();
    let on_disk = server
        .root()
        .join("rel/db/ltx/0/0000000000000001-0000000000000001.ltx");
    assert_eq!(fs::read(&on_disk).unwrap(), fs::read(&src).unwrap());
    // Writing the same name again replaces it (posix-rename over the old file).
    let (src2, t2) = ltx(dir.path(), 1, 1, 6);
    c.write(0, Txid(1), Txid(1), t2, &src2).await.unwrap();
    assert_eq!(fs::read(&on_disk).unwrap(), fs::read(&src2).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_listing_is_cached_and_an_idle_replica_makes_no_requests() {
    let dir = tempfile::tempdir().unwrap();
    let server = SshServer::start(&dir.path().join("sshd")).unwrap();
    let c = client(&server, "db");
    // A reader asks the server every time.
    assert!(c.list(0).await.unwrap().is_empty());
    assert!(c.list(0).await.unwrap().is_empty());
    assert_eq!(c.request_counts().unwrap().list, 2);

    let mut sent = 0;
    for n in [1, 2] {
        let (src, t) = ltx(dir.path(), n, n, 7);
        sent += c.write(0, Txid(n), Txid(n), t, &src).await.unwrap().size;
        assert_eq!(sent, c.request_counts().unwrap().bytes_up);
    }
    // The writer lists once more, then keeps the listing by its own writes.
    for _ in 0..10 {
        let l0 = c.list(0).await.unwrap();
        assert_eq!(l0.iter().map(|f| f.max_txid.0).collect::<Vec<_>>(), [1, 2]);
    }
    let counts = c.request_counts().unwrap();
    assert_eq!(counts.list, 3, "{counts:?}");
    assert_eq!(counts.put, 2, "{counts:?}");
    c.delete(&c.list(0).await.unwrap()[..1]).await.unwrap();
    assert_eq!(c.list(0).await.unwrap().len(), 1);
    let counts = c.request_counts().unwrap();
    assert_eq!(counts.delete, 1);
    assert_eq!(counts.list, 3);
    assert_eq!(counts.bytes_up, sent);

    // Idle: no request at all, by the client's count and by the bytes the server's
    // session processes move.
    let (before, io) = (c.request_counts().unwrap().total(), server.session_io());
    assert!(io > 0, "the session's I/O is seen");
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..10 {
        c.list(0).await.unwrap();
    }
    assert_eq!(c.request_counts().unwrap().total(), before);
    assert_eq!(server.session_io(), io);
    // While one fresh listing does move bytes.
    c.list_fresh(0).await.unwrap();
    assert!(server.session_io() > io);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_host_key_is_refused_naming_the_key_to_trust() {
    let dir = tempfile::tempdir().unwrap();
    let server = SshServer::start(&dir.path().join("sshd")).unwrap();
    let mut cfg = config(&server, "db", &server.client_key());
    cfg.host_key = None;
    let known_hosts = dir.path().join("known_hosts");
    fs::write(&known_hosts, "# nothing yet\n").unwrap();
    let c = SftpReplica::with_known_hosts(&cfg, &known_hosts).unwrap();
    let err = c.list(0).await.unwrap_err();
    match remote_failure(&err) {
        RemoteFailure::HostKeyUnknown { offered } => assert_eq!(offered, server.host_key()),
        other => panic!("{other:?}"),
    }
    assert!(err.needs_config_fix());
    // The error names the server (by the replica) and the key to trust.
    let text = err.to_string();
    assert!(text.contains(&server.host_port()), "{text}");
    assert!(
        text.contains(&format!("host-key: {}", server.host_key())),
        "{text}"
    );

    // Once known (as `ssh` writes it for another port), the same client connects.
    fs::write(&known_hosts, format!("{}\n", server.known_hosts_line())).unwrap();
    assert!(c.list(0).await.unwrap().is_empty());

    // Hashed host names (HashKnownHosts, Debian's default) are matched too.
    let hashed = std::process::Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&known_hosts)
        .output()
        .unwrap();
    assert!(hashed.status.success());
    let text = fs::read_to_string(&known_hosts).unwrap();
    assert!(
        text.starts_with("|1|") && !text.contains("127.0.0.1"),
        "{text}"
    );
    let c = SftpReplica::with_known_hosts(&cfg, &known_hosts).unwrap();
    assert!(c.list(0).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_host_key_than_configured_or_known_is_refused_as_changed() {
    let dir = tempfile::tempdir().unwrap();
    let server = SshServer::start(&dir.path().join("sshd")).unwrap();
    let other = fs::read_to_string(format!("{}.pub", server.stranger_key().display()))
        .unwrap()
        .trim()
        .to_owned();
    let mut cfg = config(&server, "db", &server.client_key());
    cfg.host_key = Some(other.clone());
    let err = SftpReplica::new(&cfg).unwrap().list(0).await.unwrap_err();
    assert!(
        matches!(remote_failure(&err), RemoteFailure::HostKeyChanged { offered, .. } if offered == server.host_key()),
        "{err}"
    );
    assert!(err.needs_config_fix());

    // known_hosts holding another key of the same type for this server.
    cfg.host_key = None;
    let known_hosts = dir.path().join("known_hosts");
    fs::write(
        &known_hosts,
        format!("[127.0.0.1]:{} {other}\n", server.port()),
    )
    .unwrap();
    let err = SftpReplica::with_known_hosts(&cfg, &known_hosts)
        .unwrap()
        .list(0)
        .await
        .unwrap_err();
    assert!(
        matches!(remote_failure(&err), RemoteFailure::HostKeyChanged { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("CHANGED"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_names_the_settings_and_never_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let server = SshServer::start(&dir.path().join("sshd")).unwrap();
    let mut cfg = config(&server, "db", &server.stranger_key());
    cfg.password = Some(tideline_engine::config::Sensitive::new(
        "hunter2-not-this".to_owned(),
    ));
    let err = SftpReplica::new(&cfg).unwrap().list(0).await.unwrap_err();
    assert!(
        matches!(
            remote_failure(&err),
            RemoteFailure::WrongCredentials {
                keys: "user, password and key-path",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.needs_config_fix());
    let text = format!("{err} {err:?}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("stranger_ed25519"), "{text}");

    // A key with a passphrase cannot be used, and the error says which one.
    let locked = dir.path().join("locked_ed25519");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "secret-phrase", "-f"])
        .arg(&locked)
        .status()
        .unwrap();
    assert!(made.success());
    let err = SftpReplica::new(&config(&server, "db", &locked))
        .unwrap()
        .list(0)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("passphrase") && text.contains("key-path"),
        "{text}"
    );
    assert!(text.contains("locked_ed25519"), "{text}");
    assert!(err.needs_config_fix());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_down_is_unreachable_and_a_restart_is_survived() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = SshServer::start(&dir.path().join("sshd")).unwrap();
    let c = client(&server, "db");
    let (src, t) = ltx(dir.path(), 1, 1, 1);
    c.write(0, Txid(1), Txid(1), t, &src).await.unwrap();

    // Restarted between two writes: the kept connection is dead; the next write
    // reconnects and lands.
    server.restart().unwrap();
    let (src, t) = ltx(dir.path(), 2, 2, 2);
    c.write(0, Txid(2), Txid(2), t, &src).await.unwrap();
    let fresh = client(&server, "db");
    assert_eq!(fresh.list(0).await.unwrap().len(), 2);

    // Down: refused at once, named as unreachable, not a config error.
    server.stop();
    let started = Instant::now();
    let err = c.list_fresh(0).await.unwrap_err();
    assert!(
        matches!(remote_failure(&err), RemoteFailure::Unreachable(_)),
        "{err}"
    );
    assert!(!err.needs_config_fix());
    assert!(started.elapsed() < Duration::from_secs(10));
    let (src, t) = ltx(dir.path(), 3, 3, 3);
    assert!(c.write(0, Txid(3), Txid(3), t, &src).await.is_err());

    // Back: the same client carries on.
    server.restart().unwrap();
    c.write(0, Txid(3), Txid(3), t, &src).await.unwrap();
    assert_eq!(c.list_fresh(0).await.unwrap().len(), 3);
}

/// `n` bytes that do not repeat (so nothing compresses or dedupes them).
fn noise(n: usize) -> Vec<u8> {
    let mut data = Vec::with_capacity(n + 8);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    while data.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(n);
    data
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_file_round_trips_with_and_without_concurrent_writes() {
    let dir = tempfile::tempdir().unwrap();
    let server = SshServer::start(&dir.path().join("sshd")).unwrap();
    let data = noise((20 << 20) + 5);
    let src = dir.path().join("big.ltx");
    fs::write(&src, &data).unwrap();
    let t = UNIX_EPOCH + Duration::from_millis(1_800_000_000_123);
    for concurrent in [true, false] {
        let path = format!("big-{concurrent}");
        let mut cfg = config(&server, &path, &server.client_key());
        cfg.concurrent_writes = concurrent;
        let c = Arc::new(SftpReplica::new(&cfg).unwrap());
        c.list(9).await.unwrap(); // connect first: time the transfer alone
        let started = Instant::now();
        let info = c.write(9, Txid(1), Txid(5), t, &src).await.unwrap();
        let up = started.elapsed();
        assert_eq!(info.size, data.len() as u64);
        let on_disk = server
            .root()
            .join(&path)
            .join("ltx/9/0000000000000001-0000000000000005.ltx");
        assert!(fs::read(&on_disk).unwrap() == data, "upload differs");
        let (c2, info2) = (Arc::clone(&c), info.clone());
        let started = Instant::now();
        let read = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            c2.open(&info2).unwrap().read_to_end(&mut out).unwrap();
            out
        })
        .await
        .unwrap();
        let down = started.elapsed();
        assert!(read == data, "whole read differs");
        let mid = (8 << 20) - 5..(8 << 20) + 5;
        assert_eq!(
            c.read_range(&info, mid.start as u64..mid.end as u64)
                .await
                .unwrap(),
            data[mid]
        );
        let mib = data.len() as f64 / f64::from(1 << 20);
        eprintln!(
            "sftp 20 MiB, concurrent-writes {concurrent}: upload {up:?} ({:.0} MiB/s), open() read {down:?} ({:.0} MiB/s)",
            mib / up.as_secs_f64(),
            mib / down.as_secs_f64()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_file_read_cut_by_a_lost_connection_goes_on_where_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let server = SshServer::start(&dir.path().join("sshd")).unwrap();
    let c = client(&server, "cut");
    let data = noise(8 << 20);
    let src = dir.path().join("big.ltx");
    fs::write(&src, &data).unwrap();
    let info = c
        .write(9, Txid(1), Txid(1), UNIX_EPOCH, &src)
        .await
        .unwrap();
    // The reader takes 1 MiB, the connection drops (the server kills every session
    // but keeps listening: a restart would race the reader's one reconnection), the
    // reader takes the rest.
    let (took_tx, took_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (c2, info2) = (Arc::clone(&c), info.clone());
    let reader = tokio::task::spawn_blocking(move || {
        let mut r = c2.open(&info2).unwrap();
        let mut out = vec![0u8; 1 << 20];
        r.read_exact(&mut out).unwrap();
        took_tx.send(()).unwrap();
        go_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        r.read_to_end(&mut out).map(|_| out)
    });
    tokio::task::spawn_blocking(move || took_rx.recv_timeout(Duration::from_secs(30)))
        .await
        .unwrap()
        .unwrap();
    let gets = c.request_counts().unwrap().get;
    server.drop_connections();
    go_tx.send(()).unwrap();
    let read = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("the read ends")
        .unwrap()
        .unwrap();
    assert!(read == data, "the resumed read differs");
    // Opened once more, on a new connection.
    assert_eq!(c.request_counts().unwrap().get, gets + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_pipeline_an_upload_over_a_far_link() {
    let dir = tempfile::tempdir().unwrap();
    let server = SshServer::start(&dir.path().join("sshd")).unwrap();
    // 10 ms each way: a 20 ms round trip, as to a server in a nearby country.
    let proxy = LatencyProxy::start(
        ([127, 0, 0, 1], server.port()).into(),
        Duration::from_millis(10),
    )
    .unwrap();
    let data = noise(4 << 20);
    let src = dir.path().join("far.ltx");
    fs::write(&src, &data).unwrap();
    let mut took = Vec::new();
    for concurrent in [true, false] {
        let path = format!("far-{concurrent}");
        let mut cfg = config(&server, &path, &server.client_key());
        cfg.host = format!("127.0.0.1:{}", proxy.port());
        cfg.concurrent_writes = concurrent;
        let c = Arc::new(SftpReplica::new(&cfg).unwrap());
        c.list(9).await.unwrap(); // connect first: time the transfer alone
        let started = Instant::now();
        let info = c
            .write(9, Txid(1), Txid(1), UNIX_EPOCH, &src)
            .await
            .unwrap();
        let up = started.elapsed();
        let started = Instant::now();
        let (c2, info2) = (Arc::clone(&c), info.clone());
        let read = tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            c2.open(&info2).unwrap().read_to_end(&mut out).unwrap();
            out
        })
        .await
        .unwrap();
        let down = started.elapsed();
        assert!(read == data);
        eprintln!(
            "sftp 4 MiB over a 20 ms round trip, concurrent-writes {concurrent}: upload {up:?}, open() read {down:?}"
        );
        took.push(up);
    }
    // One 32 KiB write per round trip is 128 round trips (2.6 s); pipelined, the
    // SSH window (2 MiB) is the limit: a few round trips.
    assert!(
        took[0] * 3 < took[1],
        "pipelined {:?}, one at a time {:?}",
        took[0],
        took[1]
    );
}

/// Waits (bounded) until a fresh client restores `want` rows of `t`.
async fn wait_rows(server: &SshServer, scratch: &Path, want: i64) {
    use tideline_engine::restore::{IntegrityCheck, Target, restore};
    let out = scratch.join("probe.db");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let probe: Arc<dyn ReplicaClient> = client(server, "db");
        if restore(probe, Target::Latest, &out, IntegrityCheck::None)
            .await
            .is_ok()
        {
            let n: i64 = rusqlite::Connection::open(&out)
                .unwrap()
                .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                .unwrap_or(0);
            if n == want {
                return;
            }
        }
        assert!(Instant::now() < deadline, "not {want} rows within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_rides_out_a_server_restart() {
    use tideline_engine::config::DbConfig;
    use tideline_engine::replicate::{Event, EventSink, ReplicateSettings, replicate_to};

    let dir = tempfile::tempdir().unwrap();
    let mut server = SshServer::start(&dir.path().join("sshd")).unwrap();
    let db = dir.path().join("app.db");
    let app = rusqlite::Connection::open(&db).unwrap();
    app.busy_timeout(Duration::from_secs(5)).unwrap();
    app.pragma_update(None, "journal_mode", "wal").unwrap();
    app.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    let write = |from: i64| {
        let tx = app.unchecked_transaction().unwrap();
        for i in from..from + 50 {
            tx.execute("INSERT INTO t(id, v) VALUES (?1, 'x')", [i])
                .unwrap();
        }
        tx.commit().unwrap();
    };
    let mut cfg = DbConfig::new(&db);
    cfg.monitor_interval = Duration::from_millis(100);
    let events = Arc::new(std::sync::Mutex::new(Vec::<Event>::new()));
    let sink: EventSink = {
        let events = Arc::clone(&events);
        Arc::new(move |e: &Event| events.lock().unwrap().push(e.clone()))
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let replica = client(&server, "db");
    let task = tokio::spawn(replicate_to(
        vec![(cfg, replica.clone() as Arc<dyn ReplicaClient>)],
        ReplicateSettings::default(),
        async move {
            let _ = stop_rx.await;
        },
        sink,
    ));
    write(0);
    wait_rows(&server, dir.path(), 50).await;
    server.restart().unwrap();
    write(50);
    wait_rows(&server, dir.path(), 100).await;
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("stops")
        .unwrap()
        .unwrap();
    // The upload that met the dead connection reconnected and landed: no failed sync.
    let events = events.lock().unwrap();
    assert!(!events.iter().any(Event::is_error), "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_logs_in_and_a_wrong_one_is_refused_without_being_shown() {
    let dir = tempfile::tempdir().unwrap();
    let server = PasswordSftpServer::start(dir.path(), "ann", "right-pw-1").unwrap();
    let cfg = |password: &str, key: Option<PathBuf>| SftpReplicaConfig {
        host: server.host_port(),
        user: "ann".to_owned(),
        password: Some(tideline_engine::config::Sensitive::new(password.to_owned())),
        path: "db".to_owned(),
        key_path: key,
        host_key: Some(server.host_key().to_owned()),
        concurrent_writes: true,
    };
    // Password only, and a key the server refuses before the password: both work,
    // and the replica is a replica (a write lands, below the login folder).
    let stranger = dir.path().join("stranger");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .unwrap();
    assert!(made.success());
    for key in [None, Some(stranger.clone())] {
        let c = SftpReplica::new(&cfg("right-pw-1", key)).unwrap();
        let (src, t) = ltx(dir.path(), 1, 1, 3);
        c.write(0, Txid(1), Txid(1), t, &src).await.unwrap();
        assert_eq!(c.list_fresh(0).await.unwrap().len(), 1);
    }
    assert!(
        server
            .root()
            .join("db/ltx/0/0000000000000001-0000000000000001.ltx")
            .is_file()
    );
    let err = SftpReplica::new(&cfg("wrong-pw-2", None))
        .unwrap()
        .list(0)
        .await
        .unwrap_err();
    assert!(
        matches!(remote_failure(&err), RemoteFailure::WrongCredentials { .. }),
        "{err}"
    );
    let text = format!("{err} {err:?}");
    assert!(text.contains("password was refused"), "{text}");
    assert!(
        !text.contains("wrong-pw-2") && !text.contains("right-pw-1"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_the_login_may_not_change_is_access_denied() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = SshServer::start(&dir.path().join("sshd")).unwrap();
    let c = client(&server, "db");
    let (src, t) = ltx(dir.path(), 1, 1, 1);
    c.write(0, Txid(1), Txid(1), t, &src).await.unwrap();
    // The same login, now read-only: reads work, a write is refused as not permitted
    // (a config fix: the folder's permissions), and nothing half-written is left.
    server.restart_read_only(true).unwrap();
    assert_eq!(c.list_fresh(0).await.unwrap().len(), 1);
    let (src, t) = ltx(dir.path(), 2, 2, 2);
    let err = c.write(0, Txid(2), Txid(2), t, &src).await.unwrap_err();
    assert!(
        matches!(remote_failure(&err), RemoteFailure::AccessDenied(_)),
        "{err}"
    );
    assert!(err.needs_config_fix());
    assert!(
        err.to_string()
            .contains("0000000000000002-0000000000000002.ltx"),
        "{err}"
    );
    let c2 = client(&server, "db");
    assert!(c2.delete(&c2.list(0).await.unwrap()).await.is_err());
    let names: Vec<_> = files_below(&server.root().join("db"));
    assert_eq!(names.len(), 1, "{names:?}");
}

/// More files than transfer permits, each larger than a reader's queue, restored at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_of_many_large_files_streams_them_all_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = SshServer::start(&dir.path().join("sshd")).unwrap();
    crate::replica_contract::restore_many_large_files(client(&server, "many"), dir.path()).await;
}
