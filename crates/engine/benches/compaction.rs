//! Engine-level compaction benchmark: [`compact_files`] over realistic L0 files that
//! the engine itself captured from a real SQLite database (random row updates and
//! inserts, as an application makes them), read from their local copies in the meta
//! directory and uploaded to a folder replica, exactly as replication compacts L1.
//!
//! * `compaction/l1_from_32_l0`: 32 incremental L0 files into one L1 file.
//! * `compaction/l1_from_snapshot_and_32_l0`: the same plus the full-database L0 at
//!   TXID 1 (the first L1 of a replica, and the shape of every restore).
//!
//! Throughput is MB/s of uncompressed page data read from the inputs. Before the
//! criterion groups, one large compaction (about 100 MiB of page data) reports the
//! growth of peak resident memory (VmHWM, reset through `/proc/self/clear_refs`) while
//! it runs: streaming keeps it to a few pages per input whatever the sizes.
//!
//! Run: `cargo bench -p tideline-engine --bench compaction`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, SamplingMode, Throughput};
use rusqlite::Connection;
use tideline_engine::capture::{Database, DbOptions};
use tideline_engine::levels::compaction::compact_files;
use tideline_engine::storage::file::FileReplica;
use tideline_engine::storage::{FileInfo, ReplicaClient};

struct Fixture {
    _dir: tempfile::TempDir,
    l0_dir: PathBuf,
    tmp: PathBuf,
    client: Arc<dyn ReplicaClient>,
    /// The full-database L0 (TXID 1), then the incremental ones.
    files: Vec<FileInfo>,
    /// Uncompressed page bytes of each file.
    page_bytes: Vec<u64>,
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// A database of `rows` rows of ~1 KiB text, then `files` captures of `per_file`
/// random updates and inserts each.
fn fixture(rows: i64, files: usize, per_file: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.db");
    let c = Connection::open(&path).unwrap();
    c.pragma_update(None, "journal_mode", "wal").unwrap();
    c.execute_batch(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, body TEXT); CREATE INDEX t_name ON t(name);",
    )
    .unwrap();
    let mut rng = Rng(7);
    let text = |rng: &mut Rng, n: usize| -> String {
        const WORDS: [&str; 12] = [
            "replica",
            "sqlite",
            "page",
            "level",
            "window",
            "snapshot",
            "the",
            "of",
            "and",
            "retention",
            "compaction",
            "restore",
        ];
        let mut s = String::with_capacity(n + 16);
        while s.len() < n {
            s.push_str(WORDS[(rng.next() % 12) as usize]);
            s.push(' ');
        }
        s
    };
    let tx = c.unchecked_transaction().unwrap();
    for i in 0..rows {
        let (name, body) = (text(&mut rng, 20), text(&mut rng, 1000));
        tx.execute("INSERT INTO t VALUES (?1, ?2, ?3)", (i, name, body))
            .unwrap();
    }
    tx.commit().unwrap();
    let opts = DbOptions {
        checkpoint_interval: None,
        min_checkpoint_page_count: u64::MAX,
        truncate_page_n: u64::MAX,
        ..DbOptions::default()
    };
    let mut db = Database::open(&path, opts).unwrap();
    let ps = u64::from(db.page_size());
    let mut now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_772_409_600);
    let mut infos = Vec::new();
    let mut page_bytes = Vec::new();
    let mut capture = |db: &mut Database, now: SystemTime| {
        while let Some(cap) = db.sync(now).unwrap() {
            infos.push(cap.info.clone());
            page_bytes.push(u64::from(cap.pages) * ps);
            if !cap.more {
                break;
            }
        }
    };
    capture(&mut db, now);
    for _ in 0..files {
        let tx = c.unchecked_transaction().unwrap();
        for _ in 0..per_file {
            if rng.next().is_multiple_of(4) {
                let (name, body) = (text(&mut rng, 20), text(&mut rng, 1000));
                tx.execute("INSERT INTO t(name, body) VALUES (?1, ?2)", (name, body))
                    .unwrap();
            } else {
                let id = (rng.next() % rows as u64) as i64;
                let len = 900 + (rng.next() % 200) as usize;
                let body = text(&mut rng, len);
                tx.execute("UPDATE t SET body = ?2 WHERE id = ?1", (id, body))
                    .unwrap();
            }
        }
        tx.commit().unwrap();
        now += Duration::from_secs(1);
        capture(&mut db, now);
    }
    let l0_dir = db.l0_dir().to_owned();
    drop(db);
    let tmp = dir.path().join("tmp");
    let client: Arc<dyn ReplicaClient> = Arc::new(FileReplica::new(dir.path().join("replica")));
    Fixture {
        _dir: dir,
        l0_dir,
        tmp,
        client,
        files: infos,
        page_bytes,
    }
}

fn run(rt: &tokio::runtime::Runtime, f: &Fixture, inputs: &[FileInfo]) -> FileInfo {
    rt.block_on(compact_files(
        &f.client,
        1,
        inputs.to_vec(),
        Some(&f.l0_dir),
        &f.tmp,
        None,
    ))
    .unwrap()
    .output
}

/// Peak resident memory (VmHWM) and current (VmRSS), in KiB.
fn memory() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn peak_memory(rt: &tokio::runtime::Runtime) {
    // ~100 MiB of page data: a ~60 MiB database snapshot and 16 files of 1,500
    // changed rows each.
    let f = fixture(50_000, 16, 1500);
    let data: u64 = f.page_bytes.iter().sum();
    let bytes: u64 = f.files.iter().map(|i| i.size).sum();
    if !reset_peak() {
        eprintln!("peak memory: /proc/self/clear_refs unavailable; skipped");
        return;
    }
    let (_, before) = memory().unwrap();
    let out = run(rt, &f, &f.files);
    let (peak, _) = memory().unwrap();
    println!(
        "peak memory: compacting {} files ({:.1} MiB of pages, {:.1} MiB compressed) into {:.1} MiB raised peak RSS by {:.2} MiB (from {:.1} MiB)",
        f.files.len(),
        data as f64 / 1048576.0,
        bytes as f64 / 1048576.0,
        out.size as f64 / 1048576.0,
        peak.saturating_sub(before) as f64 / 1024.0,
        before as f64 / 1024.0
    );
}

fn benches(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let f = fixture(20_000, 32, 200);
    let mut group = c.benchmark_group("compaction");
    group
        .sample_size(15)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sampling_mode(SamplingMode::Flat);
    let incr = &f.files[1..];
    group.throughput(Throughput::Bytes(f.page_bytes[1..].iter().sum()));
    group.bench_function("l1_from_32_l0", |b| b.iter(|| run(rt, &f, incr)));
    group.throughput(Throughput::Bytes(f.page_bytes.iter().sum()));
    group.bench_function("l1_from_snapshot_and_32_l0", |b| {
        b.iter(|| run(rt, &f, &f.files))
    });
    group.finish();
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut c = Criterion::default().configure_from_args();
    peak_memory(&rt);
    benches(&mut c, &rt);
    c.final_summary();
}
