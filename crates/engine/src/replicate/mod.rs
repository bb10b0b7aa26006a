//! Continuous replication: one task per database that captures changes as they happen
//! and ships them to the replica; the set of them (the `fleet` module) grows and
//! shrinks with watched directories (`dir:` with `watch: true`).
//!
//! * **Fleets cost little when idle.** One file-system watcher for the process (one
//!   watch per folder), fallback polls that lengthen with the number of databases
//!   (10 s up to 30 s) and are spread over time, databases opened 16 at a time.
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

mod capture;
pub mod control;
pub mod directory;
mod fleet;
mod heartbeat;
mod maintain;
mod reconcile;
mod report;
mod retry;
mod slot;
#[cfg(unix)]
pub mod socket;
pub use slot::IdleClose;
mod task;
mod watcher;

pub use crate::events::{Event, EventSink, Stage};
pub use report::RequestReport;
pub(crate) use report::{destination_problem, read_request_report};
use task::DbTask;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::capture::{Database, DbOptions};
use crate::clock::Clock;
use crate::config::{Config, DbConfig, DirConfig};
use crate::error::{Error, Result};
use crate::levels::scheduler::{DEFAULT_MAX_CONCURRENT_COMPACTIONS, LevelsConfig};
use crate::storage::{ReplicaClient, open_client};

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
    /// The time replication goes by (the system clock outside tests).
    pub clock: Clock,
    /// `heartbeat-url`: pinged while every database replicates.
    pub heartbeat: Option<crate::config::HeartbeatConfig>,
    /// How often the heartbeat's conditions are looked at (15 s; tests go faster).
    pub heartbeat_check_every: Duration,
    /// When a watched directory's database is put away while idle (its connections
    /// closed; see [`IdleClose`]); `None` keeps every database open.
    pub idle_close: Option<IdleClose>,
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
            clock: Clock::system(),
            heartbeat: config.heartbeat.clone(),
            heartbeat_check_every: heartbeat::HEARTBEAT_CHECK_EVERY,
            idle_close: Some(IdleClose::FLEET),
        }
    }
}

impl Default for ReplicateSettings {
    fn default() -> Self {
        ReplicateSettings::from_config(&Config::default())
    }
}

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
    replicate_dirs(dbs, Vec::new(), settings, shutdown, events).await
}

/// Like [`replicate`], with the `dir:` entries the databases came from: those with
/// `watch:` are followed while running (each new SQLite database
/// the entry matches is replicated with the entry's settings, each removed one
/// stopped after shipping what was captured), and every directory's databases are put
/// away while idle ([`IdleClose`]). `dbs` holds every database to start with, those
/// found in the folders already included ([`directory::databases_of`]).
pub async fn replicate_dirs(
    dbs: Vec<DbConfig>,
    dirs: Vec<DirConfig>,
    settings: ReplicateSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
    events: EventSink,
) -> Result<()> {
    replicate_controlled(dbs, dirs, settings, shutdown, events, None).await
}

/// Like [`replicate_dirs`], taking requests from `control` too (see
/// [`control::control`]): databases registered, stopped, started and unregistered
/// while it runs, which then lasts until `shutdown` even with no database left.
pub async fn replicate_controlled(
    dbs: Vec<DbConfig>,
    dirs: Vec<DirConfig>,
    settings: ReplicateSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
    events: EventSink,
    control: Option<control::ControlInbox>,
) -> Result<()> {
    let mut with_clients = Vec::with_capacity(dbs.len());
    for cfg in dbs {
        let replica_cfg = cfg.require_replica()?;
        let client = open_client(replica_cfg)?;
        with_clients.push((cfg, client));
    }
    let stop = stop_on(shutdown);
    fleet::Fleet::new(settings, events)
        .run(with_clients, dirs, stop, control)
        .await
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
    let stop = stop_on(shutdown);
    fleet::Fleet::new(settings, events)
        .run(dbs, Vec::new(), stop, None)
        .await
}

/// A stop signal that turns true when `shutdown` completes.
fn stop_on(shutdown: impl Future<Output = ()> + Send + 'static) -> watch::Receiver<bool> {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    stop_rx
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
    /// When the upload side last succeeded (with or without files to upload).
    shipped_ok: std::sync::Mutex<Option<tokio::time::Instant>>,
    /// Whether the last capture failed.
    capture_failing: std::sync::atomic::AtomicBool,
    /// Whether a capture succeeded since the start (before it, an upload that found
    /// nothing to do says nothing about the database being backed up).
    captured: std::sync::atomic::AtomicBool,
    /// Whether the last upload attempt failed.
    ship_failing: std::sync::atomic::AtomicBool,
}

impl TaskStats {
    pub(super) fn note_ship_failed(&self) {
        self.ship_failing.store(true, Ordering::Relaxed);
    }

    pub(super) fn note_shipped(&self, at: tokio::time::Instant) {
        self.ship_failing.store(false, Ordering::Relaxed);
        *self
            .shipped_ok
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(at);
    }

    pub(super) fn note_capture(&self, ok: bool) {
        self.capture_failing.store(!ok, Ordering::Relaxed);
        if ok {
            self.captured.store(true, Ordering::Relaxed);
        }
    }

    /// True if capture has run, the upload side succeeded at or after `since` (ever,
    /// for `None`), and neither failed since: what the heartbeat asks of every
    /// database.
    pub(super) fn healthy_since(&self, since: Option<tokio::time::Instant>) -> bool {
        let shipped = *self
            .shipped_ok
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.captured.load(Ordering::Relaxed)
            && !self.capture_failing.load(Ordering::Relaxed)
            && !self.ship_failing.load(Ordering::Relaxed)
            && shipped.is_some_and(|t| since.is_none_or(|s| t >= s))
    }

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
        (levels, compactions, settings.clock.clone()),
    )
    .await?
    {
        Some(task) => task.run(settings, stop, Some(wake), stats).await,
        None => Ok(()),
    }
}

/// Opens the database, waiting (as Litestream does) while it does not exist yet, e.g.
/// for an application started with `-exec` that creates it. `None` on shutdown.
pub(super) async fn open_when_present(
    path: &Path,
    opts: DbOptions,
    poll: Duration,
    events: &EventSink,
    stop: &mut watch::Receiver<bool>,
) -> Result<Option<Database>> {
    let mut told = false;
    loop {
        let (p, o) = (path.to_owned(), opts.clone());
        let opened = crate::blocking::blocking("open", move || Database::open(&p, o)).await;
        match opened {
            Ok(db) => return Ok(Some(db)),
            Err(Error::DatabaseMissing(_)) => {
                if !told {
                    told = true;
                    (events)(&Event::Error {
                        db: path.to_owned(),
                        stage: Stage::Open,
                        code: crate::ErrorCode::DatabaseMissing,
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
