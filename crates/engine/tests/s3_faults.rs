//! Replication to S3 through faults, on a real S3 server on 127.0.0.1 while a real
//! application writes: throttling (503), server errors (500), the server stopped in the
//! middle of an upload and started again. Replication recovers with every TXID in the
//! replica exactly once and the replica restoring to the database byte for byte; a
//! wrong secret fails at once with an error that names the fix, and loses nothing.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tideline_engine::config::{DbConfig, ReplicaConfig, ReplicaTarget};
use tideline_engine::replica::ReplicaClient;
use tideline_engine::replica::s3::S3Replica;
use tideline_engine::replicate::{Event, EventSink, ReplicateSettings, replicate_to};
use tideline_engine::restore::{IntegrityCheck, Target, list_levels, restore};
use tideline_testkit::{ACCESS_KEY, BUCKET, Op, REGION, S3Server, SECRET_KEY};
use tokio::sync::oneshot;

fn s3_client(server: &S3Server, secret: &str) -> Arc<dyn ReplicaClient> {
    let url = format!(
        "s3://{BUCKET}/app?endpoint={}&region={REGION}&forcePathStyle=true",
        server.endpoint()
    );
    let secret = secret.to_string();
    let env = move |k: &str| match k {
        "LITESTREAM_ACCESS_KEY_ID" => Some(ACCESS_KEY.to_string()),
        "LITESTREAM_SECRET_ACCESS_KEY" => Some(secret.clone()),
        _ => None,
    };
    let cfg = ReplicaConfig::from_url_with_env(&url, &env).unwrap();
    let ReplicaTarget::S3(s3) = &cfg.target else {
        unreachable!()
    };
    Arc::new(S3Replica::new(s3).unwrap())
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
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
    wait_until("the replica catching up", 60, async || {
        restore(
            Arc::clone(&fresh),
            Target::Latest,
            &probe,
            IntegrityCheck::None,
        )
        .await
        .is_ok()
            && Connection::open(&probe)
                .unwrap()
                .query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
                .unwrap()
                == total
    })
    .await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_down_at_start_is_waited_for_and_caught_up_with() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
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
    let mut server = S3Server::start(&dir.path().join("s3")).unwrap();
    let client = s3_client(&server, SECRET_KEY);
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
        seen.lock().unwrap().iter().any(
            |e| matches!(e, Event::Error { message, .. } if message.contains(&server.endpoint())),
        )
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

    server.restart().unwrap();
    let probe = dir.path().join("probe.db");
    let fresh = s3_client(&server, SECRET_KEY);
    wait_until("the replica catching up", 60, async || {
        let _ = fs::remove_file(&probe);
        restore(
            Arc::clone(&fresh),
            Target::Latest,
            &probe,
            IntegrityCheck::None,
        )
        .await
        .is_ok()
            && Connection::open(&probe)
                .unwrap()
                .query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
                .unwrap()
                == 40
    })
    .await;
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
    let out = dir.path().join("restored.db");
    restore(fresh, Target::Latest, &out, IntegrityCheck::Full)
        .await
        .unwrap();
    assert_eq!(rows(&Connection::open(&out).unwrap()), rows(&c));
}
