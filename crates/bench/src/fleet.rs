//! The fleet group (`--fleet N,N,…`): one replicator process watching a directory of N
//! small databases (`dir:` with `watch: true`, one SQLite file per tenant) on a real S3
//! server on 127.0.0.1, Litestream 0.5.17 and tideline in turn on fresh copies of the
//! same databases, each with its own server so requests are counted per tool:
//!
//! * **start**: seconds until every database's first L0 object is in the bucket;
//! * **idle**: after `--fleet-settle` seconds, a `--fleet-seconds` window with nothing
//!   written: the process's CPU (% of a core) and S3 requests per minute;
//! * **written**: 10 of the databases written at 10 tx/s each for the same window: the
//!   lag of every commit (COMMIT to the first L0 object holding it, decoded as it
//!   lands), p50 and p99, CPU and requests per minute;
//! * RSS now and peak, threads and open files (Linux `/proc`).
//!
//! A fleet of 10 (every database written) is the one-database baseline of the lag.
//! Tideline also serves its metrics (`addr:`), so the idle window's requests are
//! printed by operation (`litestream_replica_operation_total`).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tideline_testkit::{ACCESS_KEY, BUCKET, REGION, S3Server, SECRET_KEY};

use crate::watch::{Level0, Watch};
use crate::{Args, Proc, REPLICATORS, Replicator, open, s3};

/// Databases written during the written window, and their rate each.
const WRITTEN: usize = 10;
const RATE: f64 = 10.0;

/// One run's figures.
#[derive(Debug, Clone, Default)]
struct Fleet {
    start_s: f64,
    idle_cpu_pct: f64,
    idle_req_per_min: f64,
    busy_cpu_pct: f64,
    busy_req_per_min: f64,
    lag_p50_ms: f64,
    lag_p99_ms: f64,
    rss_mib: f64,
    peak_rss_mib: f64,
    threads: usize,
    fds: usize,
    /// Tideline's idle-window requests by operation, from its metrics.
    idle_ops: Vec<(String, f64)>,
}

/// The fleet group for each size in `a.fleet`, both tools in turn.
pub fn run(a: &Args, dir: &Path) -> Result<()> {
    let mut rows = Vec::new();
    for &n in &a.fleet {
        let template = build(dir, n)?;
        for &r in &REPLICATORS {
            eprintln!("fleet of {n}: {}", r.name());
            rows.push((n, r, one(a, r, dir, &template, n)?));
        }
        let _ = fs::remove_dir_all(&template);
    }
    println!(
        "\nFleet: one process, `dir:` + `watch:` of N databases on S3 (s3s-fs, 127.0.0.1), \
         {} s to settle, {} s windows; {WRITTEN} written at {RATE} tx/s in the written window\n",
        a.fleet_settle.as_secs(),
        a.fleet_seconds
    );
    println!(
        "| N | tool | start, s | idle CPU, % | idle req/min | written CPU, % | written req/min | lag p50, ms | lag p99, ms | RSS, MiB | peak RSS, MiB | threads | open files |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (n, r, f) in &rows {
        println!(
            "| {n} | {} | {:.1} | {:.2} | {:.1} | {:.2} | {:.1} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} |",
            r.name(),
            f.start_s,
            f.idle_cpu_pct,
            f.idle_req_per_min,
            f.busy_cpu_pct,
            f.busy_req_per_min,
            f.lag_p50_ms,
            f.lag_p99_ms,
            f.rss_mib,
            f.peak_rss_mib,
            f.threads,
            f.fds
        );
    }
    for (n, r, f) in rows.iter().filter(|(_, _, f)| !f.idle_ops.is_empty()) {
        let ops: Vec<String> = f
            .idle_ops
            .iter()
            .map(|(op, k)| format!("{op} {k:.0}"))
            .collect();
        println!(
            "\n{n} {}: idle-window requests by operation: {}",
            r.name(),
            ops.join(", ")
        );
    }
    Ok(())
}

/// `GET /metrics` on `port`: each `litestream_replica_operation_total` by operation.
fn operations(port: u16) -> Vec<(String, f64)> {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return Vec::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.lines()
        .filter(|l| l.starts_with("litestream_replica_operation_total{"))
        .filter_map(|l| {
            let op = l.split("operation=\"").nth(1)?.split('"').next()?;
            let v = l.rsplit(' ').next()?.parse().ok()?;
            Some((op.to_owned(), v))
        })
        .collect()
}

fn name(i: usize) -> String {
    format!("t{i:05}.db")
}

/// N databases of 20 rows, built once per size and copied for each tool.
fn build(dir: &Path, n: usize) -> Result<PathBuf> {
    let template = dir.join(format!("fleet-{n}-template"));
    let _ = fs::remove_dir_all(&template);
    fs::create_dir_all(&template)?;
    for i in 0..n {
        let c = open(&template.join(name(i)))?;
        c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")?;
        let tx = c.unchecked_transaction()?;
        for j in 0..20 {
            tx.execute("INSERT INTO t(v) VALUES (?1)", [format!("tenant row {j}")])?;
        }
        tx.commit()?;
        // Checkpointed and closed: a fleet's idle tenants have no WAL to speak of.
        c.pragma_update(None, "wal_checkpoint", "TRUNCATE")?;
    }
    Ok(template)
}

fn config(path: &Path, data: &Path, server: &S3Server, metrics: Option<u16>) -> Result<()> {
    let addr = metrics.map_or_else(String::new, |p| format!("addr: 127.0.0.1:{p}\n"));
    fs::write(
        path,
        format!(
            "{addr}dbs:\n  - dir: {}\n    pattern: \"*.db\"\n    watch: true\n    replica:\n      type: s3\n      \
             bucket: {BUCKET}\n      path: fleet\n      endpoint: {}\n      region: {REGION}\n      \
             force-path-style: true\n      access-key-id: {ACCESS_KEY}\n      secret-access-key: {SECRET_KEY}\n",
            data.display(),
            server.endpoint()
        ),
    )?;
    Ok(())
}

/// Databases whose first L0 object is in the bucket.
fn uploaded(server: &S3Server, n: usize) -> usize {
    (0..n)
        .filter(|&i| {
            fs::read_dir(s3::l0_dir(server, &format!("fleet/{}", name(i))))
                .is_ok_and(|mut d| d.next().is_some())
        })
        .count()
}

/// (threads, open files, RSS MiB) of a process now.
fn proc_counts(pid: u32) -> (usize, usize, f64) {
    let count = |p: String| fs::read_dir(p).map_or(0, |d| d.count());
    let rss = fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .unwrap_or(0.0);
    (
        count(format!("/proc/{pid}/task")),
        count(format!("/proc/{pid}/fd")),
        rss / 1024.0,
    )
}

fn one(a: &Args, r: Replicator, dir: &Path, template: &Path, n: usize) -> Result<Fleet> {
    let run = dir.join(format!("fleet-{n}-{}", r.name()));
    let _ = fs::remove_dir_all(&run);
    let data = run.join("data");
    fs::create_dir_all(&data)?;
    for i in 0..n {
        fs::copy(template.join(name(i)), data.join(name(i)))?;
    }
    let server = S3Server::start(&run.join("s3"))?;
    let cfg = run.join("fleet.yml");
    let metrics = (r == Replicator::Tideline).then(|| {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(0)
    });
    config(&cfg, &data, &server, metrics)?;
    let bin = a.bin(r).context("the fleet group needs a replicator")?;
    let t0 = Instant::now();
    let proc = Proc::start_config(bin, &cfg, &run.join("replicate.log"))?;
    let deadline = t0 + Duration::from_secs(900);
    while uploaded(&server, n) < n {
        if Instant::now() > deadline {
            bail!(
                "{}: only {} of {n} databases uploaded within 15 minutes",
                r.name(),
                uploaded(&server, n)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let start_s = t0.elapsed().as_secs_f64();
    std::thread::sleep(a.fleet_settle);

    let window = Duration::from_secs(a.fleet_seconds);
    let per_min = |reqs: u64| reqs as f64 * 60.0 / window.as_secs_f64();
    let pct = |cpu: f64| cpu / window.as_secs_f64() * 100.0;
    let (cpu0, _) = proc.usage();
    let req0 = server.total_requests();
    let ops0 = metrics.map(operations).unwrap_or_default();
    std::thread::sleep(window);
    let (cpu1, _) = proc.usage();
    let req1 = server.total_requests();
    let ops1 = metrics.map(operations).unwrap_or_default();
    let idle_ops = ops1
        .iter()
        .map(|(op, v)| {
            let before = ops0.iter().find(|(o, _)| o == op).map_or(0.0, |(_, b)| *b);
            (op.clone(), v - before)
        })
        .filter(|(_, d)| *d > 0.0)
        .collect();

    // The written window: WRITTEN databases at RATE each, every commit's lag watched.
    let written = WRITTEN.min(n);
    let watches: Vec<Watch> = (0..written)
        .map(|i| {
            Watch::start(Level0::Dir(s3::l0_dir(
                &server,
                &format!("fleet/{}", name(i)),
            )))
        })
        .collect();
    let commits = (RATE * window.as_secs_f64()) as u64;
    let writers: Vec<_> = (0..written)
        .map(|i| {
            let db = data.join(name(i));
            std::thread::spawn(move || -> Result<Vec<Instant>> {
                let c = open(&db)?;
                s3::write_at_rate(&c, RATE, commits)
            })
        })
        .collect();
    let mut committed = Vec::new();
    for w in writers {
        committed.push(
            w.join()
                .map_err(|_| anyhow::anyhow!("a writer panicked"))??,
        );
    }
    let (cpu2, _) = proc.usage();
    let req2 = server.total_requests();
    let mut lags = Vec::new();
    for (watch, commits_i) in watches.into_iter().zip(&committed) {
        watch.wait(commits - 1, Duration::from_secs(60), r.name())?;
        lags.extend(s3::commit_lags(commits_i, &watch.finish(), r)?);
    }
    lags.sort_by(f64::total_cmp);
    let at = |p: f64| lags[((lags.len() - 1) as f64 * p).round() as usize];
    let (threads, fds, rss_mib) = proc_counts(proc.pid());
    let (_, peak_kib) = proc.usage();
    proc.stop();
    drop(server);
    let _ = fs::remove_dir_all(&run);
    Ok(Fleet {
        start_s,
        idle_cpu_pct: pct(cpu1 - cpu0),
        idle_req_per_min: per_min(req1 - req0),
        busy_cpu_pct: pct(cpu2 - cpu1),
        busy_req_per_min: per_min(req2 - req1),
        lag_p50_ms: at(0.5),
        lag_p99_ms: at(0.99),
        rss_mib,
        peak_rss_mib: peak_kib as f64 / 1024.0,
        threads,
        fds,
        idle_ops,
    })
}
