//! The WAL reader against WAL files written by real SQLite: applying the committed pages
//! it finds to the database file must give exactly what SQLite's own checkpoint gives.

use std::fs;
use std::io::Cursor;
use std::path::Path;

use rusqlite::Connection;
use tideline_engine::capture::wal::{FrameChain, Segment, WalHeader, scan_committed};

fn open(path: &Path, page_size: u32) -> Connection {
    let c = Connection::open(path).unwrap();
    c.pragma_update(None, "page_size", page_size).unwrap();
    c.pragma_update(None, "journal_mode", "wal").unwrap();
    c.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    c
}

fn checkpoint(c: &Connection, mode: &str) {
    let busy: i64 = c
        .query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| r.get(0))
        .unwrap();
    assert_eq!(busy, 0, "checkpoint({mode}) was blocked");
}

fn write_rows(c: &Connection, from: i64, to: i64) {
    let tx = c.unchecked_transaction().unwrap();
    for i in from..to {
        tx.execute(
            "INSERT INTO t(k, v) VALUES (?1, ?2)",
            (
                format!("key-{i:08}"),
                format!("value {i} ").repeat((i % 17 + 1) as usize),
            ),
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

/// Applies a segment's pages from `wal` onto `base`, as a sync would.
fn apply(base: &[u8], wal: &[u8], seg: &Segment) -> Vec<u8> {
    let ps = seg.header.page_size as usize;
    let mut img = base.to_vec();
    img.resize(seg.commit as usize * ps, 0);
    for &(pgno, off) in &seg.pages {
        let at = Segment::page_offset(off) as usize;
        img[(pgno as usize - 1) * ps..pgno as usize * ps].copy_from_slice(&wal[at..at + ps]);
    }
    img
}

fn scan(wal: &[u8]) -> Segment {
    let h = WalHeader::decode(wal).unwrap();
    scan_committed(&mut Cursor::new(wal), 32, FrameChain::new(h), None)
        .unwrap()
        .unwrap()
}

#[test]
fn committed_pages_reproduce_the_checkpointed_database_at_every_page_size() {
    for page_size in [512u32, 1024, 4096, 8192, 65536] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let wal_path = dir.path().join("t.db-wal");
        let c = open(&db, page_size);
        c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT UNIQUE, v TEXT)")
            .unwrap();
        write_rows(&c, 0, 300);
        checkpoint(&c, "TRUNCATE");
        let base = fs::read(&db).unwrap();

        write_rows(&c, 300, 900);
        c.execute("UPDATE t SET v = upper(v) WHERE id % 7 = 0", [])
            .unwrap();
        c.execute("DELETE FROM t WHERE id % 5 = 0", []).unwrap();
        let wal = fs::read(&wal_path).unwrap();
        let seg = scan(&wal);
        assert_eq!(seg.header.page_size, page_size);
        assert_eq!(seg.end as usize, wal.len(), "every frame is committed");
        let image = apply(&base, &wal, &seg);

        checkpoint(&c, "TRUNCATE");
        assert_eq!(image, fs::read(&db).unwrap(), "page size {page_size}");
    }
}

#[test]
fn stale_frames_after_a_wal_restart_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let c = open(&db, 4096);
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT UNIQUE, v TEXT)")
        .unwrap();
    write_rows(&c, 0, 2000);
    let old = fs::read(dir.path().join("t.db-wal")).unwrap();
    let old_header = WalHeader::decode(&old).unwrap();

    // RESTART keeps the file; the next write starts again at offset 32 with new salts
    // and leaves the old generation's frames behind it.
    checkpoint(&c, "RESTART");
    let base = fs::read(&db).unwrap();
    c.execute("UPDATE t SET v = 'changed' WHERE id = 1", [])
        .unwrap();
    let wal = fs::read(dir.path().join("t.db-wal")).unwrap();
    assert_eq!(wal.len(), old.len(), "SQLite reused the WAL file in place");
    let seg = scan(&wal);
    assert_ne!(
        (seg.header.salt1, seg.header.salt2),
        (old_header.salt1, old_header.salt2)
    );
    assert!(
        seg.end < wal.len() as u64 / 4,
        "stopped at the stale generation"
    );
    let image = apply(&base, &wal, &seg);
    checkpoint(&c, "TRUNCATE");
    assert_eq!(image, fs::read(&db).unwrap());
}

#[test]
fn frames_of_an_open_transaction_are_not_captured() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let c = open(&db, 4096);
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT UNIQUE, v TEXT)")
        .unwrap();
    write_rows(&c, 0, 100);
    checkpoint(&c, "TRUNCATE");
    let base = fs::read(&db).unwrap();
    write_rows(&c, 100, 200);
    let committed = fs::read(dir.path().join("t.db-wal")).unwrap();

    // A tiny page cache makes SQLite spill a big transaction's pages into the WAL
    // before it commits.
    c.pragma_update(None, "cache_size", 10).unwrap();
    c.execute_batch("BEGIN").unwrap();
    for i in 200..5000 {
        c.execute(
            "INSERT INTO t(k, v) VALUES (?1, ?2)",
            (format!("k{i}"), "x".repeat(300)),
        )
        .unwrap();
    }
    let wal = fs::read(dir.path().join("t.db-wal")).unwrap();
    assert!(
        wal.len() > committed.len(),
        "the open transaction spilled frames"
    );
    let seg = scan(&wal);
    assert_eq!(
        seg.end as usize,
        committed.len(),
        "scan stops at the last commit frame"
    );
    let image = apply(&base, &wal, &seg);
    c.execute_batch("ROLLBACK").unwrap();
    checkpoint(&c, "TRUNCATE");
    assert_eq!(image, fs::read(&db).unwrap());
}
