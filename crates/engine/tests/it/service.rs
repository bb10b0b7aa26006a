//! The controllable replication service on a real database and a folder replica:
//! add, status reaching "in sync" after writes, sync now, pause and resume, restore
//! points, a restored copy at an earlier point, in-place restore with a safety copy
//! (refused while another process has the database open) and its undo, and the
//! errors for a wrong file and an unusable destination.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rusqlite::Connection;
use tideline_engine::config::{DbConfig, ReplicaConfig};
use tideline_engine::replicate::ReplicateSettings;
use tideline_engine::restore::Target;
use tideline_engine::service::{
    DbStatus, ExclusiveHold, Service, ServiceError, SyncState, check_folder_writable,
    inspect_database, probe_replica, restore_copy, restore_points, restored_copy_path,
};
use tideline_engine::storage::open_client;
use tideline_testkit::{FaultyReplica, ReplicaFault};

fn db_with_rows(path: &Path, rows: i64) -> Connection {
    let c = Connection::open(path).unwrap();
    c.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);")
        .unwrap();
    insert(&c, rows);
    c
}

fn insert(c: &Connection, n: i64) {
    for _ in 0..n {
        c.execute("INSERT INTO t (v) VALUES ('x')", []).unwrap();
    }
}

fn count(path: &Path) -> i64 {
    Connection::open(path)
        .unwrap()
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap()
}

fn cfg(db: &Path, replica: &Path) -> DbConfig {
    let mut cfg = DbConfig::new(db);
    let mut r = ReplicaConfig::from_url(replica.to_str().unwrap()).unwrap();
    r.sync_interval = Duration::from_millis(100);
    cfg.replica = Some(r);
    cfg.monitor_interval = Duration::from_millis(50);
    cfg
}

type Seen = Arc<Mutex<Vec<DbStatus>>>;

fn service() -> (Service, Seen) {
    let seen: Seen = Arc::default();
    let s = Arc::clone(&seen);
    let service = Service::new(
        tokio::runtime::Handle::current(),
        ReplicateSettings::default(),
        Arc::new(move |status, _| s.lock().unwrap().push(status.clone())),
    );
    (service, seen)
}

async fn wait_for(
    service: &Service,
    db: &Path,
    what: &str,
    ok: impl Fn(&DbStatus) -> bool,
) -> DbStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = service.status(db).unwrap();
        if ok(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn add(service: &Service, db: &Path, replica: &Path) -> DbStatus {
    let cfg = cfg(db, replica);
    let client = open_client(cfg.replica.as_ref().unwrap()).unwrap();
    service.add(cfg, client, false).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_sync_pause_resume_restore() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let replica = dir.path().join("replica");
    let conn = db_with_rows(&db, 10);
    let (service, seen) = service();

    let info = inspect_database(&db).unwrap();
    assert!(info.is_wal());
    let status = add(&service, &db, &replica).await;
    assert_eq!(status.path, db);
    assert!(matches!(
        service
            .add(
                cfg(&db, &replica),
                open_client(cfg(&db, &replica).replica.as_ref().unwrap()).unwrap(),
                false
            )
            .await,
        Err(ServiceError::AlreadyAdded(_))
    ));
    let first = wait_for(&service, &db, "first sync", |s| {
        s.state == SyncState::InSync && s.replica_txid.is_some()
    })
    .await;
    assert!(first.last_sync.is_some());
    assert!(first.size > 0);
    let earlier = SystemTime::now();
    tokio::time::sleep(Duration::from_millis(1100)).await;

    insert(&conn, 5);
    service.sync_now(&db).unwrap();
    let second = wait_for(&service, &db, "second sync", |s| {
        s.state == SyncState::InSync && s.replica_txid > first.replica_txid
    })
    .await;
    assert!(
        !seen.lock().unwrap().is_empty(),
        "the listener hears changes"
    );

    let paused = service.pause(&db).await.unwrap();
    assert_eq!(paused.state, SyncState::Paused);
    assert!(matches!(
        service.sync_now(&db),
        Err(ServiceError::Paused(_))
    ));
    insert(&conn, 5);
    service.resume(&db).unwrap();
    let third = wait_for(&service, &db, "sync after resume", |s| {
        s.state == SyncState::InSync && s.replica_txid > second.replica_txid
    })
    .await;

    // Restore points: oldest first, the newest is the replica's TXID.
    let client = service.client(&db).unwrap();
    let points = restore_points(client.as_ref()).await.unwrap();
    assert!(points.len() >= 3, "{points:?}");
    assert_eq!(points.last().unwrap().txid, third.replica_txid.unwrap());
    probe_replica(client.as_ref()).await.unwrap();

    // A copy at the earlier time holds the first 10 rows.
    let out = restored_copy_path(&db, SystemTime::now());
    let phases = Arc::new(Mutex::new(Vec::new()));
    let p = Arc::clone(&phases);
    restore_copy(
        Arc::clone(&client),
        Target::Time(earlier),
        &out,
        move |ph| p.lock().unwrap().push(ph),
    )
    .await
    .unwrap();
    assert_eq!(count(&out), 10);
    assert_eq!(phases.lock().unwrap().len(), 3);
    // And the latest holds all 20.
    let latest = dir.path().join("latest.db");
    restore_copy(Arc::clone(&client), Target::Latest, &latest, |_| {})
        .await
        .unwrap();
    assert_eq!(count(&latest), 20);
    assert!(
        restore_copy(client, Target::Latest, &latest, |_| {})
            .await
            .is_err(),
        "never overwrites"
    );

    // In place (another process holding it open is refused: see
    // in_place_restore_waits_for_other_processes_and_can_be_undone).
    drop(conn);
    let safety = service
        .restore_in_place(
            &db,
            Target::Txid(first.replica_txid.unwrap()),
            SystemTime::now(),
        )
        .await
        .unwrap()
        .safety_copy;
    assert_eq!(count(&safety), 20);
    assert_eq!(count(&db), 10);

    service.remove(&db).await.unwrap();
    assert!(service.statuses().is_empty());
    assert!(replica.join("ltx").exists(), "removing keeps the replica");
    service.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_wrong_files_and_unusable_destinations() {
    let dir = tempfile::tempdir().unwrap();
    let (service, _) = service();
    let not_db = dir.path().join("notes.txt");
    std::fs::write(&not_db, "hello, this is not a database at all").unwrap();
    let replica = dir.path().join("replica");
    let cfg1 = cfg(&not_db, &replica);
    let client = open_client(cfg1.replica.as_ref().unwrap()).unwrap();
    let err = service.add(cfg1, client, false).await.unwrap_err();
    assert!(err.to_string().contains("not a SQLite database"), "{err}");
    assert!(matches!(
        inspect_database(&dir.path().join("missing.db")),
        Err(tideline_engine::Error::DatabaseMissing(_))
    ));

    // A destination below a regular file cannot be listed.
    let db = dir.path().join("app.db");
    drop(db_with_rows(&db, 1));
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, "").unwrap();
    let bad: PathBuf = blocker.join("replica");
    let cfg2 = cfg(&db, &bad);
    let client = open_client(cfg2.replica.as_ref().unwrap()).unwrap();
    let err = service.add(cfg2, client, false).await.unwrap_err();
    assert!(err.to_string().contains("blocker"), "{err}");
    assert!(check_folder_writable(&bad).is_err());
    check_folder_writable(&dir.path().join("new").join("backup")).unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path().join("new").join("backup"))
            .unwrap()
            .count(),
        0
    );
    assert!(service.statuses().is_empty());

    // A delete-mode database is reported as such (replication switches it to WAL).
    let rollback = dir.path().join("rollback.db");
    Connection::open(&rollback)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    assert_eq!(inspect_database(&rollback).unwrap().journal_mode, "delete");
}

/// What the tray's Quit relies on: shutdown ships what was written just before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ships_what_is_pending() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let replica = dir.path().join("replica");
    let conn = db_with_rows(&db, 3);
    let (service, _) = service();
    add(&service, &db, &replica).await;
    wait_for(&service, &db, "first sync", |s| {
        s.state == SyncState::InSync && s.replica_txid.is_some()
    })
    .await;
    insert(&conn, 4);
    drop(conn);
    service.shutdown().await;
    let client = open_client(cfg(&db, &replica).replica.as_ref().unwrap()).unwrap();
    let out = dir.path().join("after-quit.db");
    restore_copy(client, Target::Latest, &out, |_| {})
        .await
        .unwrap();
    assert_eq!(count(&out), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_database_whose_destination_is_missing_at_start_shows_an_error_until_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let replica = dir.path().join("drive").join("backups");
    let c = db_with_rows(&db, 5);
    let (first, _) = service();
    let client = open_client(cfg(&db, &replica).replica.as_ref().unwrap()).unwrap();
    first.add(cfg(&db, &replica), client, false).await.unwrap();
    wait_for(&first, &db, "in sync", |s| s.state == SyncState::InSync).await;
    first.shutdown().await;

    // The app starts again while the drive is not mounted.
    let unmounted = dir.path().join("drive-unmounted");
    std::fs::rename(dir.path().join("drive"), &unmounted).unwrap();
    insert(&c, 5);
    let (service, _) = service();
    let client = open_client(cfg(&db, &replica).replica.as_ref().unwrap()).unwrap();
    service
        .add_saved(cfg(&db, &replica), client, false)
        .unwrap();
    let s = wait_for(&service, &db, "the Error state", |s| {
        s.state == SyncState::Error
    })
    .await;
    let err = s.error.unwrap();
    assert_eq!(
        err.code,
        tideline_engine::ErrorCode::DestinationMissing,
        "{err}"
    );
    assert!(err.message.contains("is the drive connected?"), "{err}");
    assert!(!replica.exists(), "nothing is written where the drive was");

    std::fs::rename(&unmounted, dir.path().join("drive")).unwrap();
    wait_for(&service, &db, "in sync again", |s| {
        s.state == SyncState::InSync && s.error.is_none()
    })
    .await;
    service.shutdown().await;
    let out = dir.path().join("restored.db");
    let client = open_client(cfg(&db, &replica).replica.as_ref().unwrap()).unwrap();
    tideline_engine::restore::restore(
        client,
        Target::Latest,
        &out,
        tideline_engine::restore::IntegrityCheck::Full,
    )
    .await
    .unwrap();
    assert_eq!(count(&out), 10);
}

/// A real other process (Python's sqlite3) with the database open, until dropped.
struct Holder(std::process::Child);

impl Holder {
    /// Opens `db` in another process, reads it (so SQLite holds its lock there), and
    /// returns once that is done.
    fn open(db: &Path) -> Holder {
        use std::io::BufRead;
        let mut child = std::process::Command::new("python3")
            .args([
                "-c",
                "import sqlite3, sys\n\
                 c = sqlite3.connect(sys.argv[1])\n\
                 c.execute('SELECT count(*) FROM t').fetchone()\n\
                 print('ready', flush=True)\n\
                 sys.stdin.read()",
            ])
            .arg(db)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs (scripts/setup.sh installs it)");
        // Bounded: the child either prints or exits (closing its stdout).
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line.trim(),
            "ready",
            "the holder process opened {}",
            db.display()
        );
        Holder(child)
    }

    /// Closes its stdin; it closes the database and exits.
    fn close(mut self) {
        drop(self.0.stdin.take());
        self.0.wait().unwrap();
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether another process can read `db` right now (busy timeout 0).
fn readable_elsewhere(db: &Path) -> bool {
    std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys\n\
             sqlite3.connect(sys.argv[1], timeout=0).execute('SELECT count(*) FROM t').fetchone()",
        ])
        .arg(db)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_place_restore_waits_for_other_processes_and_can_be_undone() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let replica = dir.path().join("replica");
    let conn = db_with_rows(&db, 10);
    let (service, _) = service();
    add(&service, &db, &replica).await;
    let first = wait_for(&service, &db, "first sync", |s| {
        s.state == SyncState::InSync && s.replica_txid.is_some()
    })
    .await;
    insert(&conn, 5);
    drop(conn);
    service.sync_now(&db).unwrap();
    wait_for(&service, &db, "second sync", |s| {
        s.state == SyncState::InSync && s.replica_txid > first.replica_txid
    })
    .await;
    let target = Target::Txid(first.replica_txid.unwrap());

    // Another process has it open: refused, the database unchanged, replication back.
    let holder = Holder::open(&db);
    let err = service
        .restore_in_place(&db, target, SystemTime::now())
        .await
        .unwrap_err();
    assert!(matches!(&err, ServiceError::InUse { .. }), "{err}");
    assert!(err.to_string().contains("open in another program"), "{err}");
    assert_eq!(count(&db), 15);
    assert_ne!(service.status(&db).unwrap().state, SyncState::Paused);

    // The portable check alone (SQLite's own locks, no /proc): with replication
    // paused, the other process is what stands in the way.
    service.pause(&db).await.unwrap();
    let err = ExclusiveHold::take(&db).unwrap_err();
    assert!(matches!(&err, ServiceError::InUse { .. }), "{err}");
    holder.close();
    let hold = ExclusiveHold::take(&db).unwrap();
    assert!(
        !readable_elsewhere(&db),
        "the hold keeps other processes out"
    );
    hold.release().unwrap();
    assert!(readable_elsewhere(&db));
    service.resume(&db).unwrap();

    // Once it has closed: restored, with a safety copy of the state before.
    let at = SystemTime::now();
    let done = service.restore_in_place(&db, target, at).await.unwrap();
    assert_eq!(done.restored.txid, first.replica_txid.unwrap());
    assert_eq!(count(&db), 10);
    assert_eq!(count(&done.safety_copy), 15);
    assert!(!PathBuf::from(format!("{}.tmp", db.display())).exists());
    let restored = wait_for(&service, &db, "sync after the restore", |s| {
        s.state == SyncState::InSync && s.error.is_none()
    })
    .await;
    assert_eq!(restored.state, SyncState::InSync);

    // Undo: the safety copy goes back in place, by the same steps (so the restored
    // state gets a safety copy of its own).
    // At the same time as the restore: the new safety copy gets a name of its own.
    let undone = service
        .undo_restore(&db, &done.safety_copy, at)
        .await
        .unwrap();
    assert_ne!(undone.safety_copy, done.safety_copy);
    assert_eq!(count(&db), 15);
    assert_eq!(count(&undone.safety_copy), 10);
    assert!(
        done.safety_copy.exists(),
        "the restore point undone with is kept"
    );
    service.shutdown().await;
}

/// On tokio's paused clock, with the service's clock following it: a database whose
/// uploads stall is "syncing" until its oldest unshipped change is LAGGING_AFTER old,
/// then "lagging" — decided by the clock passed in, so 15 s pass in milliseconds.
#[tokio::test(start_paused = true)]
async fn a_stalled_destination_turns_lagging_after_exactly_lagging_after() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let _conn = db_with_rows(&db, 10);
    let clock = tideline_engine::Clock::following_tokio(SystemTime::now());
    let service = Service::new(
        tokio::runtime::Handle::current(),
        ReplicateSettings {
            clock,
            ..ReplicateSettings::default()
        },
        Arc::new(|_, _| {}),
    );
    let cfg = cfg(&db, &dir.path().join("replica"));
    let client = FaultyReplica::new(open_client(cfg.replica.as_ref().unwrap()).unwrap())
        .writes(0, ReplicaFault::Stall);
    service.add(cfg, Arc::new(client), false).await.unwrap();

    // Poll on tokio's clock; bounded in simulated time (and so in steps).
    let step = Duration::from_millis(100);
    let start = tokio::time::Instant::now();
    let mut syncing_at = None;
    let lagging_at = loop {
        let s = service.status(&db).unwrap();
        let now = tokio::time::Instant::now();
        match s.state {
            SyncState::Syncing => {
                syncing_at.get_or_insert(now);
            }
            SyncState::Lagging => break now,
            SyncState::Starting => {}
            other => panic!("unexpected state {other:?}: {s:?}"),
        }
        assert!(
            now - start < Duration::from_secs(120),
            "never lagging: {s:?}"
        );
        tokio::time::sleep(step).await;
    };
    let syncing_at = syncing_at.expect("syncing before lagging");
    let waited = lagging_at - syncing_at;
    let lagging_after = tideline_engine::service::LAGGING_AFTER;
    assert!(
        waited + step >= lagging_after && waited <= lagging_after + 2 * step,
        "lagging after {waited:?} of unshipped changes, expected {lagging_after:?}"
    );
    service.shutdown().await;
}
