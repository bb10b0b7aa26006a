//! `tideline-bench`: the same workloads against no replication, Litestream 0.5.17 and
//! tideline, in one run, alternating A B A B so drift in the machine affects all alike,
//! with medians and spreads in one table.
//!
//! ```text
//! cargo run --release -p tideline-bench -- [--quick] [--rounds N] [--seconds S]
//!     [--litestream PATH] [--tideline PATH] [--dir DIR]
//!     [--no-folder] [--no-s3] [--no-idle] [--no-bigtx] [--no-bulk] [--no-restore]
//!     [--big-mb N] [--huge-mb N] [--tx-mb N] [--bulk-mb N] [--heavy-rounds N]
//! ```
//!
//! Workloads (a real writer, WAL, `synchronous=NORMAL`, SQLite's default
//! auto-checkpoint), each against a folder replica on the same disk:
//!
//! * **max-rate**: small transactions as fast as possible for S seconds: the
//!   application's commit rate and its worst commit stall, with the replicator's CPU
//!   seconds per 1000 transactions and peak RSS;
//! * **sparse**: one transaction a second: lag from commit until the replica holds a new
//!   file for it (p50 and max), and the replicator's CPU.
//!
//! and, against a real S3 server on 127.0.0.1 (see [`s3`]): steady 200 tx/s and
//! 1 tx/s with the lag of every commit, uploads and bytes per 1000 transactions,
//! idle requests per minute, and the initial sync and restore of a large database.
//! The idle group (see [`idle`]) measures CPU seconds and S3 requests of both tools
//! watching databases nobody writes, on a folder and on S3, in one window
//! (`--idle-seconds`, 60; 10 with `--quick`). `--no-folder` / `--no-s3` / `--no-idle`
//! skip a group; `--big-mb N` sizes the large database
//! (256 MiB; 32 with `--quick`).
//!
//! Then the heavy groups (see [`heavy`]), `--heavy-rounds` rounds (2; 1 with
//! `--quick`): the two write workloads for none / Litestream / tideline against a folder
//! replica and an S3 replica, the restore group for Litestream / tideline against a
//! folder, S3, WebDAV, Azure Blob Storage (Azurite) and SFTP (OpenSSH's `sshd`), each
//! server on 127.0.0.1 (one that is not installed prints `no <type> rows` and is
//! skipped):
//!
//! * **one big transaction** of `--tx-mb` MiB (64; 8 with `--quick`) on the seeded
//!   database: the application's transaction and COMMIT time, lag from COMMIT until
//!   the replica holds it, replicator CPU and peak RSS, S3 uploads and bytes
//!   (`--no-bigtx` skips it);
//! * **bulk load** of `--bulk-mb` MiB (256; 16 with `--quick`) in 1000-row (~1 MiB)
//!   transactions as fast as possible: elapsed, MB/s, worst transaction, lag of the last
//!   commit, CPU, RSS, uploads (`--no-bulk`);
//! * **initial sync and restore** at `--big-mb` (`--heavy-rounds` rounds) and
//!   `--huge-mb` MiB (1024; 64 with `--quick`; 1 round): `replicate -once` until
//!   restorable, then two small transactions a few seconds apart through a running
//!   replicator; `restore` latest and `restore -timestamp` between them, timed by
//!   `/usr/bin/time` (seconds, MB/s, peak RSS) and checked by row count, beside
//!   `cp` + fsync of the same file (`--no-restore`); with `--quick`, Azure Blob
//!   Storage and SFTP at `--big-mb` only.
//!
//! The fleet group (see [`fleet`], `--fleet 10,100,400,1000` by default, 20 with
//! `--quick`, `--no-fleet` to skip): one process watching a directory of N databases
//! on S3, start-up, idle CPU and requests, the lag of 10 written at 10 tx/s, RSS.
//!
//! Large databases are built once per run directory (`big-N.db`); replicas, copies and
//! restored files are deleted after each measurement. With default arguments the whole
//! suite takes about half an hour on two cores; `--quick` a few minutes.
//!
//! Replicators run as separate processes (`replicate DB file://REPLICA`), started after
//! the database exists and stopped with SIGTERM; CPU and RSS are read from /proc. Every
//! loop is bounded in time; only processes started here are stopped, by PID.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rusqlite::Connection;

mod fleet;
mod heavy;
mod idle;
mod s3;
mod watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replicator {
    None,
    Litestream,
    Tideline,
}

impl Replicator {
    fn name(self) -> &'static str {
        match self {
            Replicator::None => "none",
            Replicator::Litestream => "litestream",
            Replicator::Tideline => "tideline",
        }
    }
}

struct Args {
    rounds: usize,
    seconds: u64,
    litestream: PathBuf,
    tideline: PathBuf,
    dir: Option<PathBuf>,
    folder: bool,
    s3: bool,
    idle: bool,
    big_mb: u64,
    idle_seconds: u64,
    idle_settle: Duration,
    big_tx: bool,
    bulk: bool,
    restore: bool,
    tx_mb: u64,
    bulk_mb: u64,
    huge_mb: u64,
    heavy_rounds: usize,
    /// `--fleet N,N,…`: the fleet group's sizes (empty: `--no-fleet`).
    fleet: Vec<usize>,
    fleet_settle: Duration,
    fleet_seconds: u64,
    /// `--quick`: a smoke run (smaller sizes, fewer rounds).
    quick: bool,
}

impl Args {
    /// The binary of `r`, or `None` for no replication.
    fn bin(&self, r: Replicator) -> Option<&Path> {
        match r {
            Replicator::None => None,
            Replicator::Litestream => Some(&self.litestream),
            Replicator::Tideline => Some(&self.tideline),
        }
    }
}

const USAGE: &str = "\
usage: tideline-bench [--quick] [--rounds N] [--seconds S] [--litestream PATH]
                      [--tideline PATH] [--dir DIR] [--no-folder] [--no-s3] [--no-idle]
                      [--no-bigtx] [--no-bulk] [--no-restore] [--big-mb N] [--huge-mb N]
                      [--tx-mb N] [--bulk-mb N] [--heavy-rounds N] [--idle-seconds N]
                      [--fleet N,N,...] [--no-fleet] [--fleet-settle S] [--fleet-seconds S]

Runs the same workloads against no replication, Litestream and tideline, alternating,
and prints one table of medians and spreads. The restore group (initial sync, restore
latest and -timestamp) covers a folder, S3, WebDAV, Azure Blob Storage (Azurite) and
SFTP (OpenSSH sshd), all on 127.0.0.1; a server that is not installed is skipped. The full suite takes about 30 minutes on
two cores; --quick a few minutes. Workloads and flags: docs/benchmarks.md and the doc
comment of crates/bench/src/main.rs.";

fn parse_args() -> Result<Args> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut a = Args {
        rounds: 3,
        seconds: 10,
        litestream: root.join(".tools/venv/bin/litestream"),
        tideline: root.join("target/release/tideline"),
        dir: None,
        folder: true,
        s3: true,
        idle: true,
        big_mb: 256,
        idle_seconds: 60,
        idle_settle: Duration::from_secs(35),
        big_tx: true,
        bulk: true,
        restore: true,
        tx_mb: 64,
        bulk_mb: 256,
        huge_mb: 1024,
        heavy_rounds: 2,
        fleet: vec![10, 100, 400, 1000],
        fleet_settle: Duration::from_secs(40),
        fleet_seconds: 30,
        quick: false,
    };
    let mut fleet_given = false;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--quick" => {
                a.rounds = 1;
                a.seconds = 3;
                a.big_mb = 32;
                a.idle_seconds = 10;
                a.idle_settle = Duration::from_secs(5);
                a.tx_mb = 8;
                a.bulk_mb = 16;
                a.huge_mb = 64;
                a.heavy_rounds = 1;
                if !fleet_given {
                    a.fleet = vec![20];
                }
                a.fleet_settle = Duration::from_secs(5);
                a.fleet_seconds = 5;
                a.quick = true;
            }
            "--no-bigtx" => a.big_tx = false,
            "--fleet" => {
                fleet_given = true;
                a.fleet = val("--fleet")?
                    .split(',')
                    .map(|n| n.trim().parse::<usize>())
                    .collect::<Result<_, _>>()
                    .context("--fleet takes sizes such as 100,400,1000")?;
            }
            "--no-fleet" => {
                fleet_given = true;
                a.fleet.clear();
            }
            "--fleet-settle" => {
                a.fleet_settle = Duration::from_secs(val("--fleet-settle")?.parse()?);
            }
            "--fleet-seconds" => a.fleet_seconds = val("--fleet-seconds")?.parse()?,
            "--no-bulk" => a.bulk = false,
            "--no-restore" => a.restore = false,
            "--tx-mb" => a.tx_mb = val("--tx-mb")?.parse()?,
            "--bulk-mb" => a.bulk_mb = val("--bulk-mb")?.parse()?,
            "--huge-mb" => a.huge_mb = val("--huge-mb")?.parse()?,
            "--heavy-rounds" => a.heavy_rounds = val("--heavy-rounds")?.parse()?,
            "--no-folder" => a.folder = false,
            "--no-s3" => a.s3 = false,
            "--no-idle" => a.idle = false,
            "--big-mb" => a.big_mb = val("--big-mb")?.parse()?,
            "--idle-seconds" => a.idle_seconds = val("--idle-seconds")?.parse()?,
            "--rounds" => a.rounds = val("--rounds")?.parse()?,
            "--seconds" => a.seconds = val("--seconds")?.parse()?,
            "--litestream" => a.litestream = val("--litestream")?.into(),
            "--tideline" => a.tideline = val("--tideline")?.into(),
            "--dir" => a.dir = Some(val("--dir")?.into()),
            other => {
                bail!("unknown argument {other:?}\n\n{USAGE}")
            }
        }
    }
    for (what, p) in [("litestream", &a.litestream), ("tideline", &a.tideline)] {
        if !p.is_file() {
            bail!(
                "{what} binary not found at {} (run `bash scripts/setup.sh` and `cargo build --release -p tideline-cli`, or pass --{what} PATH)",
                p.display()
            );
        }
    }
    Ok(a)
}

/// The environment every replicator and restore the bench starts gets: without the
/// CA bundle (Litestream 0.5.17's S3 client refuses to start with one set).
fn tool_env(cmd: &mut Command) -> &mut Command {
    cmd.env_remove("AWS_CA_BUNDLE")
}

/// A replicator process, stopped (SIGTERM, then kill) when dropped.
struct Proc {
    child: Child,
}

impl Proc {
    fn start_config(bin: &Path, config: &Path, log: &Path) -> Result<Proc> {
        let out = fs::File::create(log)?;
        let child = tool_env(&mut Command::new(bin))
            .args(["replicate", "-config"])
            .arg(config)
            .stdout(out.try_clone()?)
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(Proc { child })
    }

    fn start(bin: &Path, db: &Path, replica: &Path, log: &Path) -> Result<Proc> {
        let out = fs::File::create(log)?;
        let child = Command::new(bin)
            .arg("replicate")
            .arg(db)
            .arg(format!("file://{}", replica.display()))
            .stdout(out.try_clone()?)
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(Proc { child })
    }

    /// CPU seconds (user + system) and peak RSS in KiB, from /proc.
    fn usage(&self) -> (f64, u64) {
        let pid = self.child.id();
        let cpu = fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                let rest = &s[s.rfind(')')? + 2..];
                let f: Vec<&str> = rest.split_whitespace().collect();
                Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / 100.0)
            })
            .unwrap_or(0.0);
        let rss = fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0);
        (cpu, rss)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(40);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn open(db: &Path) -> Result<Connection> {
    let c = Connection::open(db)?;
    c.busy_timeout(Duration::from_secs(30))?;
    c.pragma_update(None, "journal_mode", "wal")?;
    c.pragma_update(None, "synchronous", "normal")?;
    Ok(c)
}

fn fresh(dir: &Path, tag: &str) -> Result<(PathBuf, PathBuf, Connection)> {
    let run = dir.join(tag);
    let _ = fs::remove_dir_all(&run);
    fs::create_dir_all(&run)?;
    let db = run.join("bench.db");
    let c = open(&db)?;
    c.execute_batch(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v TEXT); CREATE INDEX tk ON t(k);",
    )?;
    let tx = c.unchecked_transaction()?;
    for i in 0..20_000 {
        tx.execute(
            "INSERT INTO t(k, v) VALUES (?1, ?2)",
            (
                i * 7919 % 10_007,
                format!("seed row {i} with some text to fill the page"),
            ),
        )?;
    }
    tx.commit()?;
    Ok((db, run.join("replica"), c))
}

/// Waits (bounded) for the replicator's first copy of the database.
fn wait_first_copy(replica: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if count_files(replica) > 0 {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!(
        "the replicator wrote nothing to {} within 60 s",
        replica.display()
    )
}

/// Waits (bounded by `timeout`) until `dir` holds any file; false if it never does.
fn wait_any_file(dir: &Path, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while fs::read_dir(dir).map_or(0, |d| d.count()) == 0 {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Sleeps 1.5 s: the initial copy and any start-up work settle before a measurement.
fn settle() {
    std::thread::sleep(Duration::from_millis(1500));
}

fn count_files(replica: &Path) -> usize {
    fs::read_dir(replica.join("ltx/0")).map_or(0, |rd| {
        rd.filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".ltx"))
            .count()
    })
}

struct MaxRate {
    tx_per_s: f64,
    worst_stall_ms: f64,
    cpu_per_1000: f64,
    rss_mib: f64,
}

fn max_rate(a: &Args, r: Replicator, dir: &Path) -> Result<MaxRate> {
    let (db, replica, c) = fresh(dir, &format!("maxrate-{}", r.name()))?;
    let proc = start(a, r, &db, &replica)?;
    let t0 = Instant::now();
    let (mut n, mut worst) = (0u64, Duration::ZERO);
    let mut stmt =
        c.prepare("INSERT INTO t(k, v) VALUES (?1, 'a small row of application data')")?;
    while t0.elapsed() < Duration::from_secs(a.seconds) {
        let t = Instant::now();
        stmt.execute([n as i64 % 10_007])?;
        worst = worst.max(t.elapsed());
        n += 1;
    }
    let secs = t0.elapsed().as_secs_f64();
    let (cpu, rss) = proc.as_ref().map_or((0.0, 0), Proc::usage);
    if let Some(p) = proc {
        p.stop();
    }
    Ok(MaxRate {
        tx_per_s: n as f64 / secs,
        worst_stall_ms: worst.as_secs_f64() * 1e3,
        cpu_per_1000: cpu / (n as f64 / 1000.0),
        rss_mib: rss as f64 / 1024.0,
    })
}

struct Sparse {
    lag_p50_ms: f64,
    lag_max_ms: f64,
}

fn sparse(a: &Args, r: Replicator, dir: &Path) -> Result<Sparse> {
    let (db, replica, c) = fresh(dir, &format!("sparse-{}", r.name()))?;
    let proc = start(a, r, &db, &replica)?.context("sparse needs a replicator")?;
    settle();
    let mut lags = Vec::new();
    for i in 0..a.seconds.max(3) {
        let before = count_files(&replica);
        let t = Instant::now();
        c.execute("INSERT INTO t(k, v) VALUES (?1, 'sparse')", [i as i64])?;
        let deadline = t + Duration::from_secs(10);
        while count_files(&replica) == before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        lags.push(t.elapsed().as_secs_f64() * 1e3);
        let rest = Duration::from_secs(1).saturating_sub(t.elapsed());
        std::thread::sleep(rest);
    }
    proc.stop();
    lags.sort_by(f64::total_cmp);
    Ok(Sparse {
        lag_p50_ms: median(&lags),
        lag_max_ms: *lags.last().unwrap_or(&0.0),
    })
}

/// Starts `r` on `db`, logging to `<db's directory>/<replicator>.log` (one log per
/// workload, kept after the run for a look at what the replicator did).
fn start(a: &Args, r: Replicator, db: &Path, replica: &Path) -> Result<Option<Proc>> {
    let Some(bin) = a.bin(r) else {
        return Ok(None);
    };
    let log = db.with_file_name(format!("{}.log", r.name()));
    let p = Proc::start(bin, db, replica, &log)?;
    wait_first_copy(replica)?;
    Ok(Some(p))
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

/// "median (spread)" of one figure over rounds, as a table cell.
fn median_spread(v: &[f64], digits: usize) -> String {
    format!("{:.*} ({:.*})", digits, median(v), digits, spread(v))
}

fn spread(v: &[f64]) -> f64 {
    let (lo, hi) = v
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    if v.len() < 2 { 0.0 } else { hi - lo }
}

fn main() -> Result<()> {
    let a = parse_args()?;
    let tmp;
    let dir = match &a.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let order = [
        Replicator::None,
        Replicator::Litestream,
        Replicator::Tideline,
    ];
    let mut rate: Rates = order.iter().map(|&r| (r, Vec::new())).collect();
    let mut lag: Lags = order[1..].iter().map(|&r| (r, Vec::new())).collect();
    for round in 0..a.rounds {
        if !a.folder {
            break;
        }
        for (r, v) in &mut rate {
            eprintln!("round {}: max-rate, {}", round + 1, r.name());
            v.push(max_rate(&a, *r, &dir)?);
        }
        for (r, v) in &mut lag {
            eprintln!("round {}: sparse, {}", round + 1, r.name());
            v.push(sparse(&a, *r, &dir)?);
        }
    }
    if a.s3 {
        run_s3(&a, &dir)?;
    }
    if a.folder {
        print_folder(&a, &rate, &lag);
    }
    if a.idle {
        idle::run(&a, &dir)?;
    }
    if !a.fleet.is_empty() {
        fleet::run(&a, &dir)?;
    }
    if a.big_tx || a.bulk || a.restore {
        let servers = heavy::Servers::start(&dir)?;
        if a.big_tx || a.bulk {
            heavy::run_writes(&a, &servers, &dir)?;
        }
        if a.restore {
            heavy::run_restores(&a, &servers, &dir)?;
        }
    }
    Ok(())
}

/// The two replicators compared, in the order of every table's columns.
const REPLICATORS: [Replicator; 2] = [Replicator::Litestream, Replicator::Tideline];

type Rates = Vec<(Replicator, Vec<MaxRate>)>;
type Lags = Vec<(Replicator, Vec<Sparse>)>;

fn print_folder(a: &Args, rate: &Rates, lag: &Lags) {
    println!(
        "\n{} round(s), {} s per max-rate run; median (spread) over rounds\n",
        a.rounds, a.seconds
    );
    println!("| workload | figure | none | litestream | tideline |");
    println!("|---|---|---:|---:|---:|");
    let cell = |xs: Vec<f64>, digits: usize| median_spread(&xs, digits);
    let row = |name: &str, f: &dyn Fn(&MaxRate) -> f64, digits: usize, with_none: bool| {
        let cells: Vec<String> = rate
            .iter()
            .map(|(r, v)| {
                if *r == Replicator::None && !with_none {
                    "—".into()
                } else {
                    cell(v.iter().map(f).collect(), digits)
                }
            })
            .collect();
        println!("| max-rate | {name} | {} |", cells.join(" | "));
    };
    row("commits/s", &|m| m.tx_per_s, 0, true);
    row("worst commit stall, ms", &|m| m.worst_stall_ms, 1, true);
    row("replicator CPU s / 1000 tx", &|m| m.cpu_per_1000, 4, false);
    row("replicator peak RSS, MiB", &|m| m.rss_mib, 1, false);
    for (name, f) in [
        (
            "lag p50, ms",
            (|s: &Sparse| s.lag_p50_ms) as fn(&Sparse) -> f64,
        ),
        ("lag max, ms", |s: &Sparse| s.lag_max_ms),
    ] {
        let cells: Vec<String> = lag
            .iter()
            .map(|(_, v)| cell(v.iter().map(f).collect(), 0))
            .collect();
        println!("| sparse 1 tx/s | {name} | — | {} |", cells.join(" | "));
    }
}

/// The S3 group's rounds: `[tool]` → one figure set per round.
struct S3Results {
    fast: Vec<Vec<s3::Steady>>,
    slow: Vec<Vec<s3::Steady>>,
    large: Vec<Vec<s3::Large>>,
}

/// The S3 group: every workload for Litestream then tideline, alternating, per round.
fn run_s3(a: &Args, dir: &Path) -> Result<()> {
    let server = tideline_testkit::S3Server::start(&dir.join("s3-server"))?;
    eprintln!("building a {} MiB database", a.big_mb);
    let big = s3::big_db(dir, a.big_mb)?;
    let big_mb = fs::metadata(&big)?.len() as f64 / 1e6;
    let res = s3_rounds(a, &server, dir, &big)?;
    print_s3(a, big_mb, &res);
    Ok(())
}

/// Runs `a.rounds` rounds of 200 tx/s, 1 tx/s and large-database runs, each tool in turn.
fn s3_rounds(
    a: &Args,
    server: &tideline_testkit::S3Server,
    dir: &Path,
    big: &Path,
) -> Result<S3Results> {
    let mut res = S3Results {
        fast: vec![Vec::new(), Vec::new()],
        slow: vec![Vec::new(), Vec::new()],
        large: vec![Vec::new(), Vec::new()],
    };
    let idle = Duration::from_secs(a.idle_seconds);
    let secs = a.seconds.max(5);
    for round in 0..a.rounds {
        for (i, &r) in REPLICATORS.iter().enumerate() {
            eprintln!("round {}: s3 200 tx/s, {}", round + 1, r.name());
            res.fast[i].push(s3::steady(a, r, server, dir, 200.0, secs, Some(idle))?);
        }
        for (i, &r) in REPLICATORS.iter().enumerate() {
            eprintln!("round {}: s3 1 tx/s, {}", round + 1, r.name());
            res.slow[i].push(s3::steady(a, r, server, dir, 1.0, secs, None)?);
        }
        for (i, &r) in REPLICATORS.iter().enumerate() {
            eprintln!(
                "round {}: s3 initial sync + restore, {}",
                round + 1,
                r.name()
            );
            res.large[i].push(s3::large(a, r, server, dir, big)?);
        }
    }
    Ok(res)
}

/// Prints the S3 group's table.
fn print_s3(a: &Args, big_mb: f64, res: &S3Results) {
    println!(
        "\nS3 (s3s-fs on 127.0.0.1, default sync-interval 1 s), {} round(s), {} s per steady run, {:.0} MB database; medians\n",
        a.rounds,
        a.seconds.max(5),
        big_mb
    );
    println!("| workload | figure | litestream | tideline | ratio |");
    println!("|---|---|---:|---:|---:|");
    print_s3_steady(res);
    print_s3_large(res, big_mb);
}

/// One row of the S3 table: Litestream's and tideline's medians and their ratio.
fn s3_line(work: &str, name: &str, f: &dyn Fn(usize) -> Vec<f64>, digits: usize) {
    let (l, t) = (median(&f(0)), median(&f(1)));
    let ratio = if l > 0.0 {
        format!("{:.2}×", t / l)
    } else {
        "—".into()
    };
    println!(
        "| {work} | {name} | {} | {} | {ratio} |",
        s3::med(&f(0), digits),
        s3::med(&f(1), digits)
    );
}

/// The 200 tx/s, idle and 1 tx/s rows of the S3 table.
fn print_s3_steady(res: &S3Results) {
    type Get = fn(&s3::Steady) -> f64;
    let rows: [(&str, Get, usize); 7] = [
        ("uploads / 1000 tx", |s| s.uploads_per_1000, 1),
        ("KiB uploaded / 1000 tx", |s| s.kib_up_per_1000, 0),
        ("lag p50, ms", |s| s.lag_p50_ms, 0),
        ("lag p99, ms", |s| s.lag_p99_ms, 0),
        ("lag max, ms", |s| s.lag_max_ms, 0),
        ("replicator CPU s / 1000 tx", |s| s.cpu_per_1000, 4),
        ("replicator peak RSS, MiB", |s| s.rss_mib, 1),
    ];
    for (name, get, digits) in rows {
        let f = |i: usize| res.fast[i].iter().map(get).collect();
        s3_line("200 tx/s", name, &f, digits);
    }
    s3_line(
        "idle (after 200 tx/s)",
        "requests / minute",
        &|i| res.fast[i].iter().filter_map(|s| s.idle_per_min).collect(),
        1,
    );
    for (name, get, digits) in [
        ("lag p50, ms", (|s: &s3::Steady| s.lag_p50_ms) as Get, 0),
        ("lag p99, ms", |s| s.lag_p99_ms, 0),
    ] {
        let f = |i: usize| res.slow[i].iter().map(get).collect();
        s3_line("1 tx/s", name, &f, digits);
    }
}

/// The large-database rows of the S3 table.
fn print_s3_large(res: &S3Results, big_mb: f64) {
    type Get<'a> = Box<dyn Fn(&s3::Large) -> f64 + 'a>;
    let rows: [(&str, Get, usize); 4] = [
        (
            "initial sync until restorable, s",
            Box::new(|l| l.sync_s),
            2,
        ),
        ("restore, s", Box::new(|l| l.restore_s), 2),
        (
            "restore, MB/s",
            Box::new(|l| big_mb / l.restore_s.max(0.001)),
            0,
        ),
        ("restore peak RSS, MiB", Box::new(|l| l.restore_rss_mib), 1),
    ];
    for (name, get, digits) in rows {
        let f = |i: usize| res.large[i].iter().map(&get).collect();
        s3_line("large database", name, &f, digits);
    }
}
