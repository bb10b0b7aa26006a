//! Directories of databases at fleet cost: an idle database of a directory (watched
//! or not; this one is not) is put away (no SQLite connection, no open file of it left in the process) and loses
//! nothing when it wakes — also when the application checkpointed and restarted the
//! WAL meanwhile, which nothing pinned.

use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tideline_engine::config::Config;
use tideline_engine::replicate::{Event, EventSink, IdleClose, ReplicateSettings, replicate_dirs};
use tideline_engine::restore::{IntegrityCheck, Target, restore};
use tideline_engine::storage::file::FileReplica;
use tokio::sync::oneshot;

/// Files of this process open on `path` (Linux: `/proc/self/fd`).
fn open_fds_on(path: &Path) -> usize {
    fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter(|e| fs::read_link(e.path()).is_ok_and(|t| t == path))
        .count()
}

/// Writes `n` rows from `from` through a connection of its own, closed after.
fn write(db: &Path, from: i64, n: i64, then: &str) {
    let c = Connection::open(db).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c.pragma_update(None, "journal_mode", "wal").unwrap();
    c.execute_batch("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    let tx = c.unchecked_transaction().unwrap();
    for i in from..from + n {
        tx.execute(
            "INSERT INTO t(id, v) VALUES (?1, ?2)",
            (i, format!("v{i}").repeat(30)),
        )
        .unwrap();
    }
    tx.commit().unwrap();
    c.execute_batch(then).unwrap();
}

fn all_rows(db: &Path) -> Vec<(i64, String)> {
    let c = Connection::open(db).unwrap();
    let mut stmt = c.prepare("SELECT id, v FROM t ORDER BY id").unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Waits (bounded) until the replica restores exactly the database's rows.
async fn wait_equal(replica: &Path, db: &Path, out: &Path) {
    let want = all_rows(db);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let _ = fs::remove_file(out);
        let restored = restore(
            Arc::new(FileReplica::new(replica)),
            Target::Latest,
            out,
            IntegrityCheck::Full,
        )
        .await;
        if restored.is_ok() && all_rows(out) == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the replica did not reach the database's {} rows",
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (bounded) until the replicator holds no file of `db` open.
async fn wait_put_away(db: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while open_fds_on(db) > 0 {
        assert!(
            Instant::now() < deadline,
            "{} was never put away",
            db.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_database_of_a_directory_is_put_away_and_loses_nothing_when_it_wakes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fs::create_dir(&data).unwrap();
    let (a, b) = (data.join("a.db"), data.join("b.db"));
    write(&a, 0, 10, "");
    write(&b, 0, 10, "");
    let replica = dir.path().join("replica");
    let text = format!(
        "dbs:\n  - dir: {}\n    pattern: \"*.db\"\n    monitor-interval: 50ms\n    \
         replica:\n      path: {}\n      sync-interval: 50ms\n",
        data.display(),
        replica.display()
    );
    let config = Config::parse(&text, &|_| None, true).unwrap();
    let dbs = tideline_engine::databases_of(&config).unwrap();
    assert_eq!(dbs.len(), 2);
    let settings = ReplicateSettings {
        shutdown_sync_timeout: Duration::from_secs(5),
        idle_close: Some(IdleClose {
            after: Duration::from_millis(300),
            max_db_bytes: 64 << 20,
        }),
        ..ReplicateSettings::default()
    };
    let events = Arc::new(Mutex::new(Vec::<Event>::new()));
    let sink: EventSink = {
        let events = Arc::clone(&events);
        Arc::new(move |e: &Event| events.lock().unwrap().push(e.clone()))
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let run = tokio::spawn(replicate_dirs(
        dbs,
        config.dirs.clone(),
        settings,
        async move {
            let _ = stopped.await;
        },
        sink,
    ));
    let out = dir.path().join("out.db");
    let replica_a = replica.join("a.db");
    wait_equal(&replica_a, &a, &out).await;
    wait_equal(&replica.join("b.db"), &b, &out).await;

    // Idle: put away, nothing of it open.
    wait_put_away(&a).await;
    wait_put_away(&b).await;

    // A write wakes it; the replica gets it.
    write(&a, 10, 20, "");
    wait_equal(&replica_a, &a, &out).await;
    wait_put_away(&a).await;

    // While put away, nothing pins the WAL: the application checkpoints it in full
    // and restarts it with its next write. The chain cannot be proven to continue, so
    // the next capture is the whole database: still exactly the application's rows.
    write(&a, 30, 10, "PRAGMA wal_checkpoint(TRUNCATE);");
    write(&a, 40, 5, "");
    wait_equal(&replica_a, &a, &out).await;
    // And the other database, idle all along, never needed reopening.
    wait_equal(&replica.join("b.db"), &b, &out).await;

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("stops within 30 s")
        .unwrap()
        .unwrap();
    let events = events.lock().unwrap();
    let errors: Vec<String> = events
        .iter()
        .filter(|e| e.is_error())
        .map(ToString::to_string)
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}
