//! The watched database against real SQLite: captured L0 files restore every TXID to
//! the state the application had, across checkpoints, WAL restarts and restarts of the
//! replicator, with a concurrent writer, and bad input is refused clearly.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use rusqlite::Connection;
use tideline_engine::Error;
use tideline_engine::capture::{
    CheckpointMode, Database, DbOptions, SnapshotReason, default_meta_dir,
};
use tideline_engine::restore::{IntegrityCheck, Target, restore};
use tideline_engine::storage::file::FileReplica;
use tideline_ltx::Txid;

fn app(path: &Path) -> Connection {
    let c = Connection::open(path).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c.pragma_update(None, "journal_mode", "wal").unwrap();
    c.pragma_update(None, "synchronous", "normal").unwrap();
    c
}

fn setup() -> (tempfile::TempDir, PathBuf, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let c = app(&db);
    c.execute_batch(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, n INTEGER); CREATE INDEX tn ON t(n);",
    )
    .unwrap();
    (dir, db, c)
}

/// A deterministic stream of varied transactions: inserts, updates, deletes, growth.
fn transaction(c: &Connection, step: u64) {
    let tx = c.unchecked_transaction().unwrap();
    match step % 5 {
        0 | 1 => {
            for i in 0..(20 + step % 37) {
                tx.execute(
                    "INSERT INTO t(v, n) VALUES (?1, ?2)",
                    (
                        format!("row {step}.{i} ").repeat(1 + (i % 9) as usize),
                        ((step * 31 + i) % 97) as i64,
                    ),
                )
                .unwrap();
            }
        }
        2 => {
            tx.execute(
                "UPDATE t SET v = upper(v), n = n + 1 WHERE n % 7 = ?1",
                [(step % 7) as i64],
            )
            .unwrap();
        }
        3 => {
            tx.execute("DELETE FROM t WHERE n = ?1", [(step % 97) as i64])
                .unwrap();
        }
        _ => {
            tx.execute(
                "INSERT INTO t(v, n) VALUES (?1, 0)",
                [vec![b'x'; 9000]
                    .iter()
                    .map(|&b| b as char)
                    .collect::<String>()],
            )
            .unwrap();
        }
    }
    tx.commit().unwrap();
}

/// The application-visible content.
fn digest(c: &Connection) -> String {
    c.query_row("SELECT count(*) || ':' || ifnull(sum(length(v) * id + n), 0) || ':' || ifnull(max(id), 0) FROM t", [], |r| r.get(0)).unwrap()
}

/// Restores the latest state from `meta` to `<dir>/restored.db` and asserts it holds
/// what `app` sees. The restored file's path.
fn assert_restores_latest(meta: &Path, dir: &Path, app: &Connection) -> PathBuf {
    let out = dir.join("restored.db");
    restore_to(meta, Target::Latest, &out).unwrap();
    assert_eq!(digest(&Connection::open(&out).unwrap()), digest(app));
    out
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn restore_to(
    meta: &Path,
    target: Target,
    out: &Path,
) -> tideline_engine::Result<tideline_engine::restore::Restored> {
    runtime().block_on(restore(
        Arc::new(FileReplica::new(meta)),
        target,
        out,
        IntegrityCheck::Full,
    ))
}

fn quick() -> DbOptions {
    DbOptions {
        busy_timeout: Duration::from_secs(5),
        ..DbOptions::default()
    }
}

#[test]
fn every_txid_restores_the_state_the_application_had() {
    let (dir, path, c) = setup();
    let meta = default_meta_dir(&path);
    let mut db = Database::open(&path, quick()).unwrap();
    let first = db
        .sync(SystemTime::now())
        .unwrap()
        .expect("first sync writes TXID 1");
    assert_eq!(first.snapshot, Some(SnapshotReason::FirstSync));
    assert_eq!(first.info.max_txid, Txid(1));
    assert!(
        db.sync(SystemTime::now()).unwrap().is_none(),
        "nothing new, no file"
    );

    let mut states = vec![(Txid(1), digest(&c))];
    let clock = Instant::now();
    let mut restarts = 0;
    for step in 0..60u64 {
        transaction(&c, step);
        if step % 3 == 2 {
            continue; // several transactions in one sync
        }
        let cap = db
            .sync(SystemTime::now())
            .unwrap()
            .expect("new commits, new L0");
        assert_eq!(
            cap.snapshot, None,
            "step {step}: incremental, not a full copy"
        );
        // What the application wrote: whole frames, at least one per transaction.
        let frame = 24 + u64::from(db.page_size());
        assert!(
            cap.wal_bytes >= frame && cap.wal_bytes.is_multiple_of(frame),
            "step {step}: {} WAL bytes",
            cap.wal_bytes
        );
        states.push((cap.info.max_txid, digest(&c)));
        if step % 10 == 9 {
            let ck = db
                .checkpoint(CheckpointMode::Passive, SystemTime::now(), clock)
                .unwrap();
            restarts += usize::from(ck.restarted);
            for cap in &ck.captured {
                states.push((cap.info.max_txid, digest(&c)));
            }
        }
    }
    assert!(
        restarts >= 3,
        "our checkpoints restarted the WAL ({restarts} times)"
    );
    let last = db
        .sync(SystemTime::now())
        .unwrap()
        .expect("the last transactions");
    states.push((last.info.max_txid, digest(&c)));
    assert!(db.sync(SystemTime::now()).unwrap().is_none());

    let out = dir.path().join("restored.db");
    for (txid, want) in &states {
        let r = restore_to(&meta, Target::Txid(*txid), &out).unwrap();
        assert_eq!(r.txid, *txid);
        assert_eq!(
            &digest(&Connection::open(&out).unwrap()),
            want,
            "TXID {txid}"
        );
    }
    // The latest restore is byte-identical to the checkpointed database.
    restore_to(&meta, Target::Latest, &out).unwrap();
    drop(db);
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    assert!(
        fs::read(&out).unwrap() == fs::read(&path).unwrap(),
        "restore is not byte-identical"
    );
}

/// An application thread committing `transaction`s until `stop` (or 20 s): busy, but
/// not a tight loop that never releases the lock. Returns how many it committed.
fn busy_writer(path: &Path, stop: &Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    let (stop, path) = (Arc::clone(stop), path.to_owned());
    std::thread::spawn(move || {
        let c = app(&path);
        let mut step = 0;
        let deadline = Instant::now() + Duration::from_secs(20);
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            transaction(&c, step);
            step += 1;
            std::thread::sleep(Duration::from_micros(200));
        }
        step
    })
}

#[test]
fn a_concurrent_writer_loses_nothing_across_checkpoints() {
    let (dir, path, c) = setup();
    drop(c);
    let meta = default_meta_dir(&path);
    let opts = DbOptions {
        min_checkpoint_page_count: 50,
        ..quick()
    };
    let mut db = Database::open(&path, opts).unwrap();
    db.sync(SystemTime::now()).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let writer = busy_writer(&path, &stop);
    let clock = Instant::now();
    let (mut checkpoints, mut restarts, mut deferred, mut worst) = (0, 0, 0, Duration::ZERO);
    let mut snapshots = 0;
    let mut log = Vec::new();
    while clock.elapsed() < Duration::from_secs(3) {
        while let Some(c) = db.sync(SystemTime::now()).unwrap() {
            snapshots += usize::from(c.snapshot.is_some());
            log.push(format!("sync {} {:?}", c.info.max_txid, db.position()));
            if !c.more {
                break;
            }
        }
        if let Some(mode) = db.checkpoint_due(Instant::now()) {
            let ck = db
                .checkpoint(mode, SystemTime::now(), Instant::now())
                .unwrap();
            log.push(format!("checkpoint restarted={} deferred={} frames={:?} captured={:?} blocked={:?} pos={:?}", ck.restarted, ck.deferred, ck.frames, ck.captured.iter().map(|c| c.info.max_txid.0).collect::<Vec<_>>(), ck.writers_blocked, db.position()));
            checkpoints += 1;
            restarts += usize::from(ck.restarted);
            deferred += usize::from(ck.deferred);
            worst = worst.max(ck.writers_blocked);
            snapshots += ck.captured.iter().filter(|c| c.snapshot.is_some()).count();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    let steps = writer.join().unwrap();
    while let Some(c) = db.sync(SystemTime::now()).unwrap() {
        snapshots += usize::from(c.snapshot.is_some());
    }
    eprintln!(
        "{steps} transactions, {checkpoints} checkpoints ({deferred} deferred), {restarts} WAL restarts, writers blocked at most {worst:?}"
    );
    assert!(
        steps > 50 && restarts >= 1,
        "{steps} transactions, {checkpoints} checkpoints, {restarts} restarts"
    );
    assert_eq!(
        snapshots, 0,
        "continuity was kept: no full-database L0 after the first"
    );

    let out = dir.path().join("restored.db");
    restore_to(&meta, Target::Latest, &out).unwrap();
    drop(db);
    let c = app(&path);
    let busy: i64 = c
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .unwrap();
    assert_eq!(busy, 0);
    let (got, want) = (fs::read(&out).unwrap(), fs::read(&path).unwrap());
    if got != want {
        let pages: Vec<usize> = (0..got.len().min(want.len()) / 4096)
            .filter(|&p| got[p * 4096..(p + 1) * 4096] != want[p * 4096..(p + 1) * 4096])
            .map(|p| p + 1)
            .collect();
        for l in &log {
            eprintln!("{l}");
        }
        panic!(
            "restore differs: {} vs {} bytes, pages {:?}; digests {} vs {}",
            got.len(),
            want.len(),
            &pages[..pages.len().min(20)],
            digest(&Connection::open(&out).unwrap()),
            digest(&c)
        );
    }
}

/// SQLite's automatic checkpoint runs after every commit once the WAL is past
/// `wal_autocheckpoint` pages, and while it runs our PASSIVE checkpoint is refused
/// ("busy"). Phase 2 waits it out (the application cannot commit meanwhile), so the
/// WAL still restarts; before, the WAL grew to `truncate-page-n` under such a writer
/// and was cut by TRUNCATE checkpoints with full-database L0 files.
#[test]
fn an_application_checkpointing_after_every_commit_does_not_stop_restarts() {
    let (dir, path, c) = setup();
    drop(c);
    let meta = default_meta_dir(&path);
    let mut db = Database::open(&path, quick()).unwrap();
    db.sync(SystemTime::now()).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    // (SQLite's default automatic checkpoint: 1000 pages.)
    let writer = busy_writer(&path, &stop);
    let clock = Instant::now();
    let (mut done, mut restarts, mut snapshots) = (0, 0, 0usize);
    while clock.elapsed() < Duration::from_secs(3) {
        while let Some(c) = db.sync(SystemTime::now()).unwrap() {
            snapshots += usize::from(c.snapshot.is_some());
            if !c.more {
                break;
            }
        }
        // As the replicator does: the read mark follows each capture, so the
        // application's automatic checkpoints always find frames to copy.
        db.advance_read_mark().unwrap();
        if db.wal_pages() >= 1500 {
            let ck = db
                .checkpoint(CheckpointMode::Passive, SystemTime::now(), Instant::now())
                .unwrap();
            done += usize::from(!ck.deferred);
            restarts += usize::from(ck.restarted);
            snapshots += ck.captured.iter().filter(|c| c.snapshot.is_some()).count();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    let steps = writer.join().unwrap();
    while let Some(c) = db.sync(SystemTime::now()).unwrap() {
        snapshots += usize::from(c.snapshot.is_some());
    }
    eprintln!("{steps} transactions, {done} checkpoints not deferred, {restarts} restarts");
    assert!(
        steps > 50 && done >= 3 && restarts * 10 >= done * 9,
        "{steps} transactions: of {done} checkpoints that took the write lock only {restarts} restarted the WAL"
    );
    // (A full-database L0 can still appear here: when the application's checkpoint
    // copies everything at the instant our read mark moves, its next write restarts
    // the WAL, which we answer with a full copy. The restore below covers it.)
    eprintln!("{snapshots} full-database L0 files after the first");
    drop(db);
    assert_restores_latest(&meta, dir.path(), &app(&path));
}

/// At truncate-page-n the PASSIVE protocol is tried first: when it restarts the WAL,
/// nothing is lost, and no full-database L0 follows (a TRUNCATE would force one).
#[test]
fn a_due_truncate_restarts_without_a_full_copy_when_it_can() {
    let (dir, path, c) = setup();
    let meta = default_meta_dir(&path);
    let opts = DbOptions {
        truncate_page_n: 200,
        ..quick()
    };
    let mut db = Database::open(&path, opts).unwrap();
    db.sync(SystemTime::now()).unwrap();
    for step in 0..40 {
        transaction(&c, step);
    }
    while db.sync(SystemTime::now()).unwrap().is_some_and(|c| c.more) {}
    assert_eq!(
        db.checkpoint_due(Instant::now()),
        Some(CheckpointMode::Truncate)
    );
    let ck = db
        .checkpoint(CheckpointMode::Truncate, SystemTime::now(), Instant::now())
        .unwrap();
    assert_eq!((ck.mode, ck.restarted), (CheckpointMode::Passive, true));
    transaction(&c, 40);
    let next = db.sync(SystemTime::now()).unwrap().unwrap();
    assert_eq!(next.snapshot, None, "incremental across the restart");
    assert_restores_latest(&meta, dir.path(), &c);
}

#[test]
fn a_truncate_checkpoint_never_loses_frames() {
    let (dir, path, c) = setup();
    let meta = default_meta_dir(&path);
    let opts = DbOptions {
        truncate_page_n: 200,
        max_sync_wal_bytes: 128 * 1024,
        ..quick()
    };
    let mut db = Database::open(&path, opts).unwrap();
    db.sync(SystemTime::now()).unwrap();
    for step in 0..40 {
        transaction(&c, step);
    }
    // One capped sync leaves most of the WAL uncaptured…
    let first = db.sync(SystemTime::now()).unwrap().unwrap();
    assert!(first.more);
    // …which the TRUNCATE checkpoint must capture before it empties the WAL.
    while db.sync(SystemTime::now()).unwrap().is_some_and(|c| c.more) {}
    transaction(&c, 40);
    assert_eq!(
        db.checkpoint_due(Instant::now()),
        Some(CheckpointMode::Truncate)
    );
    // Another writer keeps our barrier out (longer than its first wait), so the
    // PASSIVE attempt that comes first is deferred and the TRUNCATE runs.
    let (held_tx, held) = std::sync::mpsc::channel();
    let holder = {
        let path = path.clone();
        std::thread::spawn(move || {
            let other = app(&path);
            other.execute_batch("BEGIN IMMEDIATE").unwrap();
            held_tx.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(700));
            other.execute_batch("ROLLBACK").unwrap();
        })
    };
    held.recv_timeout(Duration::from_secs(10)).unwrap();
    let ck = db
        .checkpoint(CheckpointMode::Truncate, SystemTime::now(), Instant::now())
        .unwrap();
    holder.join().unwrap();
    assert_eq!(ck.mode, CheckpointMode::Truncate);
    assert!(
        !ck.captured.is_empty(),
        "the last transaction was captured first"
    );
    assert_eq!(
        fs::metadata(path.with_extension("db-wal")).unwrap().len(),
        0,
        "WAL truncated"
    );
    // The next sync writes the whole database: anything committed between the
    // capture and the checkpoint went straight into the database file.
    transaction(&c, 41);
    let next = db.sync(SystemTime::now()).unwrap().unwrap();
    assert_eq!(next.snapshot, Some(SnapshotReason::TruncateCheckpoint));
    assert!(db.sync(SystemTime::now()).unwrap().is_none());
    transaction(&c, 42);
    assert_eq!(
        db.sync(SystemTime::now()).unwrap().unwrap().snapshot,
        None,
        "incremental again"
    );

    let out = dir.path().join("restored.db");
    restore_to(&meta, Target::Latest, &out).unwrap();
    drop(db);
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    assert!(
        fs::read(&out).unwrap() == fs::read(&path).unwrap(),
        "restore is not byte-identical"
    );
}

#[test]
fn the_position_survives_a_restart_of_the_replicator() {
    let (dir, path, c) = setup();
    let meta = default_meta_dir(&path);
    let mut db = Database::open(&path, quick()).unwrap();
    db.sync(SystemTime::now()).unwrap();
    transaction(&c, 0);
    db.sync(SystemTime::now()).unwrap();
    drop(db);

    transaction(&c, 1);
    let mut db = Database::open(&path, quick()).unwrap();
    assert_eq!(db.position().unwrap().txid, Txid(2));
    let cap = db.sync(SystemTime::now()).unwrap().unwrap();
    assert_eq!(
        (cap.info.max_txid, cap.snapshot),
        (Txid(3), None),
        "incremental after a restart"
    );
    assert_restores_latest(&meta, dir.path(), &c);
}

#[test]
fn a_wal_reset_while_stopped_gives_a_full_copy_that_restores() {
    let (dir, path, c) = setup();
    let meta = default_meta_dir(&path);
    let mut db = Database::open(&path, quick()).unwrap();
    db.sync(SystemTime::now()).unwrap();
    transaction(&c, 0);
    db.sync(SystemTime::now()).unwrap();
    drop(db);

    // While nobody holds the WAL, the application checkpoints it away and writes on.
    let busy: i64 = c
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .unwrap();
    assert_eq!(busy, 0);
    transaction(&c, 1);
    transaction(&c, 2);
    let mut db = Database::open(&path, quick()).unwrap();
    let cap = db.sync(SystemTime::now()).unwrap().unwrap();
    assert_eq!(cap.info.max_txid, Txid(3));
    assert!(
        matches!(
            cap.snapshot,
            Some(
                SnapshotReason::WalRestarted
                    | SnapshotReason::WalOverwritten
                    | SnapshotReason::WalTruncated
            )
        ),
        "{:?}",
        cap.snapshot
    );
    let out = assert_restores_latest(&meta, dir.path(), &c);
    // And the TXID before the reset still restores to its own state.
    restore_to(&meta, Target::Txid(Txid(2)), &out).unwrap();
}

#[test]
fn while_replicating_other_processes_cannot_reset_the_wal() {
    let (_dir, path, c) = setup();
    let mut db = Database::open(&path, quick()).unwrap();
    db.sync(SystemTime::now()).unwrap();
    transaction(&c, 0);
    c.busy_timeout(Duration::from_millis(50)).unwrap();
    let (busy, _, _): (i64, i64, i64) = c
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(busy, 1, "our read transaction holds the WAL");
    let cap = db.sync(SystemTime::now()).unwrap().unwrap();
    assert_eq!(cap.snapshot, None);
}

/// Runs one write in another process (Python's sqlite3) that then closes its
/// connection: POSIX locks are per process, so only another process shows whether our
/// locks hold.
fn write_from_another_process(db: &Path, value: &str) {
    let status = std::process::Command::new("python3")
        .args(["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1], timeout=10); c.execute('insert into t(v, n) values (?, 0)', (sys.argv[2],)); c.commit(); c.close()"])
        .arg(db)
        .arg(value)
        .status()
        .expect("python3 runs (it is a prerequisite of the test suite)");
    assert!(status.success());
}

#[test]
fn another_process_closing_last_cannot_take_the_wal() {
    let (dir, path, c) = setup();
    drop(c);
    let meta = default_meta_dir(&path);
    let mut db = Database::open(&path, quick()).unwrap();
    db.sync(SystemTime::now()).unwrap();
    write_from_another_process(&path, "first");
    // This capture reads pages from the database file; doing so must not drop our
    // SQLite locks (closing any descriptor of a file releases all of a process's POSIX
    // locks on it), or the other process, closing last, checkpoints and deletes the WAL.
    db.sync(SystemTime::now()).unwrap().unwrap();
    write_from_another_process(&path, "second");
    let wal = path.with_extension("db-wal");
    assert!(
        fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) > 32,
        "the WAL survives the other process's close"
    );
    let cap = db.sync(SystemTime::now()).unwrap().unwrap();
    assert_eq!(cap.snapshot, None, "capture continues incrementally");
    assert_restores_latest(&meta, dir.path(), &app(&path));
}

#[test]
fn large_transactions_are_read_in_bounded_steps() {
    let (dir, path, c) = setup();
    let meta = default_meta_dir(&path);
    let opts = DbOptions {
        max_sync_wal_bytes: 64 * 1024,
        ..quick()
    };
    let mut db = Database::open(&path, opts).unwrap();
    db.sync(SystemTime::now()).unwrap();
    for step in 0..30 {
        transaction(&c, step * 5); // inserts
    }
    let mut files = 0;
    loop {
        let cap = db.sync(SystemTime::now()).unwrap().unwrap();
        files += 1;
        if !cap.more {
            break;
        }
        assert!(files < 1000, "bounded");
    }
    assert!(files > 2, "split into {files} files");
    assert_restores_latest(&meta, dir.path(), &c);
}

#[test]
fn bad_input_is_refused_with_a_clear_error() {
    let (dir, path, _c) = setup();
    let _db = Database::open(&path, quick()).unwrap();
    let err = Database::open(&path, quick()).unwrap_err();
    assert!(matches!(err, Error::AlreadyReplicating { .. }), "{err}");
    assert!(
        err.to_string().contains("already being replicated"),
        "{err}"
    );

    let missing = dir.path().join("nope.db");
    let err = Database::open(&missing, quick()).unwrap_err();
    assert!(matches!(err, Error::DatabaseMissing(_)), "{err}");

    let text = dir.path().join("notes.txt");
    fs::write(
        &text,
        "this is not a database, just some text that is long enough",
    )
    .unwrap();
    let err = Database::open(&text, quick()).unwrap_err();
    assert!(matches!(err, Error::NotSqlite(_)), "{err}");
    assert!(err.to_string().contains("not a SQLite database"), "{err}");

    // A rollback-journal database is switched to WAL, as Litestream does.
    let journal = dir.path().join("journal.db");
    let c = Connection::open(&journal).unwrap();
    c.execute_batch("PRAGMA journal_mode=delete; CREATE TABLE x(a); INSERT INTO x VALUES (1);")
        .unwrap();
    drop(c);
    let mut db = Database::open(&journal, quick()).unwrap();
    assert!(db.sync(SystemTime::now()).unwrap().is_some());
    let mode: String = Connection::open(&journal)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[cfg(unix)]
#[test]
fn one_replicator_per_database_whatever_path_or_meta_directory_it_uses() {
    let (dir, path, c) = setup();
    transaction(&c, 0);
    let first = Database::open(&path, quick()).unwrap();
    // The same database through a symlinked folder, with its own meta directory.
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(dir.path(), &link).unwrap();
    let other_meta = DbOptions {
        meta_dir: Some(dir.path().join("elsewhere")),
        ..quick()
    };
    for (via, opts) in [
        (link.join("app.db"), other_meta.clone()),
        (path.clone(), other_meta),
        (link.join("app.db"), quick()),
    ] {
        let err = Database::open(&via, opts).unwrap_err();
        assert!(matches!(err, Error::AlreadyReplicating { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&format!("process {}", std::process::id())),
            "names the holder: {text}"
        );
    }
    drop(first);
    // Released with the first: the second path works now.
    let mut db = Database::open(
        &link.join("app.db"),
        DbOptions {
            meta_dir: Some(dir.path().join("elsewhere")),
            ..quick()
        },
    )
    .unwrap();
    assert!(db.sync(SystemTime::now()).unwrap().is_some());
}

#[test]
fn another_program_writing_l0_files_into_the_meta_directory_is_refused() {
    let (dir, path, c) = setup();
    let meta = default_meta_dir(&path);
    let mut db = Database::open(&path, quick()).unwrap();
    transaction(&c, 0);
    let first = db.sync(SystemTime::now()).unwrap().unwrap();
    // Litestream on the same database writes the next TXID first: an L0 file of the
    // same pages under TXID 2.
    let next_txid = first.info.max_txid.next();
    let theirs = meta
        .join("ltx/0")
        .join(tideline_ltx::format_filename(next_txid, next_txid));
    {
        let mut dec = tideline_ltx::Decoder::new(fs::File::open(&first.path).unwrap()).unwrap();
        let header = tideline_ltx::Header {
            min_txid: next_txid,
            max_txid: next_txid,
            wal_offset: 0,
            wal_size: 0,
            wal_salt1: 0,
            wal_salt2: 0,
            ..*dec.header()
        };
        let mut enc = tideline_ltx::Encoder::new(Vec::new(), header).unwrap();
        while let Some(pgno) = dec.next_page().unwrap() {
            enc.write_page(pgno, dec.page()).unwrap();
        }
        fs::write(&theirs, enc.finish().unwrap().0).unwrap();
    }
    let before = fs::read(&theirs).unwrap();
    transaction(&c, 1);
    let err = db.sync(SystemTime::now()).unwrap_err();
    assert!(matches!(err, Error::AnotherReplicator { .. }), "{err}");
    assert!(err.to_string().contains("Litestream"), "{err}");
    assert_eq!(
        fs::read(&theirs).unwrap(),
        before,
        "their file is left alone"
    );

    // The other program stopped: once its newest file has been left alone a while,
    // its files are the position (as at a takeover) and capture goes on after them.
    let file = fs::File::options().write(true).open(&theirs).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(60))
        .unwrap();
    drop(file);
    let next = db.sync(SystemTime::now()).unwrap().unwrap();
    assert!(db.take_position_reloaded());
    assert_eq!(next.info.max_txid, first.info.max_txid.next().next());
    drop(db);
    assert_restores_latest(&meta, dir.path(), &c);
}

/// No history is lost to a WAL restart: an application that checkpoints after every
/// commit, racing our read mark as it moves after each capture, never gets the chance
/// to copy and restart the WAL past frames not yet captured (the read lock is handed
/// over between two connections, never let go). So no capture is a full-database
/// copy after the first, which would fold every transaction since the previous
/// capture into one TXID, and each captured TXID restores to a state the application
/// committed.
#[test]
fn an_application_checkpointing_aggressively_never_costs_history() {
    let (dir, path, c) = setup();
    drop(c);
    let meta = default_meta_dir(&path);
    let mut db = Database::open(&path, quick()).unwrap();
    db.sync(SystemTime::now()).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, path) = (Arc::clone(&stop), path.clone());
        std::thread::spawn(move || {
            let c = app(&path);
            let mut step = 0;
            let deadline = Instant::now() + Duration::from_secs(20);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                transaction(&c, step);
                // Copy everything it can into the database at once, every commit.
                let _: (i64, i64, i64) = c
                    .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                    .unwrap();
                step += 1;
            }
            step
        })
    };
    let clock = Instant::now();
    let (mut captures, mut snapshots) = (0usize, Vec::new());
    // WAL generations seen: the application's restarts, which capture must follow.
    let mut generations = std::collections::BTreeSet::new();
    // Three seconds, and at least enough captures racing the checkpoints (on a loaded
    // machine three seconds gave exactly ten), bounded by the writer's own deadline.
    while (clock.elapsed() < Duration::from_secs(3) || captures < 30)
        && clock.elapsed() < Duration::from_secs(20)
    {
        while let Some(c) = db.sync(SystemTime::now()).unwrap() {
            captures += 1;
            generations.insert(db.position().unwrap().salts);
            if let Some(r) = c.snapshot {
                snapshots.push((c.info.max_txid, r));
            }
            if !c.more {
                break;
            }
        }
        db.advance_read_mark().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let steps = writer.join().unwrap();
    while let Some(c) = db.sync(SystemTime::now()).unwrap() {
        if let Some(r) = c.snapshot {
            snapshots.push((c.info.max_txid, r));
        }
    }
    eprintln!(
        "{steps} transactions, {captures} captures, {} WAL generations, full copies: {snapshots:?}",
        generations.len()
    );
    assert!(
        steps > 100 && captures > 10,
        "{steps} transactions, {captures} captures"
    );
    assert!(
        snapshots.is_empty(),
        "history folded into full-database copies at {snapshots:?}"
    );
    drop(db);
    assert_restores_latest(&meta, dir.path(), &app(&path));
}

/// The one restart the application can still make while we replicate, and that it
/// must be free to make (or its WAL would only grow): right after our read lock was
/// handed over on a WAL it had copied in full. Every frame was captured then, so the
/// capture continues into the new generation incrementally: no full copy, and every
/// TXID restores to the application's state.
#[test]
fn an_application_restart_after_the_read_lock_moved_continues_the_chain() {
    let (dir, path, c) = setup();
    let meta = default_meta_dir(&path);
    transaction(&c, 0);
    let mut db = Database::open(&path, quick()).unwrap();
    db.sync(SystemTime::now()).unwrap().unwrap();
    let states = vec![digest(&c)];
    let before = read_salt1(&path);
    // The application copies the whole WAL into the database; our mark moves.
    let (_, log, done): (i64, i64, i64) = c
        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(log, done, "the WAL was copied in full");
    db.advance_read_mark().unwrap();
    // Its next commit restarts the WAL.
    transaction(&c, 1);
    assert_eq!(
        read_salt1(&path),
        before.wrapping_add(1),
        "the WAL restarted"
    );
    let next = db.sync(SystemTime::now()).unwrap().unwrap();
    assert_eq!(next.snapshot, None, "continued, not copied in full");
    let mut states = states;
    states.push(digest(&c));
    drop(db);
    for (i, want) in states.iter().enumerate() {
        let out = dir.path().join(format!("at-{i}.db"));
        let txid = Txid(next.info.max_txid.0 - (states.len() - 1 - i) as u64);
        restore_to(&meta, Target::Txid(txid), &out).unwrap();
        assert_eq!(
            &digest(&Connection::open(&out).unwrap()),
            want,
            "TXID {txid}"
        );
    }
}

fn read_salt1(db: &Path) -> u32 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    let b = fs::read(PathBuf::from(wal)).unwrap();
    u32::from_be_bytes(b[16..20].try_into().unwrap())
}

#[test]
fn another_program_replacing_our_newest_l0_file_is_refused() {
    let (_dir, path, c) = setup();
    let meta = default_meta_dir(&path);
    let mut db = Database::open(&path, quick()).unwrap();
    transaction(&c, 0);
    let first = db.sync(SystemTime::now()).unwrap().unwrap();
    // A replicator one step behind renames its own file over ours.
    let theirs = meta.join("ltx/0/theirs.tmp");
    fs::copy(&first.path, &theirs).unwrap();
    fs::rename(&theirs, &first.path).unwrap();
    transaction(&c, 1);
    let err = db.sync(SystemTime::now()).unwrap_err();
    assert!(matches!(err, Error::AnotherReplicator { .. }), "{err}");
}
