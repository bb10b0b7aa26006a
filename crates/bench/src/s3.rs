//! The S3 workloads: Litestream 0.5.17 and tideline replicating to the same real S3
//! server on 127.0.0.1 (`s3s-fs`, in this process), which counts every request.
//!
//! * **steady**: a writer at a fixed rate (200 tx/s, then 1 tx/s); each row carries a
//!   marker, and an observer decodes every L0 object as it lands in the server's
//!   directory, so the lag of *each* commit is known (commit → first L0 object
//!   holding it): p50, p99, max. Uploads (PUT and multipart parts) and bytes sent per
//!   1000 transactions come from the server's counts, as a provider would bill them.
//! * **idle**: requests per minute once the database has stopped changing.
//! * **initial sync and restore** of a large database: `replicate -once` until
//!   restorable, then `restore` of the same replica by each tool: seconds, MB/s and
//!   peak RSS (`/usr/bin/time`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tideline_testkit::{ACCESS_KEY, BUCKET, Op, REGION, S3Server, SECRET_KEY};

use crate::watch::{Level0, Watch};
use crate::{Args, Proc, Replicator, median, open, settle, wait_any_file};

/// The replica config both tools read.
pub(crate) fn config(dir: &Path, db: &Path, server: &S3Server, prefix: &str) -> Result<PathBuf> {
    let path = dir.join(format!("{prefix}.yml"));
    fs::write(
        &path,
        format!(
            "dbs:\n  - path: {}\n    replica:\n      type: s3\n      bucket: {BUCKET}\n      path: {prefix}\n      endpoint: {}\n      region: {REGION}\n      force-path-style: true\n      access-key-id: {ACCESS_KEY}\n      secret-access-key: {SECRET_KEY}\n",
            db.display(),
            server.endpoint()
        ),
    )?;
    Ok(path)
}

pub(crate) fn url(server: &S3Server, prefix: &str) -> String {
    format!(
        "s3://{BUCKET}/{prefix}?endpoint={}&region={REGION}&forcePathStyle=true",
        server.endpoint()
    )
}

/// (uploads, bytes uploaded) so far: PUTs and multipart parts, as a provider bills them.
pub(crate) fn sent(server: &S3Server) -> (u64, u64) {
    let c = server.counts();
    let uploads =
        c.get(&Op::Put).copied().unwrap_or(0) + c.get(&Op::UploadPart).copied().unwrap_or(0);
    (uploads, server.bytes_in())
}

/// The server's directory for level-0 objects under `prefix`.
pub(crate) fn l0_dir(server: &S3Server, prefix: &str) -> PathBuf {
    server.object_path(&format!("{prefix}/0000"))
}

/// Waits (bounded) for `r`'s first level-0 upload under `prefix`.
pub(crate) fn wait_first_upload(server: &S3Server, prefix: &str, r: Replicator) -> Result<()> {
    if !wait_any_file(&l0_dir(server, prefix), Duration::from_secs(120)) {
        bail!("{} made no upload to S3 within 120 s", r.name());
    }
    Ok(())
}

/// One steady-rate run's figures.
#[derive(Debug, Default, Clone)]
pub struct Steady {
    pub lag_p50_ms: f64,
    pub lag_p99_ms: f64,
    pub lag_max_ms: f64,
    pub uploads_per_1000: f64,
    pub kib_up_per_1000: f64,
    pub cpu_per_1000: f64,
    pub rss_mib: f64,
    /// Requests per minute once idle (only measured after the 200 tx/s run).
    pub idle_per_min: Option<f64>,
}

fn fresh_db(dir: &Path, tag: &str) -> Result<(PathBuf, rusqlite::Connection)> {
    let run = dir.join(tag);
    let _ = fs::remove_dir_all(&run);
    fs::create_dir_all(&run)?;
    let db = run.join("bench.db");
    let c = open(&db)?;
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")?;
    let tx = c.unchecked_transaction()?;
    for i in 0..5_000 {
        tx.execute(
            "INSERT INTO t(v) VALUES (?1)",
            [format!("seed row {i} with some text to fill the page")],
        )?;
    }
    tx.commit()?;
    Ok((db, c))
}

/// Writes at `rate` tx/s for `seconds`, measuring each commit's lag to the replica.
pub fn steady(
    a: &Args,
    r: Replicator,
    server: &S3Server,
    dir: &Path,
    rate: f64,
    seconds: u64,
    idle: Option<Duration>,
) -> Result<Steady> {
    let prefix = format!("steady-{}-{}-{}", rate as u64, r.name(), unique());
    let (db, c) = fresh_db(dir, &prefix)?;
    let cfg = config(dir, &db, server, &prefix)?;
    let bin = a.bin(r).context("steady needs a replicator")?;
    let proc = Proc::start_config(bin, &cfg, &dir.join(format!("{prefix}.log")))?;
    wait_first_upload(server, &prefix, r)?;
    settle();
    let watch = Watch::start(Level0::Dir(l0_dir(server, &prefix)));
    let (ups0, bytes0) = sent(server);
    let (cpu0, _) = proc.usage();

    let n = (rate * seconds as f64).max(3.0) as u64;
    let committed = write_at_rate(&c, rate, n)?;
    // Wait (bounded) for the last commit to land.
    watch.wait(n - 1, Duration::from_secs(30), r.name())?;
    let arrivals = watch.finish();
    let (cpu1, rss) = proc.usage();
    let (ups1, bytes1) = sent(server);
    let idle_per_min = idle.map(|window| idle_requests_per_min(a, server, window));
    proc.stop();

    let lags = commit_lags(&committed, &arrivals, r)?;
    let pct = |p: f64| lags[((lags.len() - 1) as f64 * p).round() as usize];
    let per_1000 = n as f64 / 1000.0;
    Ok(Steady {
        lag_p50_ms: pct(0.5),
        lag_p99_ms: pct(0.99),
        lag_max_ms: *lags.last().unwrap_or(&0.0),
        uploads_per_1000: (ups1 - ups0) as f64 / per_1000,
        kib_up_per_1000: (bytes1 - bytes0) as f64 / 1024.0 / per_1000,
        cpu_per_1000: (cpu1 - cpu0) / per_1000,
        rss_mib: rss as f64 / 1024.0,
        idle_per_min,
    })
}

/// Commits `n` marked rows, the i-th due at i / `rate` s; when each COMMIT returned.
pub(crate) fn write_at_rate(c: &rusqlite::Connection, rate: f64, n: u64) -> Result<Vec<Instant>> {
    let mut stmt = c.prepare("INSERT INTO t(v) VALUES (?1)")?;
    let t0 = Instant::now();
    let mut committed = Vec::with_capacity(n as usize);
    for i in 0..n {
        let due = t0 + Duration::from_secs_f64(i as f64 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        stmt.execute([format!("lagmark:{i:010} and a row of application data")])?;
        committed.push(Instant::now());
    }
    Ok(committed)
}

/// Requests per minute the server sees over `window`, after the writes have settled.
fn idle_requests_per_min(a: &Args, server: &S3Server, window: Duration) -> f64 {
    // Settled: past the first compaction window (L1, 30 s by default) that the last
    // writes start, so what remains is what an idle database costs.
    std::thread::sleep(a.idle_settle);
    let before = server.total_requests();
    std::thread::sleep(window);
    (server.total_requests() - before) as f64 * 60.0 / window.as_secs_f64()
}

/// Each commit's lag (ms, sorted) to the first arrival holding its marker; fails if
/// fewer than 90 % were seen.
pub(crate) fn commit_lags(
    committed: &[Instant],
    arrivals: &[(Instant, u64)],
    r: Replicator,
) -> Result<Vec<f64>> {
    let mut lags = Vec::with_capacity(committed.len());
    for (i, t) in committed.iter().enumerate() {
        if let Some((at, _)) = arrivals
            .iter()
            .filter(|(_, m)| *m >= i as u64)
            .min_by_key(|(at, _)| *at)
        {
            lags.push(at.saturating_duration_since(*t).as_secs_f64() * 1e3);
        }
    }
    if lags.len() < committed.len() * 9 / 10 {
        bail!(
            "{}: only {} of {} commits were seen arriving",
            r.name(),
            lags.len(),
            committed.len()
        );
    }
    lags.sort_by(f64::total_cmp);
    Ok(lags)
}

pub(crate) fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// A large database, built once per run directory: `mb` MiB of rows with
/// compressible text (~2:1). Built without a journal (fast), then switched to WAL; a
/// build that was interrupted leaves only a `.part` file, never a cached half database.
pub fn big_db(dir: &Path, mb: u64) -> Result<PathBuf> {
    let db = dir.join(format!("big-{mb}.db"));
    if db.exists() {
        return Ok(db);
    }
    let part = dir.join(format!("big-{mb}.db.part"));
    let _ = fs::remove_file(&part);
    {
        let c = rusqlite::Connection::open(&part)?;
        c.pragma_update(None, "journal_mode", "off")?;
        c.pragma_update(None, "synchronous", "off")?;
        c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")?;
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let rows = mb * 1024 * 1024 / 1000;
        let tx = c.unchecked_transaction()?;
        {
            let mut stmt = tx.prepare("INSERT INTO t(v) VALUES (?1)")?;
            let mut s = String::with_capacity(1000);
            for _ in 0..rows {
                s.clear();
                hex_text(&mut s, &mut x, 900);
                stmt.execute([&s])?;
            }
        }
        tx.commit()?;
        c.pragma_update(None, "journal_mode", "wal")?;
        c.pragma_update(None, "synchronous", "normal")?;
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    }
    fs::File::open(&part)?.sync_all()?;
    fs::rename(&part, &db)?;
    Ok(db)
}

/// Appends hex words of a xorshift stream (`{:08x} ` each) to `s` until it holds at
/// least `len` bytes: compresses like real text data (~2:1).
pub(crate) fn hex_text(s: &mut String, x: &mut u64, len: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut word = [b' '; 9];
    while s.len() < len {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        let v = *x as u32;
        for (i, b) in word[..8].iter_mut().enumerate() {
            *b = HEX[((v >> (28 - 4 * i)) & 0xf) as usize];
        }
        // ASCII only, so always valid UTF-8.
        s.push_str(std::str::from_utf8(&word).unwrap_or_default());
    }
}

/// Seconds and peak RSS (KiB) of a command, by `/usr/bin/time`.
pub(crate) fn timed(cmd: &mut Command, log: &Path) -> Result<(f64, u64)> {
    let times = log.with_extension("time");
    let status = crate::tool_env(&mut Command::new("/usr/bin/time"))
        .arg("-f")
        .arg("%e %M")
        .arg("-o")
        .arg(&times)
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .envs(cmd.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .stdout(fs::File::create(log)?)
        .stderr(fs::File::create(log.with_extension("err"))?)
        .stdin(Stdio::null())
        .status()
        .context("running /usr/bin/time (apt install time)")?;
    if !status.success() {
        bail!(
            "{:?} failed: {}",
            cmd,
            fs::read_to_string(log.with_extension("err")).unwrap_or_default()
        );
    }
    let text = fs::read_to_string(&times)?;
    let mut f = text.split_whitespace();
    Ok((
        f.next().context("time output")?.parse()?,
        f.next().context("time output")?.parse()?,
    ))
}

/// Seconds and peak RSS (KiB) of `bin replicate -once -config cfg`: initial sync
/// until restorable.
pub(crate) fn replicate_once(bin: &Path, cfg: &Path, log: &Path) -> Result<(f64, u64)> {
    timed(
        Command::new(bin)
            .args(["replicate", "-once", "-config"])
            .arg(cfg),
        log,
    )
}

/// Seconds and peak RSS (KiB) of `bin restore -o out EXTRA SOURCE…`, the source a
/// replica URL or `-config FILE DB`.
pub(crate) fn restore_to(
    bin: &Path,
    source: &[String],
    out: &Path,
    extra: &[String],
    log: &Path,
) -> Result<(f64, u64)> {
    timed(
        Command::new(bin)
            .arg("restore")
            .arg("-o")
            .arg(out)
            .args(extra)
            .args(source)
            .env("LITESTREAM_ACCESS_KEY_ID", ACCESS_KEY)
            .env("LITESTREAM_SECRET_ACCESS_KEY", SECRET_KEY),
        log,
    )
}

/// Initial sync (`replicate -once`) and restore figures for one tool.
#[derive(Debug, Default, Clone)]
pub struct Large {
    pub sync_s: f64,
    pub restore_s: f64,
    pub restore_rss_mib: f64,
}

/// Replicates `db` once with `r` to a fresh prefix, then restores it with `r`.
pub fn large(a: &Args, r: Replicator, server: &S3Server, dir: &Path, db: &Path) -> Result<Large> {
    let bin = a.bin(r).context("large needs a replicator")?;
    let prefix = format!("large-{}-{}", r.name(), unique());
    let run = dir.join(&prefix);
    fs::create_dir_all(&run)?;
    let copy = run.join("big.db");
    fs::copy(db, &copy)?;
    let cfg = config(&run, &copy, server, &prefix)?;
    let (sync_s, _) = replicate_once(bin, &cfg, &run.join("sync.log"))?;
    let out = run.join("restored.db");
    let (restore_s, rss) = restore_to(
        bin,
        &[url(server, &prefix)],
        &out,
        &[],
        &run.join("restore.log"),
    )?;
    // (Both tools add their bookkeeping tables, so the copy grows by a page or two.)
    let (a_len, b_len) = (fs::metadata(db)?.len(), fs::metadata(&out)?.len());
    if b_len < a_len {
        bail!("{}: restored {b_len} bytes of {a_len}", r.name());
    }
    let _ = fs::remove_dir_all(&run);
    Ok(Large {
        sync_s,
        restore_s,
        restore_rss_mib: rss as f64 / 1024.0,
    })
}

/// Median of one figure over rounds, as text.
pub fn med(v: &[f64], digits: usize) -> String {
    format!("{:.*}", digits, median(v))
}
