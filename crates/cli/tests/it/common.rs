//! Helpers shared by the CLI tests: running the built `tideline`, making SQLite
//! databases, and writing folder replicas with chosen TXIDs and creation times.

#![allow(dead_code)]

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;
use tideline_ltx::{Encoder, FLAG_NO_CHECKSUM, Header, Txid, format_filename};

/// The binary under test.
pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tideline"));
    // Tests must not pick up the machine's config or log settings.
    cmd.env_remove("LITESTREAM_CONFIG").env_remove("LOG_LEVEL");
    cmd
}

/// Runs `tideline args…` in `dir` and returns its output.
pub fn run_in(dir: &Path, args: &[&str]) -> Output {
    bin()
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run tideline")
}

/// Like [`run_in`], asserting success; returns stdout.
pub fn ok_in(dir: &Path, args: &[&str]) -> String {
    let out = run_in(dir, args);
    assert!(
        out.status.success(),
        "tideline {args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `file://` URL of a folder.
pub fn file_url(dir: &Path) -> String {
    format!("file://{}", dir.display())
}

/// A rollback-journal database with `rows` rows in table `t`, closed (so the file holds
/// everything); returns its bytes.
pub fn make_db(path: &Path, rows: std::ops::Range<i64>) -> Vec<u8> {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT);")
        .unwrap();
    let tx = conn.unchecked_transaction().unwrap();
    for i in rows {
        tx.execute(
            "INSERT INTO t (id, v) VALUES (?1, ?2)",
            rusqlite::params![i, format!("row {i} {}", "x".repeat(100))],
        )
        .unwrap();
    }
    tx.commit().unwrap();
    drop(conn);
    fs::read(path).unwrap()
}

/// Row count of table `t`.
pub fn count_rows(path: &Path) -> i64 {
    let conn = Connection::open(path).unwrap();
    conn.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
        .unwrap()
}

/// Writes `db` (a whole database image) as the level-`level` file `min..=max` of the
/// folder replica at `root`, created at `created` (header timestamp and mtime).
pub fn write_ltx(root: &Path, level: u8, min: u64, max: u64, db: &[u8], created: SystemTime) {
    let page_size = u32::from(u16::from_be_bytes([db[16], db[17]]));
    let page_size = if page_size == 1 { 65536 } else { page_size };
    let commit = (db.len() / page_size as usize) as u32;
    let header = Header {
        flags: FLAG_NO_CHECKSUM,
        page_size,
        commit,
        min_txid: Txid(min),
        max_txid: Txid(max),
        timestamp: created.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64,
        ..Header::default()
    };
    let mut enc = Encoder::new(Vec::new(), header).unwrap();
    for (i, page) in db.chunks(page_size as usize).enumerate() {
        enc.write_page(i as u32 + 1, page).unwrap();
    }
    let (bytes, _) = enc.finish().unwrap();
    let dir = root.join("ltx").join(level.to_string());
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format_filename(Txid(min), Txid(max)));
    fs::write(&path, bytes).unwrap();
    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(created)
        .unwrap();
}

/// A replica with two states: TXID 1 (`v1`, created `t1`) and TXID 2 (`v2`, `t2`).
pub struct TwoStates {
    pub dir: tempfile::TempDir,
    pub replica: PathBuf,
    pub v1: Vec<u8>,
    pub v2: Vec<u8>,
    pub t1: SystemTime,
    pub t2: SystemTime,
}

/// Builds [`TwoStates`]: 10 rows at TXID 1, 60 rows at TXID 2, an hour apart, a day ago.
pub fn two_states() -> TwoStates {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.db");
    let v1 = make_db(&src, 0..10);
    let v2 = make_db(&src, 10..60);
    assert!(v2.len() > v1.len());
    let t1 = SystemTime::now() - Duration::from_secs(24 * 3600);
    let t2 = t1 + Duration::from_secs(3600);
    let replica = dir.path().join("replica");
    write_ltx(&replica, 0, 1, 1, &v1, t1);
    write_ltx(&replica, 0, 2, 2, &v2, t2);
    TwoStates {
        dir,
        replica,
        v1,
        v2,
        t1,
        t2,
    }
}

/// Polls `f` every 100 ms until it returns `Some`, for at most `limit`.
pub fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// RFC 3339 in UTC with milliseconds, computed independently of the CLI's formatter
/// (through SQLite's date functions).
pub fn rfc3339(t: SystemTime) -> String {
    let ms = t.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    let conn = Connection::open_in_memory().unwrap();
    conn.query_row(
        "SELECT strftime('%Y-%m-%dT%H:%M:%fZ', ?1 / 1000.0, 'unixepoch')",
        [ms],
        |r| r.get(0),
    )
    .unwrap()
}
