//! Replication to remote destinations through faults. Every remote type: a server down
//! at start is waited for while capture goes on, and caught up with when it returns.
//!
//! Replication to S3 through faults, on a real S3 server on 127.0.0.1 while a real
//! application writes: throttling (503), server errors (500), the server stopped in the
//! middle of an upload and started again. Replication recovers with every TXID in the
//! replica exactly once and the replica restoring to the database byte for byte; a
//! wrong secret fails at once with an error that names the fix, and loses nothing.
//!
//! Also the S3 client's own guarantees against the same server: multipart parts grow to
//! stay within the part limit, a failed completion is aborted, a stalled server cannot
//! hold a shutdown past `shutdown-sync-timeout`, the periodic re-list sees what another
//! writer (or a lifecycle rule) changed, and credentials in an endpoint URL are neither
//! shown nor needed.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tideline_engine::config::{DbConfig, ReplicaConfig, ReplicaTarget, S3ReplicaConfig};
use tideline_engine::levels::scheduler::{LevelsConfig, Maintainer};
use tideline_engine::replicate::{Event, EventSink, ReplicateSettings, replicate_to};
use tideline_engine::restore::{IntegrityCheck, Target, list_levels, restore};
use tideline_engine::storage::ReplicaClient;
use tideline_engine::storage::s3::S3Replica;
use tideline_ltx::Txid;
use tideline_testkit::{
    ACCESS_KEY, AzuriteServer, BUCKET, GcsServer, NatsServer, Op, OssServer, REGION, S3Server,
    SECRET_KEY, WebDavServer,
};
use tokio::sync::oneshot;

fn s3_config_at(endpoint: &str, secret: &str) -> S3ReplicaConfig {
    let url = format!("s3://{BUCKET}/app?endpoint={endpoint}&region={REGION}&forcePathStyle=true");
    let secret = secret.to_string();
    let env = move |k: &str| match k {
        "LITESTREAM_ACCESS_KEY_ID" => Some(ACCESS_KEY.to_string()),
        "LITESTREAM_SECRET_ACCESS_KEY" => Some(secret.clone()),
        _ => None,
    };
    let cfg = ReplicaConfig::from_url_with_env(&url, &env).unwrap();
    let ReplicaTarget::S3(s3) = cfg.target else {
        unreachable!()
    };
    *s3
}

fn s3_client(server: &S3Server, secret: &str) -> Arc<dyn ReplicaClient> {
    Arc::new(S3Replica::new(&s3_config_at(&server.endpoint(), secret)).unwrap())
}

fn app(path: &Path) -> Connection {
    let c = Connection::open(path).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c.pragma_update(None, "journal_mode", "wal").unwrap();
    c
}

fn settings() -> ReplicateSettings {
    ReplicateSettings {
        once: false,
        shutdown_sync_timeout: Duration::from_secs(20),
        shutdown_sync_interval: Duration::from_millis(200),
        ..ReplicateSettings::default()
    }
}

fn sink() -> (EventSink, Arc<Mutex<Vec<Event>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let e = Arc::clone(&events);
    (
        Arc::new(move |ev: &Event| e.lock().unwrap().push(ev.clone())),
        events,
    )
}

async fn wait_until(what: &str, secs: u64, mut f: impl AsyncFnMut() -> bool) {
    let limit = Duration::from_secs(secs);
    tideline_testkit::wait_until_async(what, limit, async || f().await.then_some(())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_to_s3_recovers_from_throttling_errors_and_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let c = app(&db);
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    drop(c);
    let mut server = S3Server::start(&dir.path().join("s3")).unwrap();
    let client = s3_client(&server, SECRET_KEY);

    let mut cfg = DbConfig::new(&db);
    cfg.monitor_interval = Duration::from_millis(50);
    let (events, seen) = sink();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(replicate_to(
        vec![(cfg, Arc::clone(&client))],
        settings(),
        async move {
            let _ = stop_rx.await;
        },
        events,
    ));

    // A real writer, a transaction every few milliseconds, bounded in time.
    let stop_writer = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicI64::new(0));
    let writer = {
        let (stop, committed, db) = (Arc::clone(&stop_writer), Arc::clone(&committed), db.clone());
        std::thread::spawn(move || {
            let c = app(&db);
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut i = 0i64;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                c.execute(
                    "INSERT INTO t(id, v) VALUES (?1, ?2)",
                    (i, format!("row {i} ").repeat(1 + (i % 40) as usize)),
                )
                .unwrap();
                i += 1;
                committed.store(i, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(3));
            }
        })
    };
    let puts = || server.counts().get(&Op::Put).copied().unwrap_or(0);
    wait_until("first uploads", 20, async || puts() >= 3).await;

    // Throttling, then server errors: the SDK retries them with backoff.
    server.fail_next(3, 503);
    let p = puts();
    wait_until("uploads after 503s", 20, async || puts() > p + 3).await;
    server.fail_next(2, 500);
    let p = puts();
    wait_until("uploads after 500s", 20, async || puts() > p + 3).await;

    // The server dies in the middle of an upload and stays down for a while: the
    // replicator reports errors and backs off; captures pile up locally.
    server.hold(Op::Put);
    wait_until("an upload in flight", 20, async || server.held() > 0).await;
    server.stop();
    // (The SDK retries each request first, for a few seconds.)
    wait_until("the outage being reported", 30, async || {
        seen.lock().unwrap().iter().any(Event::is_error)
    })
    .await;
    server.restart().unwrap();

    tokio::time::sleep(Duration::from_millis(500)).await;
    stop_writer.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let total = committed.load(Ordering::Relaxed);
    assert!(total > 200, "the writer made progress ({total} rows)");

    // Everything the application committed reaches the replica.
    let probe = dir.path().join("probe.db");
    let fresh = s3_client(&server, SECRET_KEY);
    wait_for_rows(&fresh, &probe, total).await;
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("stops")
        .unwrap()
        .unwrap();
    let events = seen.lock().unwrap().clone();
    assert!(
        matches!(events.last(), Some(Event::Stopped { pending: 0, .. })),
        "{:?}",
        events.last()
    );

    // Every TXID once, from 1, no gaps (a listing from the server, not the cache).
    let fresh = s3_client(&server, SECRET_KEY);
    let l0: Vec<u64> = list_levels(fresh.as_ref()).await.unwrap()[0]
        .iter()
        .map(|f| f.max_txid.0)
        .collect();
    assert_eq!(l0.first(), Some(&1));
    assert!(
        l0.windows(2).all(|w| w[1] == w[0] + 1),
        "L0 TXIDs have gaps or repeats: {l0:?}"
    );
    let out = dir.path().join("restored.db");
    restore(fresh, Target::Latest, &out, IntegrityCheck::Full)
        .await
        .unwrap();
    let c = app(&db);
    let busy: i64 = c
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .unwrap();
    assert_eq!(busy, 0);
    assert!(
        fs::read(&out).unwrap() == fs::read(&db).unwrap(),
        "restore after the faults is not byte-identical"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_fails_at_start_with_the_fix_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let c = app(&db);
    c.execute_batch(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'kept');",
    )
    .unwrap();
    let server = S3Server::start(&dir.path().join("s3")).unwrap();
    let client = s3_client(&server, "wrong-secret-value");
    let (events, _) = sink();
    let err = replicate_to(
        vec![(DbConfig::new(&db), client)],
        settings(),
        async {},
        events,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("wrong credentials"), "{err}");
    assert!(err.contains("secret-access-key"), "says what to set: {err}");
    assert!(err.contains(&server.endpoint()), "{err}");
    assert!(err.contains(&format!("s3://{BUCKET}/app")), "{err}");
    assert!(
        !err.contains("wrong-secret-value"),
        "leaks the secret: {err}"
    );
    // The application's data is untouched and still readable.
    let n: i64 = c
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}

const MIB: usize = 1 << 20;

/// `len` bytes that differ from part to part (so a part out of place shows).
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i / 4096 + i) as u8).collect()
}

fn count(server: &S3Server, op: Op) -> u64 {
    server.counts().get(&op).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_parts_grow_to_stay_within_the_part_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(&dir.path().join("s3")).unwrap();
    // S3 allows 10,000 parts; with the limit lowered to 2, a 12 MiB file at the
    // configured 5 MiB part size needs 6 MiB parts (5 MiB would take 3).
    let cfg = s3_config_at(&server.endpoint(), SECRET_KEY);
    assert_eq!(cfg.part_size, 5 * MIB as u64);
    let client = S3Replica::with_max_parts(&cfg, 2).unwrap();
    let src = dir.path().join("big.ltx");
    let data = pattern(12 * MIB);
    fs::write(&src, &data).unwrap();
    let info = client
        .write(9, Txid(1), Txid(7), std::time::SystemTime::now(), &src)
        .await
        .unwrap();
    assert_eq!(info.size, data.len() as u64);
    assert_eq!(count(&server, Op::CreateMultipart), 1);
    assert_eq!(count(&server, Op::UploadPart), 2, "{:?}", server.counts());
    assert_eq!(count(&server, Op::CompleteMultipart), 1);
    let stored = fs::read(server.object_path(&format!("app/0009/{}", info.filename()))).unwrap();
    assert!(stored == data, "the object differs from the file");
    assert_eq!(server.pending_uploads(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_multipart_completion_is_aborted_and_the_retry_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(&dir.path().join("s3")).unwrap();
    let client = s3_client(&server, SECRET_KEY);
    let src = dir.path().join("big.ltx");
    let data = pattern(6 * MIB);
    fs::write(&src, &data).unwrap();
    let write = || client.write(9, Txid(1), Txid(3), std::time::SystemTime::now(), &src);

    // A completion the server refuses (not retried by the SDK: a 400).
    server.fail_next_op(Op::CompleteMultipart, 1, 400, "InvalidPart");
    let err = write().await.unwrap_err().to_string();
    assert!(err.contains("complete multipart upload"), "{err}");
    assert!(err.contains("InvalidPart"), "{err}");
    assert_eq!(count(&server, Op::UploadPart), 2);
    assert_eq!(
        count(&server, Op::AbortMultipart),
        1,
        "{:?}",
        server.counts()
    );
    assert_eq!(
        server.pending_uploads(),
        0,
        "the failed upload's parts are left"
    );
    let key = "app/0009/0000000000000001-0000000000000003.ltx";
    assert!(!server.object_path(key).exists());

    // Trying again writes the file whole.
    write().await.unwrap();
    assert!(fs::read(server.object_path(key)).unwrap() == data);
    assert_eq!(server.pending_uploads(), 0);
    assert_eq!(count(&server, Op::AbortMultipart), 1);
}

fn rows(c: &Connection) -> Vec<(i64, String)> {
    let mut st = c.prepare("SELECT id, v FROM t ORDER BY id").unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_server_cannot_hold_shutdown_past_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let c = app(&db);
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    for i in 0..50 {
        c.execute("INSERT INTO t VALUES (?1, ?2)", (i, format!("first {i}")))
            .unwrap();
    }
    let mut server = S3Server::start(&dir.path().join("s3")).unwrap();
    let client = s3_client(&server, SECRET_KEY);

    let mut cfg = DbConfig::new(&db);
    cfg.monitor_interval = Duration::from_millis(100);
    let meta = cfg.meta_path.clone();
    let timeout = Duration::from_secs(2);
    let shutdown = ReplicateSettings {
        shutdown_sync_timeout: timeout,
        ..settings()
    };
    let (events, seen) = sink();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(replicate_to(
        vec![(cfg.clone(), Arc::clone(&client))],
        shutdown,
        async move {
            let _ = stop_rx.await;
        },
        events,
    ));
    let shipped = || {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, Event::Shipped { .. }))
            .count()
    };
    wait_until("the first upload", 20, async || shipped() >= 1).await;
    server.hold(Op::Put);
    for i in 50..80 {
        c.execute("INSERT INTO t VALUES (?1, ?2)", (i, format!("late {i}")))
            .unwrap();
    }
    // An upload of the replication loop is stalled when the stop comes; the final
    // sync stalls again. Neither may hold the stop past the timeout.
    wait_until("an upload stalled by the server", 20, async || {
        server.held() > 0
    })
    .await;
    let stopping = Instant::now();
    let _ = stop_tx.send(());
    let done = tokio::time::timeout(timeout + Duration::from_secs(10), task).await;
    let events = seen.lock().unwrap().clone();
    done.unwrap_or_else(|_| {
        panic!("shutdown is not bounded by shutdown-sync-timeout: {events:#?}")
    })
    .unwrap()
    .unwrap();
    let took = stopping.elapsed();
    assert!(
        took < timeout + Duration::from_secs(2),
        "stopping took {took:?}"
    );
    let events = seen.lock().unwrap().clone();
    let Some(Event::Stopped { pending, .. }) = events.last() else {
        panic!("{:?}", events.last())
    };
    assert!(*pending >= 1, "reports what was not shipped");
    assert!(
        events
            .iter()
            .any(|e| e.to_string().contains("shutdown-sync-timeout")),
        "says why: {events:?}"
    );
    let l0 = fs::read_dir(meta.join("ltx/0")).unwrap().count();
    assert!(l0 >= 1, "the unshipped L0 file stays in the meta directory");

    // Once the server answers again, the next start ships it.
    server.restart().unwrap();
    let client = s3_client(&server, SECRET_KEY);
    let (events, _) = sink();
    let once = ReplicateSettings {
        once: true,
        ..settings()
    };
    replicate_to(vec![(cfg, client)], once, async {}, events)
        .await
        .unwrap();
    let out = dir.path().join("restored.db");
    restore(
        s3_client(&server, SECRET_KEY),
        Target::Latest,
        &out,
        IntegrityCheck::Full,
    )
    .await
    .unwrap();
    let want = rows(&c);
    assert_eq!(want.len(), 80);
    assert_eq!(rows(&Connection::open(&out).unwrap()), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_relist_sees_what_another_writer_changed() {
    let dir = tempfile::tempdir().unwrap();
    let server = S3Server::start(&dir.path().join("s3")).unwrap();
    let ours = s3_client(&server, SECRET_KEY);
    let src = dir.path().join("f.ltx");
    fs::write(&src, b"not parsed by a listing").unwrap();
    let t0 = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut written = Vec::new();
    for i in 1..=3u64 {
        let at = t0 + Duration::from_secs(i);
        written.push(ours.write(0, Txid(i), Txid(i), at, &src).await.unwrap());
    }

    let relist = Duration::from_secs(60);
    let cfg = LevelsConfig {
        levels: Vec::new(),
        l0_retention: None,
        retention_enabled: false,
        snapshot_interval: Duration::from_secs(365 * 86_400),
        relist_interval: relist,
        ..LevelsConfig::default()
    };
    let (events, _) = sink();
    let mut m = Maintainer::new(
        dir.path().join("app.db"),
        Arc::clone(&ours),
        cfg,
        None,
        dir.path().to_path_buf(),
        None,
        Arc::new(tokio::sync::Semaphore::new(1)),
        events,
    );
    let now = std::time::SystemTime::now();
    m.tick(now).await.unwrap();
    assert_eq!(m.listing()[0], written);

    // Behind its back: a lifecycle rule removes file 1, another writer adds file 4.
    fs::remove_file(server.object_path(&format!("app/0000/{}", written[0].filename()))).unwrap();
    let other = s3_client(&server, SECRET_KEY);
    other.write(0, Txid(4), Txid(4), t0, &src).await.unwrap();

    // Before the interval the cache answers (no request)…
    let lists = count(&server, Op::List);
    m.tick(now + relist / 2).await.unwrap();
    assert_eq!(m.listing()[0].len(), 3);
    assert_eq!(count(&server, Op::List), lists);
    // …after it, the server does.
    m.tick(now + relist).await.unwrap();
    assert!(count(&server, Op::List) > lists);
    let seen: Vec<u64> = m.listing()[0].iter().map(|f| f.max_txid.0).collect();
    assert_eq!(seen, vec![2, 3, 4]);
    // Files this client wrote keep their exact creation times (LIST gives upload times).
    assert_eq!(m.listing()[0][..2], written[1..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_an_endpoint_url_are_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let c = app(&db);
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);")
        .unwrap();
    let server = S3Server::start(&dir.path().join("s3")).unwrap();
    let secret_user = "endpointuser";
    let secret_pass = "hunter2-endpoint-pass";
    let endpoint = server
        .endpoint()
        .replace("http://", &format!("http://{secret_user}:{secret_pass}@"));
    let leaks = |text: &str| text.contains(secret_pass) || text.contains(secret_user);

    let cfg = s3_config_at(&endpoint, SECRET_KEY);
    assert!(!leaks(&format!("{cfg:?}")), "{cfg:?}");
    let client = S3Replica::new(&cfg).unwrap();
    assert!(!leaks(&client.describe()), "{}", client.describe());
    assert!(client.describe().contains(&server.endpoint()));
    // The requests go to the server all the same (S3 signs with the keys).
    client.check().await.unwrap();

    // Events of a whole replication, and an error.
    let (events, seen) = sink();
    let once = ReplicateSettings {
        once: true,
        ..settings()
    };
    let client: Arc<dyn ReplicaClient> = Arc::new(client);
    replicate_to(vec![(DbConfig::new(&db), client)], once, async {}, events)
        .await
        .unwrap();
    let events = seen.lock().unwrap().clone();
    assert!(events.len() >= 2, "{events:?}");
    for e in &events {
        assert!(!leaks(&format!("{e} {e:?}")), "{e:?}");
    }
    let wrong = S3Replica::new(&s3_config_at(&endpoint, "wrong-secret")).unwrap();
    let err = wrong.check().await.unwrap_err();
    assert!(!leaks(&format!("{err} {err:?}")), "{err:?}");
    let err = ReplicaConfig::from_url(&format!("s3://{BUCKET}/p?endpoint={endpoint}&bogus=1"))
        .unwrap_err();
    assert!(!leaks(&format!("{err} {err:?}")), "{err:?}");
}

/// Waits (bounded) until a restore of `client`'s latest into `probe` has `want` rows.
async fn wait_for_rows(client: &Arc<dyn ReplicaClient>, probe: &Path, want: i64) {
    wait_until("the replica catching up", 60, async || {
        let _ = fs::remove_file(probe);
        restore(
            Arc::clone(client),
            Target::Latest,
            probe,
            IntegrityCheck::None,
        )
        .await
        .is_ok()
            && Connection::open(probe)
                .unwrap()
                .query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
                .unwrap()
                == want
    })
    .await;
}

/// A test server that can go away and come back, and a client for it.
trait Remote {
    fn stop(&mut self);
    fn restart(&mut self);
    /// What an error about it names (its endpoint).
    fn shown(&self) -> String;
    fn client(&self) -> Arc<dyn ReplicaClient>;
}

impl Remote for S3Server {
    fn stop(&mut self) {
        S3Server::stop(self);
    }
    fn restart(&mut self) {
        S3Server::restart(self).unwrap();
    }
    fn shown(&self) -> String {
        self.endpoint()
    }
    fn client(&self) -> Arc<dyn ReplicaClient> {
        s3_client(self, SECRET_KEY)
    }
}

impl Remote for WebDavServer {
    fn stop(&mut self) {
        WebDavServer::stop(self);
    }
    fn restart(&mut self) {
        WebDavServer::restart(self).unwrap();
    }
    fn shown(&self) -> String {
        self.url()
    }
    fn client(&self) -> Arc<dyn ReplicaClient> {
        let cfg = ReplicaConfig::from_url_with_env(&self.replica_url("app.db"), &|_| None).unwrap();
        tideline_engine::storage::open_client(&cfg).unwrap()
    }
}

impl Remote for AzuriteServer {
    fn stop(&mut self) {
        AzuriteServer::stop(self);
    }
    fn restart(&mut self) {
        AzuriteServer::restart(self).unwrap();
    }
    fn shown(&self) -> String {
        self.endpoint()
    }
    fn client(&self) -> Arc<dyn ReplicaClient> {
        tideline_engine::storage::open_client(&self.replica_config("backups", "app.db")).unwrap()
    }
}

impl Remote for GcsServer {
    fn stop(&mut self) {
        GcsServer::stop(self);
    }
    fn restart(&mut self) {
        GcsServer::restart(self).unwrap();
    }
    fn shown(&self) -> String {
        self.endpoint()
    }
    fn client(&self) -> Arc<dyn ReplicaClient> {
        tideline_engine::storage::open_client(&self.replica_config("backups", "app.db")).unwrap()
    }
}

impl Remote for NatsServer {
    fn stop(&mut self) {
        NatsServer::stop(self);
    }
    fn restart(&mut self) {
        NatsServer::restart(self).unwrap();
    }
    fn shown(&self) -> String {
        self.addr().to_string()
    }
    fn client(&self) -> Arc<dyn ReplicaClient> {
        tideline_engine::storage::open_client(&self.replica_config("backups")).unwrap()
    }
}

impl Remote for OssServer {
    fn stop(&mut self) {
        OssServer::stop(self);
    }
    fn restart(&mut self) {
        OssServer::restart(self).unwrap();
    }
    fn shown(&self) -> String {
        self.endpoint()
    }
    fn client(&self) -> Arc<dyn ReplicaClient> {
        tideline_engine::storage::open_client(&self.replica_config("app.db")).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oss_server_down_at_start_is_waited_for_and_caught_up_with() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = OssServer::start(&dir.path().join("oss")).unwrap();
    down_at_start(&mut server, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_server_down_at_start_is_waited_for_and_caught_up_with() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = NatsServer::start(&dir.path().join("nats")).unwrap();
    server.create_bucket("backups").await.unwrap();
    down_at_start(&mut server, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_down_at_start_is_waited_for_and_caught_up_with() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = S3Server::start(&dir.path().join("s3")).unwrap();
    down_at_start(&mut server, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webdav_server_down_at_start_is_waited_for_and_caught_up_with() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = WebDavServer::start(&dir.path().join("dav")).unwrap();
    down_at_start(&mut server, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abs_server_down_at_start_is_waited_for_and_caught_up_with() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = AzuriteServer::start(&dir.path().join("azurite")).unwrap();
    server.create_container("backups").await.unwrap();
    down_at_start(&mut server, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gs_server_down_at_start_is_waited_for_and_caught_up_with() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = GcsServer::start(&dir.path().join("gcs")).unwrap();
    server.create_bucket("backups").await.unwrap();
    down_at_start(&mut server, dir.path()).await;
}

async fn down_at_start(server: &mut dyn Remote, dir: &Path) {
    let db = dir.join("app.db");
    let c = app(&db);
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    let insert = |from: i64, n: i64| {
        for i in from..from + n {
            c.execute("INSERT INTO t VALUES (?1, ?2)", (i, format!("row {i}")))
                .unwrap();
        }
    };
    insert(0, 20);
    let client = server.client();
    server.stop();

    let (events, seen) = sink();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(replicate_to(
        vec![(DbConfig::new(&db), client)],
        settings(),
        async move {
            let _ = stop_rx.await;
        },
        events,
    ));
    // The replicator keeps running, says what is wrong, and captures meanwhile.
    wait_until("an upload error naming the endpoint", 30, async || {
        seen.lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::Error { message, .. } if message.contains(&server.shown())))
    })
    .await;
    insert(100, 20);
    wait_until("a local capture while the server is down", 30, async || {
        seen.lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::Captured { .. }))
    })
    .await;
    assert!(!task.is_finished(), "the replicator gave up");

    server.restart();
    let probe = dir.join("probe.db");
    let fresh = server.client();
    wait_for_rows(&fresh, &probe, 40).await;
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("stops")
        .unwrap()
        .unwrap();
    let rows = |c: &Connection| -> Vec<(i64, String)> {
        let mut s = c.prepare("SELECT id, v FROM t ORDER BY id").unwrap();
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let out = dir.join("restored.db");
    restore(fresh, Target::Latest, &out, IntegrityCheck::Full)
        .await
        .unwrap();
    assert_eq!(rows(&Connection::open(&out).unwrap()), rows(&c));
}
