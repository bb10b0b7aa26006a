//! Continuous replication end to end: a real application writes while the replicator
//! runs; the replica restores to what the application wrote; an idle database makes no
//! replica requests; positions carry over restarts; a reset replica starts afresh.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tideline_engine::config::DbConfig;
use tideline_engine::replicate::{
    Event, EventSink, ReplicateSettings, Stage, TaskControl, TaskStats, replicate_one,
    replicate_to, wake_channel,
};
use tideline_engine::restore::{IntegrityCheck, Target, list_levels, restore};
use tideline_engine::storage::ReplicaClient;
use tideline_engine::storage::file::FileReplica;
use tideline_ltx::Txid;
use tideline_testkit::{CountingReplica, FaultyReplica, ReplicaFault};
use tokio::sync::oneshot;

struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<tideline_engine::Result<()>>,
    events: Arc<Mutex<Vec<Event>>>,
}

impl Running {
    /// Waits (bounded) for an event matching `f`; returns it.
    async fn wait_for(&self, f: impl Fn(&Event) -> bool) -> Event {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(e) = self.events.lock().unwrap().iter().find(|e| f(e)) {
                return e.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no such event within 20 s: {:#?}",
                self.events.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The events so far, one per line, for failure messages.
    fn events_text(&self) -> String {
        let events = self.events.lock().unwrap();
        events.iter().map(|e| format!("\n  {e}")).collect()
    }

    async fn stop(mut self) -> Vec<Event> {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("stops within 30 s")
            .unwrap()
            .unwrap();
        self.events.lock().unwrap().clone()
    }
}

fn start(db: &Path, client: Arc<dyn ReplicaClient>) -> Running {
    let settings = ReplicateSettings {
        once: false,
        shutdown_sync_timeout: Duration::from_secs(5),
        shutdown_sync_interval: Duration::from_millis(100),
        ..ReplicateSettings::default()
    };
    start_with(db, client, settings)
}

/// [`start`] with `settings` (the levels still get a 1 s L1 window).
fn start_with(
    db: &Path,
    client: Arc<dyn ReplicaClient>,
    mut settings: ReplicateSettings,
) -> Running {
    let mut cfg = DbConfig::new(db);
    cfg.monitor_interval = Duration::from_millis(100);
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink: EventSink = {
        let events = Arc::clone(&events);
        Arc::new(move |e: &Event| events.lock().unwrap().push(e.clone()))
    };
    let (tx, rx) = oneshot::channel::<()>();
    // A 1 s L1 window: compaction settles within the tests' idle waits (with the
    // default 30 s window, an L1 upload could land in the middle of one).
    settings.levels.levels = vec![Duration::from_secs(1)];
    let task = tokio::spawn(replicate_to(
        vec![(cfg, client)],
        settings,
        async move {
            let _ = rx.await;
        },
        sink,
    ));
    Running {
        stop: Some(tx),
        task,
        events,
    }
}

fn app(path: &Path) -> Connection {
    let c = Connection::open(path).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c.pragma_update(None, "journal_mode", "wal").unwrap();
    c
}

fn write(c: &Connection, from: i64, n: i64) {
    let tx = c.unchecked_transaction().unwrap();
    for i in from..from + n {
        tx.execute(
            "INSERT INTO t(id, v) VALUES (?1, ?2)",
            (i, format!("value {i} ").repeat(20)),
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

fn rows(c: &Connection) -> i64 {
    c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap()
}

async fn replica_txid(client: &dyn ReplicaClient) -> Option<Txid> {
    list_levels(client)
        .await
        .unwrap()
        .iter()
        .flatten()
        .map(|f| f.max_txid)
        .max()
}

/// Waits (bounded) until restoring the replica gives `want` rows.
async fn wait_rows(replica: &Path, scratch: &Path, want: i64) {
    wait_rows_or(replica, scratch, want, Duration::from_secs(20), String::new).await;
}

/// [`wait_rows`] within `within`, with `diag` (the events so far, say) in the failure
/// message.
async fn wait_rows_or(
    replica: &Path,
    scratch: &Path,
    want: i64,
    within: Duration,
    diag: impl Fn() -> String,
) {
    let deadline = Instant::now() + within;
    let out = scratch.join("probe.db");
    loop {
        if let Ok(r) = restore(
            Arc::new(FileReplica::new(replica)),
            Target::Latest,
            &out,
            IntegrityCheck::None,
        )
        .await
        {
            let _ = r;
            if rows(&Connection::open(&out).unwrap()) == want {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "replica did not reach {want} rows within {within:?}{}",
            diag()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A temporary directory with an application database holding 10 rows; returns the
/// directory, the replica path (not yet created), the database path and a connection.
fn setup() -> (tempfile::TempDir, PathBuf, PathBuf, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let c = app(&db);
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    write(&c, 0, 10);
    let replica = dir.path().join("replica");
    (dir, replica, db, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_reach_the_replica_while_the_application_writes() {
    let (dir, replica, db, c) = setup();
    let run = start(&db, Arc::new(FileReplica::new(&replica)));
    wait_rows(&replica, dir.path(), 10).await;
    for k in 0..20 {
        write(&c, 100 + k * 10, 10);
        if k % 5 == 0 {
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }
    wait_rows(&replica, dir.path(), 210).await;
    // Written just before shutdown: shipped by the final sync.
    write(&c, 10_000, 5);
    let events = run.stop().await;
    let out = dir.path().join("final.db");
    restore(
        Arc::new(FileReplica::new(&replica)),
        Target::Latest,
        &out,
        IntegrityCheck::Full,
    )
    .await
    .unwrap();
    assert_eq!(rows(&Connection::open(&out).unwrap()), 215);

    assert!(
        matches!(events.first(), Some(Event::Started { txid: None, .. })),
        "{:?}",
        events.first()
    );
    assert!(events.iter().any(|e| matches!(e, Event::Shipped { .. })));
    assert!(
        matches!(events.last(), Some(Event::Stopped { pending: 0, .. })),
        "{:?}",
        events.last()
    );
    assert!(!events.iter().any(Event::is_error), "{events:#?}");
    let snapshots = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Captured {
                    snapshot: Some(_),
                    ..
                }
            )
        })
        .count();
    assert_eq!(
        snapshots, 1,
        "only the first capture holds the whole database"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_database_makes_no_replica_requests() {
    let (dir, replica, db, c) = setup();
    let (client, counts) = CountingReplica::new(Arc::new(FileReplica::new(&replica)));
    let run = start(&db, Arc::new(client));
    wait_rows(&replica, dir.path(), 10).await;
    write(&c, 100, 10);
    wait_rows(&replica, dir.path(), 20).await;
    // Let the last capture and upload settle, then watch: nothing may happen.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let settled = counts.total();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(counts.total(), settled, "requests while idle");
    // And it wakes up again on the next write.
    write(&c, 200, 1);
    wait_rows(&replica, dir.path(), 21).await;
    assert!(counts.total() > settled);
    run.stop().await;
}

/// The replicator's own look at the `-wal` must not wake it again: over a few idle
/// seconds it syncs no more often than its timers tick (the 10 s fallback poll, the
/// compaction window and the L0 retention check: at most one each in the window),
/// whether the application keeps its connection open (and reads) or closes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_database_wakes_only_on_its_timers() {
    let (dir, replica, db, c) = setup();
    let mut cfg = DbConfig::new(&db);
    cfg.monitor_interval = Duration::from_millis(100);
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let stats = Arc::new(TaskStats::default());
    let task = tokio::spawn(replicate_one(
        cfg,
        Arc::new(FileReplica::new(&replica)),
        ReplicateSettings::default(),
        Arc::new(tokio::sync::Semaphore::new(1)),
        TaskControl {
            stop,
            wake: wake_channel(),
            stats: Arc::clone(&stats),
        },
        Arc::new(|_: &Event| {}),
    ));
    wait_rows(&replica, dir.path(), 10).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The application's connection stays open and reads.
    let before = stats.syncs();
    for _ in 0..30 {
        assert_eq!(rows(&c), 10);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let open = stats.syncs() - before;
    assert!(open <= 3, "{open} syncs in 3 idle seconds, connection open");

    // Closing it is one event (the -wal's writer closed it); then nothing.
    drop(c);
    let before = stats.syncs();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let closed = stats.syncs() - before;
    assert!(
        closed <= 4,
        "{closed} syncs in 3 idle seconds, connection closed"
    );

    // Still awake to real changes.
    write(&app(&db), 100, 5);
    wait_rows(&replica, dir.path(), 15).await;
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("stops within 30 s")
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_resumes_after_a_restart_and_after_a_replica_reset() {
    let (dir, replica, db, c) = setup();
    let client: Arc<dyn ReplicaClient> = Arc::new(FileReplica::new(&replica));
    let run = start(&db, Arc::clone(&client));
    wait_rows(&replica, dir.path(), 10).await;
    run.stop().await;
    let before = replica_txid(client.as_ref()).await.unwrap();

    // Writes while stopped are picked up, continuing the TXIDs incrementally.
    write(&c, 100, 10);
    let run = start(&db, Arc::clone(&client));
    wait_rows(&replica, dir.path(), 20).await;
    let events = run.stop().await;
    assert!(
        matches!(events.first(), Some(Event::Started { txid: Some(t), .. }) if *t == before),
        "{:?}",
        events.first()
    );
    assert!(
        !events.iter().any(|e| matches!(
            e,
            Event::Captured {
                snapshot: Some(_),
                ..
            }
        )),
        "{events:#?}"
    );
    assert_eq!(replica_txid(client.as_ref()).await.unwrap().0, before.0 + 1);

    // The destination disappears (a drive not mounted yet, a renamed folder): nothing
    // is written where it was, the problem is reported, local files stay.
    let away = dir.path().join("replica-away");
    fs::rename(&replica, &away).unwrap();
    write(&c, 200, 10);
    let run = start(&db, Arc::clone(&client));
    let missing = run
        .wait_for(|e| {
            matches!(e, Event::Error { stage: Stage::Ship, message, .. }
                if message.contains("destination missing") && message.contains("tideline-shipped.json"))
        })
        .await;
    assert!(!replica.exists(), "the replica root was not recreated");
    // When it is back, replication resumes from the local position, incrementally.
    fs::rename(&away, &replica).unwrap();
    wait_rows(&replica, dir.path(), 30).await;
    let events = run.stop().await;
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::Recovered {
                stage: Stage::Ship,
                ..
            }
        )),
        "{missing:?}"
    );
    assert!(!events.iter().any(|e| matches!(
        e,
        Event::Captured {
            snapshot: Some(_),
            ..
        }
    )));
    assert_eq!(replica_txid(client.as_ref()).await.unwrap().0, before.0 + 2);

    // Emptied on purpose, and the shipped record deleted as the error says: a new
    // backup starts there at TXID 1 with the whole database.
    fs::remove_dir_all(&replica).unwrap();
    fs::remove_file(tideline_engine::capture::default_meta_dir(&db).join("tideline-shipped.json"))
        .unwrap();
    write(&c, 300, 10);
    let run = start(&db, Arc::clone(&client));
    wait_rows(&replica, dir.path(), 40).await;
    let events = run.stop().await;
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::Captured {
                txid: Txid(1),
                snapshot: Some(_),
                ..
            }
        )),
        "{events:#?}"
    );
}

/// Every row of `t`, for row-for-row comparisons.
fn all_rows(c: &Connection) -> Vec<(i64, String)> {
    let mut stmt = c.prepare("SELECT id, v FROM t ORDER BY id").unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Restores the latest state of the folder replica at `replica` and checks it holds
/// exactly the application's rows.
async fn assert_latest_equals(replica: &Path, scratch: &Path, c: &Connection) {
    let out = scratch.join("latest.db");
    let _ = fs::remove_file(&out);
    restore(
        Arc::new(FileReplica::new(replica)),
        Target::Latest,
        &out,
        IntegrityCheck::Full,
    )
    .await
    .unwrap();
    assert_eq!(
        all_rows(&Connection::open(&out).unwrap()),
        all_rows(c),
        "restore latest differs from the database"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_that_comes_back_different_gets_a_consistent_new_generation() {
    let (dir, replica, db, c) = setup();
    let client: Arc<dyn ReplicaClient> = Arc::new(FileReplica::new(&replica));
    let run = start(&db, Arc::clone(&client));
    wait_rows(&replica, dir.path(), 10).await;
    write(&c, 100, 10);
    wait_rows(&replica, dir.path(), 20).await;
    run.stop().await;

    // Another machine's backup of another database now stands where ours was: its
    // TXIDs overlap ours, with other files.
    let other_db = dir.path().join("other.db");
    let other = app(&other_db);
    other
        .execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    let other_replica = dir.path().join("other-replica");
    let run = start(&other_db, Arc::new(FileReplica::new(&other_replica)));
    for k in 0..6 {
        write(&other, 1000 + k * 100, 50);
        wait_rows(&other_replica, dir.path(), 50 * (k + 1)).await;
    }
    run.stop().await;
    fs::remove_dir_all(&replica).unwrap();
    fs::rename(&other_replica, &replica).unwrap();

    write(&c, 200, 10);
    let run = start(&db, Arc::clone(&client));
    let new_gen = run
        .wait_for(|e| matches!(e, Event::NewGeneration { .. }))
        .await;
    wait_rows(&replica, dir.path(), 30).await;
    write(&c, 300, 5);
    wait_rows(&replica, dir.path(), 35).await;
    let events = run.stop().await;
    assert!(!events.iter().any(Event::is_error), "{events:#?}");
    let Event::NewGeneration { txid, .. } = new_gen else {
        unreachable!()
    };
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Captured { txid: t, snapshot: Some(_), .. } if *t == txid)),
        "the new generation starts with the whole database at {txid}: {events:#?}"
    );
    assert_latest_equals(&replica, dir.path(), &c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_that_vanishes_while_replicating_is_not_recreated_and_catches_up() {
    let (dir, replica, db, c) = setup();
    let run = start(&db, Arc::new(FileReplica::new(&replica)));
    wait_rows(&replica, dir.path(), 10).await;
    let away = dir.path().join("unmounted");
    fs::rename(&replica, &away).unwrap();
    write(&c, 100, 10);
    run.wait_for(|e| {
        matches!(e, Event::Error { stage: Stage::Ship, message, .. } if message.contains("destination missing"))
    })
    .await;
    // Commits go on being captured locally meanwhile, and nothing is written where the
    // replica was.
    write(&c, 200, 10);
    run.wait_for(|e| matches!(e, Event::Captured { .. })).await;
    assert!(!replica.exists(), "the replica root was recreated");
    fs::rename(&away, &replica).unwrap();
    wait_rows(&replica, dir.path(), 30).await;
    let events = run.stop().await;
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Recovered {
            stage: Stage::Ship,
            ..
        }
    )));
    assert!(matches!(
        events.last(),
        Some(Event::Stopped { pending: 0, .. })
    ));
    assert_latest_equals(&replica, dir.path(), &c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_maintenance_never_stops_capture_and_upload() {
    let (dir, replica, db, c) = setup();
    let run = start(
        &db,
        Arc::new(
            FaultyReplica::new(Arc::new(FileReplica::new(&replica)))
                .writes(1, ReplicaFault::Forbidden)
                .deletes(ReplicaFault::Forbidden),
        ),
    );
    wait_rows(&replica, dir.path(), 10).await;
    run.wait_for(|e| {
        matches!(
            e,
            Event::Error {
                stage: Stage::Maintain,
                ..
            }
        )
    })
    .await;
    // Each commit still reaches the replica within the usual second or so: well
    // within the upload side's 10 s fallback poll, so a commit that only the poll
    // ships (one captured by a failing snapshot's retry, nobody telling the upload
    // side) fails this.
    for k in 0..5 {
        write(&c, 100 + k * 10, 10);
        let within = Duration::from_secs(8);
        wait_rows_or(&replica, dir.path(), 20 + k * 10, within, || {
            run.events_text()
        })
        .await;
    }
    let events = run.stop().await;
    assert!(
        !events.iter().any(|e| matches!(
            e,
            Event::Error {
                stage: Stage::Ship | Stage::Capture,
                ..
            }
        )),
        "{events:#?}"
    );
    assert_latest_equals(&replica, dir.path(), &c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_compaction_upload_never_delays_capture_and_upload() {
    let (dir, replica, db, c) = setup();
    let run = start(
        &db,
        Arc::new(
            FaultyReplica::new(Arc::new(FileReplica::new(&replica)))
                .writes(1, ReplicaFault::Delay(Duration::from_secs(30)))
                .deletes(ReplicaFault::Forbidden),
        ),
    );
    wait_rows(&replica, dir.path(), 10).await;
    // A compaction upload is under way (30 s) from the first window on; each commit
    // still reaches the replica within the usual second or so.
    let t = Instant::now();
    for k in 0..5 {
        write(&c, 100 + k * 10, 10);
        wait_rows(&replica, dir.path(), 20 + k * 10).await;
    }
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "uploads waited for the compaction: {:?}",
        t.elapsed()
    );
    run.stop().await;
    assert_latest_equals(&replica, dir.path(), &c).await;
}

/// An HTTP server on 127.0.0.1 answering every request with `status`, for 60 s at
/// most; returns its ping URL and the requests' first lines.
fn monitor(status: u16) -> (String, Arc<Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/ping/abc", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let Ok((stream, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            stream.set_nonblocking(false).unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            // The rest of the head, up to the blank line.
            let mut h = String::new();
            while reader.read_line(&mut h).is_ok_and(|n| n > 2) {
                h.clear();
            }
            log.lock().unwrap().push(line.trim().to_owned());
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (url, seen)
}

fn start_with_heartbeat(db: &Path, client: Arc<dyn ReplicaClient>, url: &str) -> Running {
    let mut settings = ReplicateSettings {
        once: false,
        shutdown_sync_timeout: Duration::from_secs(2),
        shutdown_sync_interval: Duration::from_millis(100),
        heartbeat_check_every: Duration::from_millis(50),
        ..ReplicateSettings::default()
    };
    settings.heartbeat = Some(tideline_engine::config::HeartbeatConfig {
        url: url.to_owned(),
        interval: Duration::from_secs(60),
    });
    start_with(db, client, settings)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heartbeat_is_sent_while_replicating_and_never_while_uploads_fail() {
    // Replicating: the monitor hears a GET (once: the interval is a minute).
    let (dir, replica, db, _c) = setup();
    let (url, seen) = monitor(200);
    let run = start_with_heartbeat(&db, Arc::new(FileReplica::new(&replica)), &url);
    let sent = run
        .wait_for(|e| matches!(e, Event::Heartbeat { error: None, .. }))
        .await;
    assert!(matches!(sent, Event::Heartbeat { ref url, .. } if url.ends_with("/ping/abc")));
    assert_eq!(
        *seen.lock().unwrap(),
        vec!["GET /ping/abc HTTP/1.1".to_owned()]
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "more than one ping per interval"
    );
    run.stop().await;
    drop(dir);

    // The destination unusable from the start (its folder is a file): no ping at
    // all, though capture goes on.
    let (dir, replica, db, c) = setup();
    fs::write(&replica, b"not a folder").unwrap();
    let (url, seen) = monitor(200);
    let run = start_with_heartbeat(&db, Arc::new(FileReplica::new(&replica)), &url);
    run.wait_for(|e| {
        matches!(
            e,
            Event::Error {
                stage: Stage::Ship,
                ..
            }
        )
    })
    .await;
    write(&c, 100, 10);
    run.wait_for(|e| matches!(e, Event::Captured { .. })).await;
    // Many heartbeat checks (every 50 ms) pass meanwhile.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(seen.lock().unwrap().is_empty(), "pinged while uploads fail");
    let events = run.stop().await;
    assert!(!events.iter().any(|e| matches!(e, Event::Heartbeat { .. })));
    drop(dir);

    // A monitor that answers 500: reported as a failed heartbeat.
    let (_dir, replica, db, _c) = setup();
    let (url, _seen) = monitor(500);
    let run = start_with_heartbeat(&db, Arc::new(FileReplica::new(&replica)), &url);
    let failed = run
        .wait_for(|e| matches!(e, Event::Heartbeat { error: Some(_), .. }))
        .await;
    assert!(failed.to_string().contains("500"), "{failed}");
    assert!(failed.is_error());
    run.stop().await;
}
