//! WAL read benchmarks (issue 7's `wal_read`): the engine's hot path, reading the
//! committed frames of a real SQLite WAL and capturing them into an L0 LTX file, beside
//! the raw LZ4 ceiling on the same pages.
//!
//! Setup (untimed, once) builds a database with rusqlite in WAL mode with
//! `wal_autocheckpoint=0`, so that the WAL keeps every frame: a first capture by the
//! engine (the full-database L0 at TXID 1) marks the position, then ~80 transactions of
//! 100 inserts and 20 random updates of ~2:1 compressible text rows (a table with an
//! index on a random name) add about 24 MiB of frames after it. Those frames, from the captured position to the end of
//! the WAL, are the input of every benchmark; their count, the distinct pages among
//! them and the LZ4 ratio are printed once to stderr.
//!
//! Every benchmark reports `Throughput::Bytes` of *WAL page data* (frames × page size),
//! so the MiB/s figures compare directly:
//!
//! * `wal_read/scan_checksum`: [`scan_committed`] over the WAL file from the position,
//!   exactly as `Database::sync` calls it: every frame read, its salts checked and the
//!   checksum chain verified, the newest frame of each page kept;
//! * `wal_read/capture_to_ltx`: `Database::sync`, the call the replicator makes per
//!   capture: scan, then the newest version of each changed page read back from the WAL
//!   and encoded (LZ4, CRC-64 checksummed) into the next L0 file, fsynced and renamed
//!   into the meta directory. Opening the database (and removing the L0 file the last
//!   iteration wrote, so each one captures the same frames) is untimed setup;
//! * `wal_read/lz4_raw_compress`: bare `lz4_flex::block::compress_into` of every frame's
//!   page with a reused buffer: the codec's ceiling on the same bytes;
//! * `wal_read/lz4_raw_compress_captured`: the same on only the pages the L0 file holds
//!   (the newest version of each page), still counted as WAL page bytes. A capture
//!   compresses only those, so this is the ceiling `capture_to_ltx` is compared with:
//!   "capture at X % of the LZ4 ceiling".
//!
//! The files live in `TIDELINE_BENCH_DIR` if set, else `/dev/shm` when it exists, else
//! the system temporary directory: on tmpfs the fsync of each L0 file is free, so the
//! figures measure the engine's reading and encoding rather than the latency of a disk
//! shared with other work. Set `TIDELINE_BENCH_DIR` to a disk path to include it.
//!
//! Run: `cargo bench -p tideline-engine --bench wal`.

use std::fs::File;
use std::hint::black_box;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use criterion::measurement::WallTime;
use criterion::{BatchSize, BenchmarkGroup, Criterion, SamplingMode, Throughput};
use rusqlite::Connection;
use tideline_engine::capture::wal::{
    FRAME_HEADER_SIZE, FrameChain, FrameHeader, Segment, WAL_HEADER_SIZE, WalHeader, scan_committed,
};
use tideline_engine::capture::{Database, DbOptions, list_l0, wal_path};

/// WAL bytes the workload writes after the captured position.
const WAL_TARGET: u64 = 24 << 20;
/// Rows inserted per transaction (beside 20 random updates): large enough that about a
/// third of the frames are distinct pages (the rest rewrite index and interior pages),
/// so the capture encodes a real share of what it scans.
const ROWS_PER_TX: u64 = 100;

struct Fixture {
    /// The application's connection, open for the whole run: while it is, closing the
    /// engine's connections never checkpoints (SQLite checkpoints on the last close),
    /// so the WAL stays as built. Dropped before the directory.
    _app: Connection,
    _dir: tempfile::TempDir,
    l0_dir: PathBuf,
    db: PathBuf,
    wal: PathBuf,
    opts: DbOptions,
    header: WalHeader,
    /// The captured position: first frame of the input, and the chain before it.
    start: u64,
    chain: FrameChain,
    /// Every input frame's page, in WAL order (a copy, for the LZ4 ceiling).
    wal_pages: Vec<Vec<u8>>,
    /// The newest version of each page, as a capture writes them.
    captured_pages: Vec<Vec<u8>>,
    /// Frames × page size: the throughput unit of every benchmark.
    wal_page_bytes: u64,
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

/// Text that LZ4 compresses about 2:1: words from a small vocabulary (repetitive)
/// interleaved with random alphanumeric tokens (incompressible), as in rows of names,
/// identifiers and prose.
fn text(rng: &mut Rng, n: usize) -> String {
    const WORDS: [&str; 24] = [
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
        "frame",
        "commit",
        "checkpoint",
        "header",
        "salt",
        "checksum",
        "segment",
        "position",
        "capture",
        "upload",
        "bucket",
        "folder",
    ];
    const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut s = String::with_capacity(n + 16);
    while s.len() < n {
        let r = rng.next();
        if !r.is_multiple_of(4) {
            s.push_str(WORDS[((r >> 8) % WORDS.len() as u64) as usize]);
        } else {
            for k in 0..4 + (r >> 8) % 6 {
                s.push(ALNUM[((r >> (16 + 4 * k)) % ALNUM.len() as u64) as usize] as char);
            }
        }
        s.push(' ');
    }
    s
}

fn bench_dir() -> tempfile::TempDir {
    let base = std::env::var_os("TIDELINE_BENCH_DIR")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("/dev/shm")).filter(|p| p.is_dir()))
        .unwrap_or_else(std::env::temp_dir);
    tempfile::Builder::new()
        .prefix("tideline-walbench-")
        .tempdir_in(base)
        .unwrap()
}

fn read_at(f: &mut File, buf: &mut [u8], at: u64) {
    f.seek(SeekFrom::Start(at)).unwrap();
    f.read_exact(buf).unwrap();
}

fn fixture() -> Fixture {
    let dir = bench_dir();
    let path = dir.path().join("bench.db");
    let c = Connection::open(&path).unwrap();
    c.pragma_update(None, "journal_mode", "wal").unwrap();
    c.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    c.execute_batch(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, body TEXT); CREATE INDEX t_name ON t(name);",
    )
    .unwrap();
    let opts = DbOptions {
        checkpoint_interval: None,
        min_checkpoint_page_count: u64::MAX,
        truncate_page_n: u64::MAX,
        // One capture takes the whole input (no cut at 64 MiB).
        max_sync_wal_bytes: u64::MAX,
        meta_dir: Some(dir.path().join("meta")),
        ..DbOptions::default()
    };
    // The first capture (TXID 1) fixes the position the benchmarks capture from.
    let mut db = Database::open(&path, opts.clone()).unwrap();
    db.sync(SystemTime::now()).unwrap().unwrap();
    let pos = db.position().unwrap();
    drop(db);

    let wal = wal_path(&path);
    let mut rng = Rng(7);
    let mut rows = 0u64;
    while std::fs::metadata(&wal).unwrap().len() < pos.wal_end + WAL_TARGET {
        let tx = c.unchecked_transaction().unwrap();
        for _ in 0..ROWS_PER_TX {
            let (name, body) = (text(&mut rng, 24), text(&mut rng, 800));
            tx.execute("INSERT INTO t(name, body) VALUES (?1, ?2)", (name, body))
                .unwrap();
            rows += 1;
        }
        for _ in 0..20 {
            let id = 1 + rng.next() % rows;
            let len = 600 + (rng.next() % 400) as usize;
            tx.execute(
                "UPDATE t SET body = ?2 WHERE id = ?1",
                (id as i64, text(&mut rng, len)),
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }

    let mut f = File::open(&wal).unwrap();
    let mut hb = [0u8; WAL_HEADER_SIZE];
    f.read_exact(&mut hb).unwrap();
    let header = WalHeader::decode(&hb).unwrap();
    assert_eq!((header.salt1, header.salt2), pos.salts);
    let frame_size = header.frame_size();
    // Resume the chain as `Database::sync` does: from the frame before the position.
    let chain = if pos.wal_end <= WAL_HEADER_SIZE as u64 {
        FrameChain::new(header)
    } else {
        let mut fh = [0u8; FRAME_HEADER_SIZE];
        read_at(&mut f, &mut fh, pos.wal_end - frame_size);
        FrameChain::resume(header, FrameHeader::decode(&fh).checksum)
    };
    let seg: Segment = scan_committed(&mut f, pos.wal_end, chain, None)
        .unwrap()
        .unwrap();
    let ps = header.page_size as usize;
    let mut wal_pages = Vec::with_capacity(seg.frames as usize);
    for i in 0..seg.frames {
        let mut p = vec![0u8; ps];
        read_at(
            &mut f,
            &mut p,
            Segment::page_offset(pos.wal_end + i * frame_size),
        );
        wal_pages.push(p);
    }
    let lock = tideline_ltx::lock_pgno(header.page_size);
    let captured_pages = seg
        .pages
        .iter()
        .filter(|&&(p, _)| p != lock)
        .map(|&(_, off)| {
            let mut p = vec![0u8; ps];
            read_at(&mut f, &mut p, Segment::page_offset(off));
            p
        })
        .collect::<Vec<_>>();
    let wal_page_bytes = seg.frames * ps as u64;
    let compressed: usize = wal_pages
        .iter()
        .map(|p| lz4_flex::block::compress(p).len())
        .sum();
    eprintln!(
        "wal_read input: {} frames ({:.1} MiB of pages) in {} transactions of {} rows, \
         {} distinct pages ({:.1} MiB), LZ4 ratio {:.2}:1, in {}",
        seg.frames,
        wal_page_bytes as f64 / 1048576.0,
        rows / ROWS_PER_TX,
        rows,
        captured_pages.len(),
        (captured_pages.len() * ps) as f64 / 1048576.0,
        wal_page_bytes as f64 / compressed as f64,
        dir.path().display(),
    );
    Fixture {
        _app: c,
        l0_dir: opts.meta_dir.as_ref().unwrap().join("ltx").join("0"),
        db: path,
        wal,
        opts,
        header,
        start: pos.wal_end,
        chain,
        wal_pages,
        captured_pages,
        wal_page_bytes,
        _dir: dir,
    }
}

/// Opens the database at the TXID 1 position: first removes the L0 files earlier
/// iterations wrote (the newest L0 file is the position `Database::open` loads), so the
/// sync captures the same frames again.
fn open_at_start(f: &Fixture) -> Database {
    for (_, p) in list_l0(&f.l0_dir).unwrap().iter().skip(1) {
        std::fs::remove_file(p).unwrap();
    }
    Database::open(&f.db, f.opts.clone()).unwrap()
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>, bytes: u64) {
    // A 2-core machine shared with other work: few samples, short windows.
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Bytes(bytes));
}

fn benches(c: &mut Criterion, f: &Fixture) {
    let mut group = c.benchmark_group("wal_read");
    configure(&mut group, f.wal_page_bytes);
    let mut wal = File::open(&f.wal).unwrap();
    group.bench_function("scan_checksum", |b| {
        b.iter(|| {
            let seg = scan_committed(&mut wal, f.start, f.chain, None)
                .unwrap()
                .unwrap();
            assert_eq!(seg.frames * u64::from(f.header.page_size), f.wal_page_bytes);
            black_box(seg)
        })
    });
    group.bench_function("capture_to_ltx", |b| {
        // Criterion drops each batch's outputs before the next setup, so the previous
        // iteration's `Database` (which holds the replicator lock) is closed by then.
        b.iter_batched(
            || open_at_start(f),
            |mut d| {
                let cap = d.sync(SystemTime::now()).unwrap().unwrap();
                assert!(cap.snapshot.is_none() && !cap.more);
                assert_eq!(cap.pages as usize, f.captured_pages.len());
                d
            },
            BatchSize::PerIteration,
        )
    });
    let mut out = vec![0u8; lz4_flex::block::get_maximum_output_size(f.wal_pages[0].len())];
    group.bench_function("lz4_raw_compress", |b| {
        b.iter(|| {
            for page in &f.wal_pages {
                let n = lz4_flex::block::compress_into(page, &mut out).unwrap();
                black_box(&out[..n]);
            }
        })
    });
    group.bench_function("lz4_raw_compress_captured", |b| {
        b.iter(|| {
            for page in &f.captured_pages {
                let n = lz4_flex::block::compress_into(page, &mut out).unwrap();
                black_box(&out[..n]);
            }
        })
    });
    group.finish();
}

fn main() {
    let f = fixture();
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c, &f);
    c.final_summary();
}
