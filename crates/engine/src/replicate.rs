//! Continuous replication: one task per database that captures changes as they happen
//! and ships them to the replica.
//!
//! * **Wake on change.** A file-system watcher on the database's directory wakes the
//!   task when the `-wal` or the database is written, created, removed or renamed
//!   (never on opens or reads, least of all its own); a slow fallback poll covers file systems
//!   without events. An idle database does nothing: no CPU, no replica requests.
//! * **Latency-bounded batching.** A change is captured at once when the last capture
//!   is at least `monitor-interval` old, otherwise at that boundary; so sparse writes
//!   are shipped within milliseconds, and sustained writes produce at most one L0 file
//!   (and one upload) per interval, as Litestream does. Uploads wait for the
//!   `sync-interval` since the previous upload.
//! * **Position.** Before the first upload the local position is matched with the
//!   replica (the `reconcile` module): local files the replica lacks are uploaded; a
//!   replica that shows nothing though this database shipped there is reported as
//!   missing and left alone until it is back; a replica changed behind our back gets a
//!   consistent new generation. An unreachable destination is retried, while capture
//!   goes on locally.
//! * **Failures** back off exponentially (up to 5 minutes), each stage on its own
//!   (capture, upload, maintenance), and lose nothing: L0 files stay in the meta
//!   directory until uploaded.
//! * **Shutdown** captures and ships what is pending, retrying until the deadline.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tideline_ltx::Txid;
use tokio::sync::{mpsc, watch};

use crate::config::{Config, DbConfig};
use crate::db::{Captured, Database, DbOptions, SnapshotReason};
use crate::error::{Error, Result};
use crate::maintenance::{DEFAULT_MAX_CONCURRENT_COMPACTIONS, LevelsConfig, Maintainer};
use crate::reconcile::{self, Decision, ShippedRecord};
use crate::replica::{ReplicaClient, RequestCounts, open_client};

/// Replication settings beyond the per-database configuration.
#[derive(Debug, Clone)]
pub struct ReplicateSettings {
    /// Capture and ship once, then stop.
    pub once: bool,
    /// How long shutdown keeps trying to ship pending files.
    pub shutdown_sync_timeout: Duration,
    /// Pause between those attempts.
    pub shutdown_sync_interval: Duration,
    /// Compaction levels, snapshots and retention.
    pub levels: LevelsConfig,
    /// Compactions and snapshots running at once, across all databases.
    pub max_concurrent_compactions: usize,
    /// With `once`: write a snapshot after shipping.
    pub force_snapshot: bool,
    /// With `once`: apply retention after shipping, without the grace period.
    pub enforce_retention: bool,
}

impl ReplicateSettings {
    /// The settings a config file gives.
    pub fn from_config(config: &Config) -> Self {
        ReplicateSettings {
            once: false,
            shutdown_sync_timeout: config.shutdown_sync_timeout,
            shutdown_sync_interval: config.shutdown_sync_interval,
            levels: LevelsConfig::from_config(config),
            max_concurrent_compactions: DEFAULT_MAX_CONCURRENT_COMPACTIONS,
            force_snapshot: false,
            enforce_retention: false,
        }
    }
}

impl Default for ReplicateSettings {
    fn default() -> Self {
        ReplicateSettings::from_config(&Config::default())
    }
}

/// What replication reports as it goes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// A database's replication started.
    Started {
        /// The database.
        db: PathBuf,
        /// The replica (no credentials).
        replica: String,
        /// The local TXID after reconciling with the replica.
        txid: Option<Txid>,
    },
    /// Changes were captured into an L0 file.
    Captured {
        /// The database.
        db: PathBuf,
        /// Its TXID.
        txid: Txid,
        /// Pages in it.
        pages: u32,
        /// Bytes.
        bytes: u64,
        /// Set when it holds the whole database, with why.
        snapshot: Option<SnapshotReason>,
    },
    /// Files reached the replica.
    Shipped {
        /// The database.
        db: PathBuf,
        /// Files uploaded.
        files: usize,
        /// Bytes uploaded.
        bytes: u64,
        /// The replica's TXID now.
        txid: Txid,
        /// Time from the oldest capture among them to its arrival.
        lag: Duration,
    },
    /// The WAL was checkpointed into the database.
    Checkpointed {
        /// The database.
        db: PathBuf,
        /// PASSIVE or TRUNCATE.
        mode: &'static str,
        /// Whether the WAL restarted.
        restarted: bool,
        /// How long the application's writers were held off.
        writers_blocked: Duration,
    },
    /// Something failed; it is retried. The other stages go on: a failing upload does
    /// not stop capture, a failing compaction neither capture nor upload.
    Error {
        /// The database.
        db: PathBuf,
        /// Which stage failed.
        stage: Stage,
        /// What failed, in words.
        message: String,
        /// When the next attempt is.
        retry_in: Duration,
    },
    /// A stage that had failed works again.
    Recovered {
        /// The database.
        db: PathBuf,
        /// The stage.
        stage: Stage,
    },
    /// The replica did not hold what this machine had shipped to it (another writer,
    /// a restored or emptied-and-refilled destination): replication starts a
    /// consistent new generation there, the whole database at `txid`.
    NewGeneration {
        /// The database.
        db: PathBuf,
        /// What was found, in words.
        reason: String,
        /// The TXID the whole-database copy will have.
        txid: Txid,
    },
    /// Files of one level were merged into the next level.
    Compacted {
        /// The database.
        db: PathBuf,
        /// The level written (1..=8).
        level: u8,
        /// Input files merged.
        files: usize,
        /// Of those, read from local L0 copies instead of the replica.
        local_files: usize,
        /// First TXID of the output.
        min_txid: Txid,
        /// Last TXID of the output.
        max_txid: Txid,
        /// Bytes of the inputs.
        bytes_in: u64,
        /// Bytes of the output.
        bytes: u64,
        /// Merge and upload time.
        duration: Duration,
    },
    /// A full snapshot (level 9) was written.
    Snapshotted {
        /// The database.
        db: PathBuf,
        /// Its MaxTXID.
        txid: Txid,
        /// Pages.
        pages: u32,
        /// Bytes.
        bytes: u64,
        /// Read, write and upload time.
        duration: Duration,
    },
    /// Retention deleted files of one level from the replica.
    Deleted {
        /// The database.
        db: PathBuf,
        /// The level.
        level: u8,
        /// Files deleted.
        files: usize,
        /// Their bytes.
        bytes: u64,
        /// Time of the delete request(s).
        duration: Duration,
    },
    /// A database's replication stopped.
    Stopped {
        /// The database.
        db: PathBuf,
        /// The replica's TXID at the end.
        txid: Option<Txid>,
        /// Files still waiting to be shipped (0 after a clean stop).
        pending: usize,
    },
}

/// The stages of a database's replication, each retried on its own after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Stage {
    /// Opening the database (a missing file, a lock held by another replicator).
    Open,
    /// Capturing committed WAL frames into local L0 files.
    Capture,
    /// Matching with the replica and uploading L0 files to it.
    Ship,
    /// Compaction, snapshots and retention.
    Maintain,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::Open => "opening the database",
            Stage::Capture => "capture",
            Stage::Ship => "upload",
            Stage::Maintain => "maintenance",
        })
    }
}

impl Event {
    /// True for failures.
    pub fn is_error(&self) -> bool {
        matches!(self, Event::Error { .. })
            || matches!(self, Event::Stopped { pending, .. } if *pending > 0)
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Started { db, replica, txid } => write!(
                f,
                "{}: replicating to {replica} from TXID {}",
                db.display(),
                txid.map_or("none (first sync)".into(), |t| t.to_string())
            ),
            Event::Captured {
                db,
                txid,
                pages,
                bytes,
                snapshot,
            } => {
                write!(
                    f,
                    "{}: captured TXID {txid}: {pages} pages, {bytes} bytes",
                    db.display()
                )?;
                if let Some(r) = snapshot {
                    write!(f, " (whole database: {r})")?;
                }
                Ok(())
            }
            Event::Shipped {
                db,
                files,
                bytes,
                txid,
                lag,
            } => write!(
                f,
                "{}: shipped {files} file(s), {bytes} bytes, replica at TXID {txid}, lag {} ms",
                db.display(),
                lag.as_millis()
            ),
            Event::Checkpointed {
                db,
                mode,
                restarted,
                writers_blocked,
            } => write!(
                f,
                "{}: checkpoint {mode}{}, writers held {} ms",
                db.display(),
                if *restarted { ", WAL restarted" } else { "" },
                writers_blocked.as_millis()
            ),
            Event::Error {
                db,
                stage,
                message,
                retry_in,
            } => {
                write!(
                    f,
                    "{}: {stage} failed: {message}; retrying in {} s",
                    db.display(),
                    retry_in.as_secs_f32()
                )
            }
            Event::Recovered { db, stage } => {
                write!(f, "{}: {stage} works again", db.display())
            }
            Event::NewGeneration { db, reason, txid } => write!(
                f,
                "{}: the replica was changed by someone else ({reason}); starting a new generation there with the whole database at TXID {txid}",
                db.display()
            ),
            Event::Compacted {
                db,
                level,
                files,
                local_files,
                min_txid,
                max_txid,
                bytes_in,
                bytes,
                duration,
            } => write!(
                f,
                "{}: compacted {files} file(s) ({local_files} local), {bytes_in} bytes, into level {level} {min_txid}-{max_txid}, {bytes} bytes, in {} ms",
                db.display(),
                duration.as_millis()
            ),
            Event::Snapshotted {
                db,
                txid,
                pages,
                bytes,
                duration,
            } => write!(
                f,
                "{}: snapshot at TXID {txid}: {pages} pages, {bytes} bytes, in {} ms",
                db.display(),
                duration.as_millis()
            ),
            Event::Deleted {
                db,
                level,
                files,
                bytes,
                duration,
            } => write!(
                f,
                "{}: retention deleted {files} level-{level} file(s), {bytes} bytes, in {} ms",
                db.display(),
                duration.as_millis()
            ),
            Event::Stopped { db, txid, pending } => write!(
                f,
                "{}: stopped at replica TXID {}{}",
                db.display(),
                txid.map_or("none".into(), |t| t.to_string()),
                if *pending > 0 {
                    format!("; {pending} file(s) NOT shipped (kept in the meta directory)")
                } else {
                    String::new()
                }
            ),
        }
    }
}

/// Where replication reports events.
pub type EventSink = Arc<dyn Fn(&Event) + Send + Sync>;

/// Longest pause between retries after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Longest pause between capture retries.
const MAX_CAPTURE_BACKOFF: Duration = Duration::from_secs(10);
/// Fallback poll when file-system events are available (they may still be missed,
/// e.g. on network file systems): cheap, a stat of the WAL.
const FALLBACK_POLL: Duration = Duration::from_secs(10);

/// The least time between two captures (or uploads) for an `interval`: a little less
/// than the interval. With exactly the interval, a writer committing once per
/// interval would be held back by each wake-up's latency, and the delays would add up
/// (every commit then waits the largest delay seen so far); the slack lets that delay
/// shrink by up to 100 ms per commit, for at most ~11 % more files under sustained
/// writes.
fn paced(interval: Duration) -> Duration {
    interval - (interval / 10).min(Duration::from_millis(100))
}

/// WAL captured at once beyond which it is flushed before the read mark moves (see
/// `Database::flush_wal`); below it, as after a few small commits, the application's
/// own fsync is short and ours would only add lag.
const FLUSH_WAL_BYTES: u64 = 4 << 20;

/// Replicates `dbs` until `shutdown` completes (or once, with `settings.once`).
/// Fails fast if a database cannot be opened at start (missing, not SQLite, already
/// replicated, unusable replica config); later failures are retried and reported as
/// events.
pub async fn replicate(
    dbs: Vec<DbConfig>,
    settings: ReplicateSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
    events: EventSink,
) -> Result<()> {
    let mut with_clients = Vec::with_capacity(dbs.len());
    for cfg in dbs {
        let replica_cfg = cfg
            .require_replica()
            .map_err(|e| Error::Unsupported(e.to_string()))?;
        let client = open_client(replica_cfg)?;
        with_clients.push((cfg, client));
    }
    replicate_to(with_clients, settings, shutdown, events).await
}

/// Like [`replicate`], with the replica clients given (the desktop app and tests
/// supply their own). The sync interval comes from each database's replica config,
/// or Litestream's default of 1 s.
pub async fn replicate_to(
    dbs: Vec<(DbConfig, Arc<dyn ReplicaClient>)>,
    settings: ReplicateSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
    events: EventSink,
) -> Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let mut started = Vec::new();
    let mut stop = stop_rx.clone();
    // One bound on compactions and snapshots for every database.
    let compactions = Arc::new(tokio::sync::Semaphore::new(
        settings.max_concurrent_compactions.max(1),
    ));
    for (cfg, client) in dbs {
        let sync_interval = cfg
            .replica
            .as_ref()
            .map_or(Duration::from_secs(1), |r| r.sync_interval);
        if let Some(task) = DbTask::start(
            cfg,
            sync_interval,
            client,
            Arc::clone(&events),
            (!settings.once).then_some(&mut stop),
            (settings.levels.clone(), Arc::clone(&compactions)),
        )
        .await?
        {
            started.push(task);
        }
    }
    let handles: Vec<_> = started
        .into_iter()
        .map(|t| tokio::spawn(t.run(settings.clone(), stop_rx.clone(), None, Arc::default())))
        .collect();
    let mut first_err = None;
    for h in handles {
        match h.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(join) => {
                first_err.get_or_insert(Error::Unsupported(format!(
                    "replication task failed: {join}"
                )));
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// The capture side of a database's task: runs beside the uploads, so that a slow or
/// stalled destination never delays the capture of commits into local L0 files (each
/// keeps its own restore point, and checkpoints go on).
#[derive(Clone)]
struct Capturer {
    path: PathBuf,
    db: Arc<Mutex<Database>>,
    events: EventSink,
    monitor_interval: Duration,
    /// Set when capture took another replicator's files as the position.
    reloaded: Arc<AtomicBool>,
}

impl Capturer {
    async fn with_db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Database) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        with_db(&self.db, f).await
    }

    /// Captures everything committed, checkpointing when due.
    async fn capture(&self) -> Result<Vec<Captured>> {
        let captured = self
            .with_db(|db| {
                let mut out = Vec::new();
                while let Some(c) = db.sync(SystemTime::now())? {
                    let more = c.more;
                    out.push(c);
                    if !more {
                        break;
                    }
                }
                if out.last().is_some_and(|c| !c.more) {
                    if out.iter().map(|c| c.wal_bytes).sum::<u64>() >= FLUSH_WAL_BYTES {
                        db.flush_wal();
                    }
                    db.advance_read_mark()?;
                }
                let ck = match db.checkpoint_due(Instant::now()) {
                    Some(mode) => Some(db.checkpoint(mode, SystemTime::now(), Instant::now())?),
                    None => None,
                };
                Ok((out, ck, db.take_position_reloaded()))
            })
            .await?;
        let (mut out, ck, reloaded) = captured;
        if reloaded {
            // Another replicator's files are now the position: the upload side
            // matches them with the replica before uploading any.
            self.reloaded.store(true, Ordering::Relaxed);
        }
        if let Some(ck) = ck {
            if !ck.deferred {
                (self.events)(&Event::Checkpointed {
                    db: self.path.clone(),
                    mode: ck.mode,
                    restarted: ck.restarted,
                    writers_blocked: ck.writers_blocked,
                });
            }
            out.extend(ck.captured);
        }
        for c in &out {
            (self.events)(&Event::Captured {
                db: self.path.clone(),
                txid: c.info.max_txid,
                pages: c.pages,
                bytes: c.info.size,
                snapshot: c.snapshot,
            });
        }
        Ok(out)
    }

    /// Reports a stage's failure and schedules its retry (doubling, up to 5 minutes).
    fn failed(&self, stage: Stage, e: &Error, retry: &mut Retry) {
        // Capture is local work (a full disk, another replicator's files): retried
        // often, so it resumes soon after the cause is gone; remote stages back off
        // further, so a failing server is not hammered.
        let max = if stage == Stage::Capture {
            MAX_CAPTURE_BACKOFF
        } else {
            MAX_BACKOFF
        };
        retry.backoff =
            (retry.backoff * 2).clamp(self.monitor_interval.max(Duration::from_millis(100)), max);
        retry.at = Some(tokio::time::Instant::now() + retry.backoff);
        (self.events)(&Event::Error {
            db: self.path.clone(),
            stage,
            message: e.to_string(),
            retry_in: retry.backoff,
        });
    }

    /// Clears a stage's retry state, telling listeners if it had been failing.
    fn succeeded(&self, stage: Stage, retry: &mut Retry) {
        if retry.failing() {
            (self.events)(&Event::Recovered {
                db: self.path.clone(),
                stage,
            });
        }
        *retry = Retry::default();
    }

    /// Waits for changes and captures them until `stop`, telling the upload side
    /// (`kick`) whenever there is something new.
    async fn run(
        &self,
        mut stop: watch::Receiver<bool>,
        wake: &mut mpsc::Receiver<()>,
        poll: Duration,
        kick: &tokio::sync::Notify,
        stats: &TaskStats,
    ) {
        let mut last_capture: Option<Instant> = None;
        let mut retry = Retry::default();
        loop {
            if *stop.borrow() {
                break;
            }
            let timer = [Some(tokio::time::Instant::now() + poll), retry.at]
                .into_iter()
                .flatten()
                .min()
                .expect("the poll is always set");
            // While capture backs off, changes wait for its retry (they are picked up
            // then), so a failing step is not run at the writer's pace.
            let listen = retry.ready();
            tokio::select! {
                _ = stop.changed() => break,
                _ = wake.recv(), if listen => {}
                _ = tokio::time::sleep_until(timer) => {}
            }
            if *stop.borrow() {
                break;
            }
            // Capture at most once per monitor interval: a burst of events within it
            // becomes one L0 file.
            if let Some(t) = last_capture {
                let next = t + paced(self.monitor_interval);
                if Instant::now() < next {
                    tokio::select! {
                        _ = stop.changed() => break,
                        _ = tokio::time::sleep(next - Instant::now()) => {}
                    }
                }
            }
            if !retry.ready() {
                continue;
            }
            stats.syncs.fetch_add(1, Ordering::Relaxed);
            // Intervals count from the start of a capture, so its own duration does
            // not add up into lag.
            let started = Instant::now();
            match self.capture().await {
                Ok(captured) => {
                    if !captured.is_empty() {
                        last_capture = Some(started);
                        kick.notify_one();
                    }
                    self.succeeded(Stage::Capture, &mut retry);
                }
                Err(e) => self.failed(Stage::Capture, &e, &mut retry),
            }
        }
    }
}

/// One database's replication.
struct DbTask {
    path: PathBuf,
    db: Arc<Mutex<Database>>,
    client: Arc<dyn ReplicaClient>,
    events: EventSink,
    monitor_interval: Duration,
    sync_interval: Duration,
    /// The replica's TXID, once matched with it (see `reconciled`).
    shipped: Option<Txid>,
    /// True once the local position was matched with the replica; false again after
    /// a failed upload, since the destination may come back changed.
    reconciled: Arc<AtomicBool>,
    /// What this machine knows reached the replica (the meta directory's record).
    record: Option<ShippedRecord>,
    /// When the record was last written (it is kept at most a minute behind).
    record_written: Option<Instant>,
    /// The meta directory: request counts for `tideline status`, the shipped record.
    meta_dir: PathBuf,
    started_at: SystemTime,
    /// The counts last reported.
    reported: Option<RequestCounts>,
    /// Compaction, snapshots and retention of the replica.
    maintainer: Option<Maintainer>,
    /// While the task runs, the maintainer works in its own loop: what uploads and
    /// matching tell it goes there.
    maint_tx: Option<mpsc::UnboundedSender<MaintMsg>>,
    /// Whether local L0 files stay after upload (compaction levels read them).
    keeps_local_l0: bool,
    /// Set by capture when it took another replicator's files as the position.
    reloaded: Arc<AtomicBool>,
}

/// Snapshots of a database that capture runs on beside maintenance: the files are
/// stamped with the moment the database lock was had, not the maintenance tick's
/// `now`, which is older by the wait for a capture under way; its commits are in the
/// files, and a point-in-time restore before them must not pick the files.
struct LiveSnapshots(Arc<Mutex<Database>>);

impl crate::snapshot::SnapshotSource for LiveSnapshots {
    fn take_snapshot(
        &self,
        dst: &Path,
        now: SystemTime,
    ) -> Result<Option<crate::snapshot::SnapshotTaken>> {
        let mut db = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        crate::snapshot::snapshot_locked(&mut db, dst, now.max(SystemTime::now()))
    }
}

/// Runs `f` on the locked database on a blocking thread (SQLite and file IO block).
async fn with_db<T: Send + 'static>(
    db: &Arc<Mutex<Database>>,
    f: impl FnOnce(&mut Database) -> Result<T> + Send + 'static,
) -> Result<T> {
    let db = Arc::clone(db);
    tokio::task::spawn_blocking(move || f(&mut db.lock().unwrap_or_else(PoisonError::into_inner)))
        .await
        .expect("database task panicked")
}

/// What the upload side tells the maintainer.
#[derive(Debug)]
enum MaintMsg {
    /// A file reached the replica (keeps its cached listing true).
    Written(crate::replica::FileInfo),
    /// The replica was found changed: list it afresh.
    Invalidate,
    /// The replica was matched: maintenance may write to it.
    Reconciled,
}

impl MaintMsg {
    fn apply(self, m: &mut Maintainer) {
        match self {
            MaintMsg::Written(info) => m.note_written(info),
            MaintMsg::Invalidate => m.invalidate(),
            MaintMsg::Reconciled => {}
        }
    }
}

/// Compaction, snapshots and retention, in a loop of their own beside capture and
/// upload, so that a long compaction or snapshot upload delays neither, and a failing
/// one backs off alone. Nothing is written before the replica was matched (a missing
/// destination must not be written by them either). Returns the maintainer at `stop`.
async fn maintain(
    mut m: Maintainer,
    mut rx: mpsc::UnboundedReceiver<MaintMsg>,
    reconciled: Arc<AtomicBool>,
    mut stop: watch::Receiver<bool>,
    report: &Capturer,
) -> Maintainer {
    let mut retry = Retry::default();
    loop {
        if *stop.borrow() {
            break;
        }
        // Until the replica is matched, only messages (one says it is) and the stop.
        let at = if reconciled.load(Ordering::Relaxed) {
            Some(retry.at.unwrap_or_else(|| {
                let in_ = m
                    .due_at()
                    .and_then(|t| t.duration_since(SystemTime::now()).ok())
                    .unwrap_or_default();
                tokio::time::Instant::now() + in_
            }))
        } else {
            None
        };
        tokio::select! {
            _ = stop.changed() => break,
            msg = rx.recv() => {
                match msg {
                    Some(msg) => msg.apply(&mut m),
                    None => break,
                }
                continue;
            }
            _ = sleep_until_some(at) => {}
        }
        while let Ok(msg) = rx.try_recv() {
            msg.apply(&mut m);
        }
        let now = SystemTime::now();
        if reconciled.load(Ordering::Relaxed) && retry.ready() && (retry.failing() || m.is_due(now))
        {
            let ticked = tokio::select! {
                _ = stop.changed() => break,
                r = m.tick(now) => r,
            };
            match ticked {
                Ok(()) => report.succeeded(Stage::Maintain, &mut retry),
                Err(e) => report.failed(Stage::Maintain, &e, &mut retry),
            }
        }
    }
    // Uploads made at the very end still reach the cached listing.
    while let Ok(msg) = rx.try_recv() {
        msg.apply(&mut m);
    }
    m
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// How often the shipped record is rewritten while uploads go on: it only has to
/// show that something reached the replica and roughly how far, and each write costs
/// two fsyncs.
const RECORD_EVERY: Duration = Duration::from_secs(60);

/// One stage's retry state after failures.
#[derive(Debug, Default)]
struct Retry {
    backoff: Duration,
    at: Option<tokio::time::Instant>,
}

impl Retry {
    /// True unless the stage is waiting out a backoff.
    fn ready(&self) -> bool {
        self.at.is_none_or(|at| tokio::time::Instant::now() >= at)
    }

    fn failing(&self) -> bool {
        self.at.is_some()
    }
}

impl DbTask {
    /// Opens the database. With `wait_until`, a database that does not exist yet is
    /// waited for (`None` if shutdown came first); without it (`-once`) a missing
    /// database is an error. The replica is not contacted here: matching with it is
    /// the upload stage's first step, retried until the destination can be reached,
    /// while capture goes on locally.
    async fn start(
        cfg: DbConfig,
        sync_interval: Duration,
        client: Arc<dyn ReplicaClient>,
        events: EventSink,
        wait_until: Option<&mut watch::Receiver<bool>>,
        (levels, compactions): (LevelsConfig, Arc<tokio::sync::Semaphore>),
    ) -> Result<Option<DbTask>> {
        let opts = DbOptions {
            busy_timeout: cfg.busy_timeout,
            max_sync_wal_bytes: cfg.max_sync_wal_bytes,
            min_checkpoint_page_count: u64::from(cfg.min_checkpoint_page_count),
            truncate_page_n: u64::from(cfg.truncate_page_n),
            checkpoint_interval: cfg.checkpoint_interval,
            meta_dir: Some(cfg.meta_path.clone()),
        };
        let l0_dir = cfg.meta_path.join("ltx").join("0");
        let continuous = wait_until.is_some();
        let db = match wait_until {
            Some(stop) => {
                match open_when_present(&cfg.path, opts, cfg.monitor_interval, &events, stop)
                    .await?
                {
                    Some(db) => db,
                    None => return Ok(None),
                }
            }
            None => {
                let path = cfg.path.clone();
                tokio::task::spawn_blocking(move || Database::open(&path, opts))
                    .await
                    .expect("open task panicked")?
            }
        };
        // Another program writing this meta directory (Litestream on the same
        // database) is refused before anything of ours goes there. A fresh newest
        // file that our last run shipped (a clean stop records it) needs no wait.
        let record = ShippedRecord::load(&cfg.meta_path, &client.describe());
        if continuous
            && let Some((wait, before)) = db.meta_watch()?
            && record
                .as_ref()
                .is_none_or(|r| (Txid(r.txid), r.size) != before.file())
        {
            tokio::time::sleep(wait).await;
            db.check_meta_quiet(before)?;
        }
        let db = Arc::new(Mutex::new(db));
        let maintainer = Maintainer::new(
            cfg.path.clone(),
            Arc::clone(&client),
            levels,
            Some(l0_dir),
            cfg.meta_path.join("ltx"),
            Some(Arc::new(LiveSnapshots(Arc::clone(&db)))
                as Arc<dyn crate::snapshot::SnapshotSource>),
            compactions,
            Arc::clone(&events),
        );
        let task = DbTask {
            path: cfg.path.clone(),
            db,
            client,
            events,
            monitor_interval: cfg.monitor_interval,
            sync_interval,
            shipped: None,
            reconciled: Arc::default(),
            record,
            record_written: None,
            meta_dir: cfg.meta_path.clone(),
            started_at: SystemTime::now(),
            reported: None,
            keeps_local_l0: maintainer.keeps_local_l0(),
            maintainer: Some(maintainer),
            maint_tx: None,
            reloaded: Arc::default(),
        };
        let txid = task.with_db(|db| Ok(db.position().map(|p| p.txid))).await?;
        (task.events)(&Event::Started {
            db: task.path.clone(),
            replica: task.client.describe(),
            txid,
        });
        // A first look at the replica: a configuration only the user can fix fails the
        // start with the fix named; anything else (a server down, a drive not mounted)
        // is retried by the loop, which reports it meanwhile.
        if continuous {
            let mut task = task;
            match task.reconcile().await {
                Err(Error::Replica(e)) if e.needs_config_fix() => return Err(Error::Replica(e)),
                _ => return Ok(Some(task)),
            }
        }
        Ok(Some(task))
    }

    async fn with_db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Database) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        with_db(&self.db, f).await
    }

    /// Captures everything committed, checkpointing when due.
    async fn capture(&self) -> Result<Vec<Captured>> {
        self.capturer().capture().await
    }

    /// The capture side of this task, to run beside the uploads.
    fn capturer(&self) -> Capturer {
        Capturer {
            path: self.path.clone(),
            db: Arc::clone(&self.db),
            events: Arc::clone(&self.events),
            monitor_interval: self.monitor_interval,
            reloaded: Arc::clone(&self.reloaded),
        }
    }

    /// Matches the local position with the replica (see [`crate::reconcile`]): what
    /// to upload, whether to start afresh or a new generation, or to write nothing
    /// because the destination is missing.
    async fn reconcile(&mut self) -> Result<()> {
        let levels = crate::restore::list_levels(self.client.as_ref()).await?;
        let local: Vec<Txid> = self
            .with_db(|db| Ok(db.local_l0()?.into_iter().map(|(t, _)| t).collect()))
            .await?;
        match reconcile::decide(self.record.as_ref(), &levels, &local) {
            Decision::Resume { replica } => self.shipped = replica,
            Decision::Fresh => {
                self.client.start_new_backup();
                self.with_db(|db| db.reset_position(None)).await?;
                self.shipped = None;
                self.tell_maintainer(MaintMsg::Invalidate);
            }
            Decision::Adopt { file, changed } => {
                let r = file.max_txid;
                if let Some(reason) = changed {
                    (self.events)(&Event::NewGeneration {
                        db: self.path.clone(),
                        reason,
                        txid: r.next(),
                    });
                }
                let bytes = self.client.read_range(&file, 0..file.size).await?;
                self.with_db(move |db| db.reset_position(Some((r, &bytes))))
                    .await?;
                self.shipped = Some(r);
                self.tell_maintainer(MaintMsg::Invalidate);
            }
            Decision::Refuse { shipped } => {
                return Err(missing(&self.meta_dir, &self.client.describe(), shipped));
            }
        }
        self.reconciled.store(true, Ordering::Relaxed);
        self.tell_maintainer(MaintMsg::Reconciled);
        Ok(())
    }

    /// Uploads local L0 files the replica does not have, oldest first, after matching
    /// with the replica if that is still to be done. Without compaction levels,
    /// removes local files older than the newest once shipped (the newest is the
    /// position); with levels they stay until compacted into L1, which reads them
    /// instead of downloading (the maintainer removes them).
    async fn ship(&mut self) -> Result<usize> {
        if !self.reconciled.load(Ordering::Relaxed) {
            self.reconcile().await?;
        }
        let result = self.upload_pending().await;
        if result.is_err() {
            // The destination may have gone; it is matched again before the next upload.
            self.reconciled.store(false, Ordering::Relaxed);
        }
        result
    }

    async fn upload_pending(&mut self) -> Result<usize> {
        let l0_dir = self.with_db(|db| Ok(db.l0_dir().to_owned())).await?;
        let local = crate::db::list_l0(&l0_dir)?;
        let pending: Vec<&(Txid, PathBuf)> = local
            .iter()
            .filter(|(t, _)| self.shipped.is_none_or(|s| *t > s))
            .collect();
        if pending.is_empty() {
            return Ok(0);
        }
        let (mut bytes, mut oldest) = (0u64, None::<SystemTime>);
        let mut last = None;
        for (txid, path) in &pending {
            let created = std::fs::metadata(path)
                .and_then(|m| m.modified())
                .map_err(Error::io("stat", path))?;
            crate::failpoint::hit("upload-started");
            let info = self.client.write(0, *txid, *txid, created, path).await?;
            crate::failpoint::hit("upload-finished");
            bytes += info.size;
            last = Some((info.max_txid, info.size));
            self.tell_maintainer(MaintMsg::Written(info));
            oldest.get_or_insert(created);
            self.shipped = Some(*txid);
        }
        if let Some((txid, size)) = last {
            self.note_shipped(txid, size, false);
        }
        let lag = oldest.and_then(|t| t.elapsed().ok()).unwrap_or_default();
        (self.events)(&Event::Shipped {
            db: self.path.clone(),
            files: pending.len(),
            bytes,
            txid: self.shipped.expect("set above"),
            lag,
        });
        // Keep only the newest local L0: it is the position.
        if !self.keeps_local_l0
            && let Some((newest, _)) = local.last()
        {
            for (t, p) in &local {
                if t < newest && self.shipped.is_some_and(|s| *t <= s) {
                    let _ = std::fs::remove_file(p);
                }
            }
        }
        Ok(pending.len())
    }

    /// Keeps the shipped record: written at once the first time (and with `now`), then
    /// at most every [`RECORD_EVERY`]. Best effort: a record that cannot be written
    /// (a full disk) only weakens the missing-destination check, it loses nothing.
    fn note_shipped(&mut self, txid: Txid, size: u64, now: bool) {
        let rec = ShippedRecord {
            replica: self.client.describe(),
            txid: txid.0,
            size,
        };
        let due = now
            || self.record.is_none()
            || self
                .record_written
                .is_none_or(|t| t.elapsed() >= RECORD_EVERY);
        if due && self.record.as_ref() != Some(&rec) && rec.store(&self.meta_dir).is_ok() {
            crate::failpoint::hit("position-written");
            self.record_written = Some(Instant::now());
        }
        self.record = Some(rec);
    }

    /// Writes the replica's request counts for `tideline status` when they changed
    /// (never while idle). Best effort: a report that cannot be written is skipped.
    fn report_requests(&mut self) {
        let Some(counts) = self.client.request_counts() else {
            return;
        };
        if self.reported == Some(counts) {
            return;
        }
        let report = RequestReport {
            replica: self.client.describe(),
            since: crate::time::format_rfc3339(self.started_at),
            counts,
        };
        if write_request_report(&self.meta_dir, &report).is_ok() {
            self.reported = Some(counts);
        }
    }

    async fn pending(&self) -> Result<usize> {
        let l0_dir = self.with_db(|db| Ok(db.l0_dir().to_owned())).await?;
        Ok(crate::db::list_l0(&l0_dir)?
            .iter()
            .filter(|(t, _)| self.shipped.is_none_or(|s| *t > s))
            .count())
    }

    fn failed(&self, stage: Stage, e: &Error, retry: &mut Retry) {
        self.capturer().failed(stage, e, retry);
    }

    fn succeeded(&self, stage: Stage, retry: &mut Retry) {
        self.capturer().succeeded(stage, retry);
    }

    async fn run(
        mut self,
        settings: ReplicateSettings,
        stop: watch::Receiver<bool>,
        wake: Option<Wake>,
        stats: Arc<TaskStats>,
    ) -> Result<()> {
        if settings.once {
            self.reconcile().await?;
            self.capture().await?;
            self.ship().await?;
            if settings.force_snapshot {
                self.maintainer_mut()
                    .force_snapshot(SystemTime::now())
                    .await?;
            }
            if settings.enforce_retention {
                self.maintainer_mut()
                    .enforce_retention(SystemTime::now())
                    .await?;
            }
            self.report_requests();
            (self.events)(&Event::Stopped {
                db: self.path.clone(),
                txid: self.shipped,
                pending: 0,
            });
            return Ok(());
        }
        let (wake_tx, mut wake) = wake.unwrap_or_else(wake_channel);
        let watcher = WalWatcher::new(&self.path, wake_tx.clone());
        let poll = if watcher.is_some() {
            FALLBACK_POLL
        } else {
            self.monitor_interval
        };
        // The first pass captures and ships whatever happened while we were not running.
        let _ = wake_tx.try_send(());
        let kick = tokio::sync::Notify::new();
        kick.notify_one();
        // Capture and upload run side by side: a stalled upload must not hold up
        // capture, which keeps a restore point per commit batch locally meanwhile.
        let capturer = self.capturer();
        let maintainer = self.maintainer.take().expect("the maintainer is in place");
        let (maint_tx, maint_rx) = mpsc::unbounded_channel();
        self.maint_tx = Some(maint_tx);
        let reconciled = Arc::clone(&self.reconciled);
        let ((), (), maintainer) = tokio::join!(
            capturer.run(stop.clone(), &mut wake, poll, &kick, &stats),
            self.ship_loop(stop.clone(), &kick),
            maintain(maintainer, maint_rx, reconciled, stop, &capturer),
        );
        self.maint_tx = None;
        self.maintainer = Some(maintainer);
        drop(watcher);
        self.shutdown(&settings).await
    }

    /// Tells the maintainer about an upload or a changed replica: through its loop's
    /// channel while the task runs, directly otherwise.
    fn tell_maintainer(&mut self, msg: MaintMsg) {
        match &self.maint_tx {
            Some(tx) => {
                let _ = tx.send(msg);
            }
            None => {
                if let Some(m) = self.maintainer.as_mut() {
                    msg.apply(m);
                }
            }
        }
    }

    fn maintainer_mut(&mut self) -> &mut Maintainer {
        self.maintainer
            .as_mut()
            .expect("the maintainer is in place")
    }

    /// Uploads what capture produced (told by `kick`) until `stop`.
    async fn ship_loop(&mut self, mut stop: watch::Receiver<bool>, kick: &tokio::sync::Notify) {
        let mut last_ship: Option<Instant> = None;
        let mut ship = Retry::default();
        loop {
            if *stop.borrow() {
                break;
            }
            let retry_at = ship.at;
            // While uploads back off, new files wait for the retry (a failing server
            // is not hammered); they are picked up then.
            let listen = ship.ready();
            tokio::select! {
                _ = stop.changed() => break,
                _ = kick.notified(), if listen => {}
                _ = sleep_until_some(retry_at) => {}
            }
            if *stop.borrow() {
                break;
            }
            if self.reloaded.swap(false, Ordering::Relaxed) {
                self.reconciled.store(false, Ordering::Relaxed);
            }
            if ship.ready() {
                // Ship now if the replica has been idle for a sync interval, else at
                // that boundary (the pending files are picked up then).
                if let Some(t) = last_ship {
                    let next = t + paced(self.sync_interval);
                    if Instant::now() < next {
                        tokio::select! {
                            _ = stop.changed() => break,
                            _ = tokio::time::sleep(next - Instant::now()) => {}
                        }
                    }
                }
                let started = Instant::now();
                // A stop is seen mid-upload too (a stalled server would hold it for the
                // client's timeouts); the final sync, bounded by its timeout, follows.
                let shipped = tokio::select! {
                    _ = stop.changed() => break,
                    r = self.ship() => r,
                };
                match shipped {
                    Ok(n) => {
                        if n > 0 {
                            last_ship = Some(started);
                        }
                        self.succeeded(Stage::Ship, &mut ship);
                    }
                    Err(e) => self.failed(Stage::Ship, &e, &mut ship),
                }
            }
            self.report_requests();
        }
    }

    /// Final capture and shipping, retried until the deadline.
    async fn shutdown(mut self, settings: &ReplicateSettings) -> Result<()> {
        let deadline = Instant::now() + settings.shutdown_sync_timeout;
        loop {
            let attempt = async {
                self.capture().await?;
                self.ship().await?;
                Ok::<_, Error>(())
            };
            // An attempt against a stalled server would never return: the deadline
            // bounds each attempt too, not only the retries between them.
            let remaining = deadline.saturating_duration_since(Instant::now());
            let outcome = tokio::time::timeout(remaining, attempt)
                .await
                .unwrap_or(Err(Error::ShutdownSyncTimedOut {
                    timeout: settings.shutdown_sync_timeout,
                }));
            match outcome {
                Ok(()) => break,
                Err(e) if Instant::now() + settings.shutdown_sync_interval < deadline => {
                    (self.events)(&Event::Error {
                        db: self.path.clone(),
                        stage: Stage::Ship,
                        message: format!("final sync: {e}"),
                        retry_in: settings.shutdown_sync_interval,
                    });
                    tokio::time::sleep(settings.shutdown_sync_interval).await;
                }
                Err(e) => {
                    (self.events)(&Event::Error {
                        db: self.path.clone(),
                        stage: Stage::Ship,
                        message: format!("final sync gave up: {e}"),
                        retry_in: Duration::ZERO,
                    });
                    break;
                }
            }
        }
        if let Some(rec) = self.record.clone() {
            self.note_shipped(Txid(rec.txid), rec.size, true);
        }
        self.report_requests();
        let pending = self.pending().await.unwrap_or(0);
        (self.events)(&Event::Stopped {
            db: self.path.clone(),
            txid: self.shipped,
            pending,
        });
        Ok(())
    }
}

/// What is wrong with a destination as `tideline status` sees it, without a running
/// replicator: the replica (described as `replica`, listed as `levels`) shows nothing
/// though the shipped record in `meta_dir` says this database shipped there. The same
/// rule the replicator applies before uploading.
pub fn destination_problem(
    meta_dir: &Path,
    replica: &str,
    levels: &[Vec<crate::replica::FileInfo>],
) -> Option<Error> {
    let record = ShippedRecord::load(meta_dir, replica)?;
    match reconcile::decide(Some(&record), levels, &[]) {
        Decision::Refuse { shipped } => Some(missing(meta_dir, replica, shipped)),
        _ => None,
    }
}

fn missing(meta_dir: &Path, replica: &str, shipped: Txid) -> Error {
    Error::DestinationMissing {
        replica: replica.to_owned(),
        shipped,
        record: reconcile::record_path(meta_dir),
    }
}

/// A running replicator's requests to its replica since it started, as `tideline
/// status` shows them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RequestReport {
    /// The replica (no credentials).
    pub replica: String,
    /// When the replicator started (RFC 3339).
    pub since: String,
    /// Requests and bytes.
    pub counts: RequestCounts,
}

fn request_report_path(meta_dir: &Path) -> PathBuf {
    meta_dir.join("tideline-requests.json")
}

fn write_request_report(meta_dir: &Path, report: &RequestReport) -> std::io::Result<()> {
    let path = request_report_path(meta_dir);
    let bytes = serde_json::to_vec_pretty(report).map_err(std::io::Error::other)?;
    crate::durable::write_atomic(&path, &bytes)
}

/// The request report a replicator left in `meta_dir` (the newest one, also after it
/// stopped), if any.
pub fn read_request_report(meta_dir: &Path) -> Option<RequestReport> {
    let data = std::fs::read(request_report_path(meta_dir)).ok()?;
    serde_json::from_slice(&data).ok()
}

// ---- One database under outside control (the desktop app's service) ----

/// A wake-up channel of one database's task: sending `()` makes it capture and ship
/// now (subject to the sync interval), as a change of the WAL would.
pub type Wake = (mpsc::Sender<()>, mpsc::Receiver<()>);

/// A new [`Wake`] channel (a full channel already holds a wake-up, so sends coalesce).
pub fn wake_channel() -> Wake {
    mpsc::channel(1)
}

/// What one database's task has done so far, readable while it runs.
#[derive(Debug, Default)]
pub struct TaskStats {
    syncs: AtomicU64,
}

impl TaskStats {
    /// Capture attempts (Litestream's sync count): one per wake-up by a change, a
    /// timer or the caller. An idle database adds only the timers' ticks.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }
}

/// How the caller steers one database's task.
#[derive(Debug)]
pub struct TaskControl {
    /// The task stops (shipping what is pending first) when this turns true.
    pub stop: watch::Receiver<bool>,
    /// Sending on it asks for a sync now.
    pub wake: Wake,
    /// Counts the task keeps for its caller.
    pub stats: Arc<TaskStats>,
}

/// Replicates one database until `control.stop` turns true, then ships what is pending
/// as [`replicate_to`] does at shutdown. A database that does not exist yet is waited
/// for. `compactions` bounds compactions and snapshots across every database the
/// caller runs. Used by [`crate::service`].
pub async fn replicate_one(
    cfg: DbConfig,
    client: Arc<dyn ReplicaClient>,
    settings: ReplicateSettings,
    compactions: Arc<tokio::sync::Semaphore>,
    control: TaskControl,
    events: EventSink,
) -> Result<()> {
    let TaskControl {
        mut stop,
        wake,
        stats,
    } = control;
    let sync_interval = cfg
        .replica
        .as_ref()
        .map_or(Duration::from_secs(1), |r| r.sync_interval);
    let levels = settings.levels.clone();
    match DbTask::start(
        cfg,
        sync_interval,
        client,
        events,
        Some(&mut stop),
        (levels, compactions),
    )
    .await?
    {
        Some(task) => task.run(settings, stop, Some(wake), stats).await,
        None => Ok(()),
    }
}

/// Opens the database, waiting (as Litestream does) while it does not exist yet, e.g.
/// for an application started with `-exec` that creates it. `None` on shutdown.
async fn open_when_present(
    path: &Path,
    opts: DbOptions,
    poll: Duration,
    events: &EventSink,
    stop: &mut watch::Receiver<bool>,
) -> Result<Option<Database>> {
    let mut told = false;
    loop {
        let (p, o) = (path.to_owned(), opts.clone());
        let opened = tokio::task::spawn_blocking(move || Database::open(&p, o))
            .await
            .expect("open task panicked");
        match opened {
            Ok(db) => return Ok(Some(db)),
            Err(Error::DatabaseMissing(_)) => {
                if !told {
                    told = true;
                    (events)(&Event::Error {
                        db: path.to_owned(),
                        stage: Stage::Open,
                        message: "database does not exist yet; waiting for it to be created".into(),
                        retry_in: poll,
                    });
                }
                tokio::select! {
                    _ = stop.changed() => return Ok(None),
                    _ = tokio::time::sleep(poll.max(Duration::from_millis(100))) => {}
                }
                if *stop.borrow() {
                    return Ok(None);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Watches the database's directory and sends a wake-up when the `-wal` or the database
/// file may hold news. Armed once for the task's life: re-arming costs two syscalls
/// and leaves a window in which a change goes unseen.
struct WalWatcher {
    _watcher: notify::RecommendedWatcher,
}

impl WalWatcher {
    /// `None` if the platform gives no events (polling takes over then).
    fn new(db: &Path, wake: mpsc::Sender<()>) -> Option<WalWatcher> {
        use notify::Watcher;
        let dir = db
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned();
        let watched = WatchedPaths {
            wal: crate::db::wal_path(db),
            db: db.to_owned(),
            dir: dir.clone(),
        };
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            // An error from the watcher may mean lost events: look, to be safe.
            if res.as_ref().map_or(true, |ev| watched.wakes(ev)) {
                // A full channel already holds a wake-up: coalesce.
                let _ = wake.try_send(());
            }
        })
        .ok()?;
        watcher
            .watch(&dir, notify::RecursiveMode::NonRecursive)
            .ok()?;
        Some(WalWatcher { _watcher: watcher })
    }
}

/// The paths whose events can wake a database's task.
struct WatchedPaths {
    wal: PathBuf,
    db: PathBuf,
    dir: PathBuf,
}

impl WatchedPaths {
    /// True for an event that can mean new frames or a replaced file: data written,
    /// a file created, removed or renamed, a writer's close. Never an open, a read or
    /// a close after reading: the replicator's own look at the `-wal` causes those,
    /// and waking on them made an idle replicator poll itself at a kilohertz. Nor a
    /// metadata change (permissions, times), which carries no frames.
    fn wakes(&self, ev: &notify::Event) -> bool {
        use notify::EventKind;
        use notify::event::{AccessKind, AccessMode, ModifyKind};
        // The kernel's queue overflowed: events were lost, so any file may have changed.
        if ev.need_rescan() {
            return true;
        }
        let news = match ev.kind {
            EventKind::Create(_) | EventKind::Remove(_) => true,
            EventKind::Modify(ModifyKind::Metadata(_)) => false,
            EventKind::Modify(_) => true,
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
            EventKind::Access(_) => false,
            EventKind::Any | EventKind::Other => true,
        };
        news && ev
            .paths
            .iter()
            .any(|p| p == &self.wal || p == &self.db || p == &self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::EventKind;
    use notify::event::{
        AccessKind, AccessMode, CreateKind, DataChange, Flag, MetadataKind, ModifyKind, RemoveKind,
        RenameMode,
    };

    fn watched() -> WatchedPaths {
        WatchedPaths {
            wal: PathBuf::from("/d/app.db-wal"),
            db: PathBuf::from("/d/app.db"),
            dir: PathBuf::from("/d"),
        }
    }

    fn on(kind: EventKind, path: &str) -> notify::Event {
        notify::Event::new(kind).add_path(PathBuf::from(path))
    }

    #[test]
    fn opens_reads_and_metadata_never_wake() {
        let w = watched();
        for kind in [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Read),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)),
        ] {
            assert!(!w.wakes(&on(kind, "/d/app.db-wal")), "{kind:?} on the WAL");
            assert!(!w.wakes(&on(kind, "/d/app.db")), "{kind:?} on the database");
        }
    }

    #[test]
    fn writes_creates_removes_and_renames_of_the_wal_or_database_wake() {
        let w = watched();
        for kind in [
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Modify(ModifyKind::Any),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Modify(ModifyKind::Name(RenameMode::From)),
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Create(CreateKind::File),
            EventKind::Remove(RemoveKind::File),
        ] {
            assert!(w.wakes(&on(kind, "/d/app.db-wal")), "{kind:?} on the WAL");
            assert!(w.wakes(&on(kind, "/d/app.db")), "{kind:?} on the database");
            assert!(!w.wakes(&on(kind, "/d/other.db-wal")), "{kind:?} elsewhere");
            assert!(!w.wakes(&on(kind, "/d/app.db-shm")), "{kind:?} on the -shm");
        }
        assert!(w.wakes(&on(EventKind::Remove(RemoveKind::Folder), "/d")));
    }

    #[test]
    fn lost_events_wake() {
        let ev = notify::Event::new(EventKind::Other).set_flag(Flag::Rescan);
        assert!(watched().wakes(&ev));
    }
}
