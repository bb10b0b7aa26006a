//! A long-running replication service under outside control, for the desktop app:
//! databases are added, removed, paused, resumed and synced at run time, and each has a
//! status snapshot (state, last sync, lag, size, error in words) that is pushed to a
//! listener on every engine event.
//!
//! Each database runs [`crate::replicate::replicate_one`], the same task
//! `tideline replicate` runs, with a stop signal and a wake-up channel. Pausing stops
//! the task (which ships what is pending first, like any shutdown); resuming starts it
//! again from the position kept in the meta directory.
//!
//! The module also holds what the app needs around restores: [`inspect_database`]
//! (is it SQLite, is it in WAL mode), [`restore_points`] (the timeline of restorable
//! states), [`restored_copy_path`], [`restore_copy`], [`Service::restore_in_place`]
//! and its undo, [`Service::undo_restore`], and [`ExclusiveHold`], the portable "is
//! another program using this database" check they rely on.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tideline_engine::service::ServiceError> {
//! use std::sync::Arc;
//! use tideline_engine::config::{DbConfig, ReplicaConfig};
//! use tideline_engine::replicate::ReplicateSettings;
//! use tideline_engine::service::Service;
//!
//! let service = Service::new(
//!     tokio::runtime::Handle::current(),
//!     ReplicateSettings::default(),
//!     Arc::new(|status, _event| println!("{}: {:?}", status.path.display(), status.state)),
//! );
//! let mut cfg = DbConfig::new("/data/app.db");
//! cfg.replica = Some(ReplicaConfig::from_url("/backups/app").unwrap());
//! let client = tideline_engine::replica::open_client(cfg.replica.as_ref().unwrap())?;
//! service.add(cfg, client, false).await?;
//! service.sync_now(std::path::Path::new("/data/app.db"))?;
//! service.shutdown().await;
//! # Ok(()) }
//! ```

pub mod status;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use tideline_ltx::Txid;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::DbConfig;
use crate::error::{Error, ErrorCode, ErrorReport};
use crate::replicate::{
    Event, EventSink, ReplicateSettings, Stage, TaskControl, TaskStats, replicate_one, wake_channel,
};
use crate::restore::{
    IntegrityCheck, Overwrite, RestoreOptions, Restored, Target, check_output, list_levels, plan,
    restore_plan_to, stage_file, stage_plan,
};
use crate::storage::{FileInfo, ReplicaClient, SNAPSHOT_LEVEL};

/// Changes captured but not shipped for longer than this make a database "lagging".
pub const LAGGING_AFTER: Duration = Duration::from_secs(15);

/// How long stopping one database's task may take (it ships what is pending first);
/// past it the task is aborted.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// What can go wrong controlling the service.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The database is already in the service.
    #[error("{} is already being backed up", .0.display())]
    AlreadyAdded(PathBuf),
    /// The database is not in the service.
    #[error("{} is not in the list of backed-up databases", .0.display())]
    NotFound(PathBuf),
    /// The database is paused, so it cannot sync now.
    #[error("{} is paused; resume it first", .0.display())]
    Paused(PathBuf),
    /// Another process (or connection) has the database open, so it cannot be
    /// replaced.
    #[error("{} is open in another program{}; close it, then restore in place again", path.display(), pid_list(.pids))]
    InUse {
        /// The database.
        path: PathBuf,
        /// The other processes, where the OS can name them (Linux); may be empty.
        pids: Vec<u32>,
    },
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] Error),
}

impl ServiceError {
    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            ServiceError::AlreadyAdded(_) => ErrorCode::AlreadyAdded,
            ServiceError::NotFound(_) => ErrorCode::NotFound,
            ServiceError::Paused(_) => ErrorCode::Paused,
            ServiceError::InUse { .. } => ErrorCode::InUse,
            ServiceError::Engine(e) => e.code(),
        }
    }
}

impl From<ServiceError> for ErrorReport {
    fn from(e: ServiceError) -> ErrorReport {
        ErrorReport::new(e.code(), e.to_string())
    }
}

/// A database's replication state, as the app shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncState {
    /// Opening the database and reconciling with the replica.
    Starting,
    /// Everything committed is in the replica.
    InSync,
    /// Changes are on their way to the replica.
    Syncing,
    /// Changes have waited more than [`LAGGING_AFTER`] for the replica.
    Lagging,
    /// The last attempt failed; it is retried.
    Error,
    /// Replication is paused by the user.
    Paused,
}

/// A snapshot of one database's replication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbStatus {
    /// The database.
    pub path: PathBuf,
    /// The replica, without credentials.
    pub replica: String,
    /// The state.
    pub state: SyncState,
    /// When changes last reached the replica (or replication found it up to date).
    pub last_sync: Option<SystemTime>,
    /// Commit-to-replica time of the last shipment.
    pub lag: Option<Duration>,
    /// Bytes of the database file plus its WAL.
    pub size: u64,
    /// The newest TXID captured locally.
    pub local_txid: Option<Txid>,
    /// The newest TXID in the replica.
    pub replica_txid: Option<Txid>,
    /// The last error (cleared by the next success).
    pub error: Option<ErrorReport>,
    /// Capture attempts since the task last started (see [`TaskStats::syncs`]).
    pub syncs: u64,
}

/// Receives a database's status after every change, with the engine event that caused
/// it (`None` for the service's own changes: added, paused, resumed, task ended).
pub type StatusSink = Arc<dyn Fn(&DbStatus, Option<&Event>) + Send + Sync>;

/// The controllable replication service. Cheap to clone; clones share the databases.
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("databases", &self.statuses().len())
            .finish()
    }
}

struct Inner {
    runtime: Handle,
    settings: ReplicateSettings,
    /// One bound on compactions and snapshots for every database.
    compactions: Arc<tokio::sync::Semaphore>,
    listener: StatusSink,
    dbs: Mutex<BTreeMap<PathBuf, Entry>>,
}

struct Entry {
    cfg: DbConfig,
    client: Arc<dyn ReplicaClient>,
    track: Track,
    running: Option<Running>,
}

struct Running {
    stop: watch::Sender<bool>,
    wake: mpsc::Sender<()>,
    stats: Arc<TaskStats>,
    task: JoinHandle<()>,
}

/// What the events told so far.
#[derive(Debug, Default)]
struct Track {
    started: bool,
    paused: bool,
    local: Option<Txid>,
    replica: Option<Txid>,
    last_sync: Option<SystemTime>,
    lag: Option<Duration>,
    /// The failing stages, each with its last error (cleared when it recovers).
    errors: BTreeMap<Stage, ErrorReport>,
    unshipped_since: Option<SystemTime>,
}

impl Track {
    fn state(&self, now: SystemTime) -> SyncState {
        if self.paused {
            SyncState::Paused
        } else if !self.errors.is_empty() {
            SyncState::Error
        } else if !self.started {
            SyncState::Starting
        } else if self.local > self.replica {
            let waited = self
                .unshipped_since
                .and_then(|t| now.duration_since(t).ok())
                .unwrap_or_default();
            if waited > LAGGING_AFTER {
                SyncState::Lagging
            } else {
                SyncState::Syncing
            }
        } else {
            SyncState::InSync
        }
    }

    fn apply(&mut self, event: &Event, now: SystemTime) {
        match event {
            Event::Started { txid, .. } => {
                self.started = true;
                self.errors.clear();
                self.local = self.local.max(*txid);
                if self.local <= self.replica {
                    self.last_sync.get_or_insert(now);
                }
            }
            Event::Captured { txid, .. } => {
                self.errors.remove(&Stage::Capture);
                self.local = self.local.max(Some(*txid));
                if self.local > self.replica {
                    self.unshipped_since.get_or_insert(now);
                }
            }
            Event::Shipped { txid, lag, .. } => {
                self.errors.remove(&Stage::Ship);
                self.replica = self.replica.max(Some(*txid));
                self.last_sync = Some(now);
                self.lag = Some(*lag);
                if self.local <= self.replica {
                    self.unshipped_since = None;
                }
            }
            Event::Error {
                stage,
                code,
                message,
                ..
            } => {
                self.errors
                    .insert(*stage, ErrorReport::new(*code, message.clone()));
            }
            Event::Recovered { stage, .. } => {
                self.errors.remove(stage);
            }
            // Maintenance of the replica does not change how far it is behind.
            Event::Stopped { .. }
            | Event::NewGeneration { .. }
            | Event::Checkpointed { .. }
            | Event::Compacted { .. }
            | Event::Snapshotted { .. }
            | Event::Deleted { .. } => {}
        }
    }
}

impl Entry {
    fn status(&self, now: SystemTime) -> DbStatus {
        let size = [
            self.cfg.path.clone(),
            crate::capture::wal_path(&self.cfg.path),
        ]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
        DbStatus {
            path: self.cfg.path.clone(),
            replica: self.client.describe(),
            state: self.track.state(now),
            last_sync: self.track.last_sync,
            lag: self.track.lag,
            size,
            local_txid: self.track.local,
            replica_txid: self.track.replica,
            error: self.track.errors.values().next().cloned(),
            syncs: self.running.as_ref().map_or(0, |r| r.stats.syncs()),
        }
    }
}

impl Service {
    /// A service with no databases. Tasks run on `runtime`; `listener` hears every
    /// status change.
    pub fn new(runtime: Handle, settings: ReplicateSettings, listener: StatusSink) -> Service {
        Service {
            inner: Arc::new(Inner {
                runtime,
                compactions: Arc::new(tokio::sync::Semaphore::new(
                    settings.max_concurrent_compactions.max(1),
                )),
                settings,
                listener,
                dbs: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    fn dbs(&self) -> std::sync::MutexGuard<'_, BTreeMap<PathBuf, Entry>> {
        self.inner
            .dbs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a database replicated to `client` and starts it (unless `paused`). Checks
    /// first that the file is a SQLite database and that the replica can be listed,
    /// so a wrong path or an unreachable destination is refused here, not retried
    /// forever.
    pub async fn add(
        &self,
        cfg: DbConfig,
        client: Arc<dyn ReplicaClient>,
        paused: bool,
    ) -> Result<DbStatus, ServiceError> {
        if self.dbs().contains_key(&cfg.path) {
            return Err(ServiceError::AlreadyAdded(cfg.path));
        }
        let path = cfg.path.clone();
        let p = path.clone();
        tokio::task::spawn_blocking(move || inspect_database(&p))
            .await
            .expect("inspect task panicked")?;
        let replica = crate::storage::replica_newest_txid(client.as_ref()).await?;
        self.insert(cfg, client, paused, replica)
    }

    /// Adds a database that was already being backed up (the app's saved list at
    /// start) and starts it unless `paused`, without checking the file or the
    /// destination first: a database not there yet is waited for, a destination that
    /// is down or missing is retried, and either shows as an error meanwhile, instead
    /// of the database dropping out of the list.
    pub fn add_saved(
        &self,
        cfg: DbConfig,
        client: Arc<dyn ReplicaClient>,
        paused: bool,
    ) -> Result<DbStatus, ServiceError> {
        if self.dbs().contains_key(&cfg.path) {
            return Err(ServiceError::AlreadyAdded(cfg.path));
        }
        self.insert(cfg, client, paused, None)
    }

    fn insert(
        &self,
        cfg: DbConfig,
        client: Arc<dyn ReplicaClient>,
        paused: bool,
        replica: Option<Txid>,
    ) -> Result<DbStatus, ServiceError> {
        let path = cfg.path.clone();
        {
            let mut dbs = self.dbs();
            if dbs.contains_key(&path) {
                return Err(ServiceError::AlreadyAdded(path));
            }
            let track = Track {
                paused,
                replica,
                ..Track::default()
            };
            dbs.insert(
                path.clone(),
                Entry {
                    cfg,
                    client,
                    track,
                    running: None,
                },
            );
        }
        if !paused {
            self.start(&path)?;
        }
        self.notify(&path, None).ok_or(ServiceError::NotFound(path))
    }

    /// Stops replicating a database (shipping what is pending) and forgets it. The
    /// replica and the meta directory are kept.
    pub async fn remove(&self, path: &Path) -> Result<(), ServiceError> {
        self.stop(path).await?;
        self.dbs()
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| ServiceError::NotFound(path.to_owned()))
    }

    /// Pauses a database: its task ships what is pending and stops.
    pub async fn pause(&self, path: &Path) -> Result<DbStatus, ServiceError> {
        self.stop(path).await?;
        self.with_entry(path, |e| e.track.paused = true)?;
        self.notify(path, None)
            .ok_or_else(|| ServiceError::NotFound(path.to_owned()))
    }

    /// Resumes a paused database (a running one is left alone).
    pub fn resume(&self, path: &Path) -> Result<DbStatus, ServiceError> {
        let was_paused = self.with_entry(path, |e| {
            let was = e.running.is_none();
            e.track.paused = false;
            e.track.errors.clear();
            was
        })?;
        if was_paused {
            self.start(path)?;
        }
        self.notify(path, None)
            .ok_or_else(|| ServiceError::NotFound(path.to_owned()))
    }

    /// Asks a database to capture and ship now (within its sync interval).
    pub fn sync_now(&self, path: &Path) -> Result<(), ServiceError> {
        let dbs = self.dbs();
        let entry = dbs
            .get(path)
            .ok_or_else(|| ServiceError::NotFound(path.to_owned()))?;
        let running = entry
            .running
            .as_ref()
            .ok_or_else(|| ServiceError::Paused(path.to_owned()))?;
        // A full channel already holds a wake-up.
        let _ = running.wake.try_send(());
        Ok(())
    }

    /// The paths of every database, in order.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.dbs().keys().cloned().collect()
    }

    /// One database's status.
    pub fn status(&self, path: &Path) -> Result<DbStatus, ServiceError> {
        self.dbs()
            .get(path)
            .map(|e| e.status(SystemTime::now()))
            .ok_or_else(|| ServiceError::NotFound(path.to_owned()))
    }

    /// Every database's status, ordered by path.
    pub fn statuses(&self) -> Vec<DbStatus> {
        let now = SystemTime::now();
        self.dbs().values().map(|e| e.status(now)).collect()
    }

    /// A database's configuration.
    pub fn config(&self, path: &Path) -> Result<DbConfig, ServiceError> {
        self.with_entry(path, |e| e.cfg.clone())
    }

    /// A database's replica client (for restore points and restores).
    pub fn client(&self, path: &Path) -> Result<Arc<dyn ReplicaClient>, ServiceError> {
        self.with_entry(path, |e| Arc::clone(&e.client))
    }

    /// Stops every database, shipping what is pending (within the shutdown timeout of
    /// the settings). The service can be used again afterwards.
    pub async fn shutdown(&self) {
        let running: Vec<Running> = self
            .dbs()
            .values_mut()
            .filter_map(|e| e.running.take())
            .collect();
        for r in &running {
            let _ = r.stop.send(true);
        }
        for r in running {
            join(r).await;
        }
    }

    /// Restores `target` over the database itself. Replication is stopped (and
    /// joined) first; then the database is held with SQLite's exclusive lock, which
    /// refuses while any other program has it open ([`ExclusiveHold`]) and keeps
    /// others out until the new file is ready; a safety copy is written next to it
    /// (`<name>-before-restore-<time>.db`); the restore is verified with `PRAGMA
    /// integrity_check` on a temporary file; the hold is released and the file put in
    /// place ([`Staged::install`](crate::restore::Staged::install): stale sidecars
    /// first, rename, directory fsync). Replication resumes (shipping the restored
    /// state as the newest) whether or not the restore succeeded. The safety copy is
    /// the restore point to undo with ([`Service::undo_restore`]).
    pub async fn restore_in_place(
        &self,
        path: &Path,
        target: Target,
        now: SystemTime,
    ) -> Result<InPlaceRestore, ServiceError> {
        self.replace(path, Source::Replica(target), now).await
    }

    /// Undoes an in-place restore: puts the safety copy `safety_copy` back in place
    /// of the database, by the same steps as [`Service::restore_in_place`] (so the
    /// current state gets a safety copy of its own, and the copy must pass the
    /// integrity check). The safety copy itself is kept.
    pub async fn undo_restore(
        &self,
        path: &Path,
        safety_copy: &Path,
        now: SystemTime,
    ) -> Result<InPlaceRestore, ServiceError> {
        self.replace(path, Source::File(safety_copy.to_owned()), now)
            .await
    }

    async fn replace(
        &self,
        path: &Path,
        source: Source,
        now: SystemTime,
    ) -> Result<InPlaceRestore, ServiceError> {
        let client = self.client(path)?;
        // Named processes refuse before replication is interrupted (Linux only; the
        // lock below is the check that holds everywhere).
        let others = open_by_other_processes(path);
        if !others.is_empty() {
            return Err(in_use(path, others));
        }
        let was_running = self.with_entry(path, |e| e.running.is_some())?;
        self.stop(path).await?;
        let result = replace_stopped(path, client, source, now).await;
        if was_running {
            self.resume(path)?;
        }
        result
    }

    fn with_entry<T>(
        &self,
        path: &Path,
        f: impl FnOnce(&mut Entry) -> T,
    ) -> Result<T, ServiceError> {
        self.dbs()
            .get_mut(path)
            .map(f)
            .ok_or_else(|| ServiceError::NotFound(path.to_owned()))
    }

    /// Computes the status and tells the listener (outside the lock).
    fn notify(&self, path: &Path, event: Option<&Event>) -> Option<DbStatus> {
        let status = self.dbs().get(path).map(|e| e.status(SystemTime::now()))?;
        (self.inner.listener)(&status, event);
        Some(status)
    }

    fn start(&self, path: &Path) -> Result<(), ServiceError> {
        let weak = Arc::downgrade(&self.inner);
        let mut dbs = self.dbs();
        let entry = dbs
            .get_mut(path)
            .ok_or_else(|| ServiceError::NotFound(path.to_owned()))?;
        if entry.running.is_some() {
            return Ok(());
        }
        let (stop, stop_rx) = watch::channel(false);
        let (wake, wake_rx) = wake_channel();
        let stats = Arc::new(TaskStats::default());
        let key = path.to_owned();
        let sink_weak = weak.clone();
        let sink_key = key.clone();
        let events: EventSink = Arc::new(move |ev: &Event| on_event(&sink_weak, &sink_key, ev));
        let run = replicate_one(
            entry.cfg.clone(),
            Arc::clone(&entry.client),
            self.inner.settings.clone(),
            Arc::clone(&self.inner.compactions),
            TaskControl {
                stop: stop_rx,
                wake: (wake.clone(), wake_rx),
                stats: Arc::clone(&stats),
            },
            events,
        );
        let task = self.inner.runtime.spawn(async move {
            let result = run.await;
            if let Some(inner) = weak.upgrade() {
                let service = Service { inner };
                let _ = service.with_entry(&key, |e| {
                    if let Err(err) = &result {
                        e.track.errors.insert(Stage::Open, ErrorReport::from(err));
                    }
                    e.track.started = false;
                });
                if result.is_err() {
                    service.notify(&key, None);
                }
            }
        });
        entry.running = Some(Running {
            stop,
            wake,
            stats,
            task,
        });
        entry.track.started = false;
        Ok(())
    }

    /// Stops the database's task, if running, and waits for it (outside the lock).
    async fn stop(&self, path: &Path) -> Result<(), ServiceError> {
        let running = self.with_entry(path, |e| e.running.take())?;
        if let Some(r) = running {
            join(r).await;
        }
        Ok(())
    }
}

/// Asks a task to stop (it ships what is pending) and waits for it; past
/// [`STOP_TIMEOUT`] it is aborted and the abort awaited, so no task outlives this
/// call still holding the database. (A blocking SQLite call it was inside finishes
/// on its own thread; [`ExclusiveHold`] then sees that connection and refuses.)
async fn join(r: Running) {
    let _ = r.stop.send(true);
    let mut task = r.task;
    if tokio::time::timeout(STOP_TIMEOUT, &mut task).await.is_err() {
        task.abort();
        let _ = task.await;
    }
}

/// What an in-place restore puts over the database.
enum Source {
    Replica(Target),
    File(PathBuf),
}

/// What an in-place restore (or its undo) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InPlaceRestore {
    /// What was restored (TXID 0 for an undo: a plain file records none).
    pub restored: Restored,
    /// The copy of the database as it was before: the restore point to undo with.
    pub safety_copy: PathBuf,
}

/// The in-place steps, with replication stopped.
async fn replace_stopped(
    path: &Path,
    client: Arc<dyn ReplicaClient>,
    source: Source,
    now: SystemTime,
) -> Result<InPlaceRestore, ServiceError> {
    let safety = free_sibling_path(path, "before-restore", now);
    let (db, copy) = (path.to_owned(), safety.clone());
    let hold = tokio::task::spawn_blocking(move || {
        let hold = ExclusiveHold::take(&db)?;
        hold.copy_to(&copy)?;
        Ok::<_, ServiceError>(hold)
    })
    .await
    .expect("safety copy task panicked")?;
    let opts = RestoreOptions::new(Overwrite::Replace, IntegrityCheck::Full);
    let staged = match source {
        Source::Replica(target) => {
            match crate::restore::plan_restore(client.as_ref(), target).await {
                Ok(files) => stage_plan(client, files, path, opts).await,
                Err(e) => Err(e),
            }
        }
        Source::File(src) => {
            let db = path.to_owned();
            tokio::task::spawn_blocking(move || stage_file(&src, &db, opts))
                .await
                .expect("restore task panicked")
        }
    };
    let db = path.to_owned();
    let installed = tokio::task::spawn_blocking(move || {
        let staged = staged?;
        // Released just before the rename: on Windows a file open elsewhere cannot be
        // replaced, and closing a WAL database's last connection deletes `<db>-wal`
        // by name, which must happen before the new database can have one. Closing
        // also checkpoints, so the old database loses no frames to the removal.
        hold.release()?;
        let others = open_by_other_processes(&db);
        if !others.is_empty() {
            return Err(in_use(&db, others));
        }
        Ok(staged.install()?)
    })
    .await
    .expect("restore task panicked");
    match installed {
        Ok(restored) => Ok(InPlaceRestore {
            restored,
            safety_copy: safety,
        }),
        Err(e) => {
            // The database was not replaced, so its copy is not needed.
            let _ = std::fs::remove_file(&safety);
            Err(e)
        }
    }
}

/// A connection holding SQLite's exclusive lock on a database: while it lives no
/// other connection, in any process, can read or write it.
///
/// Taking it is the portable "is another program using this database" check. In
/// WAL mode every SQLite connection keeps a SHARED lock on the database file from
/// its first read until it closes (that is how SQLite itself decides whether it is
/// the last connection when closing), so the EXCLUSIVE lock that `locking_mode=EXCLUSIVE`
/// takes on first access is refused while any other connection exists — through
/// the VFS's own locks: POSIX advisory locks on Linux and macOS, `LockFileEx` on
/// Windows, which a probe of our own could get subtly wrong. Busy timeout 0: a
/// refusal is immediate. A database in rollback-journal mode is seen only while
/// another connection is inside a transaction (idle ones hold no lock there), and
/// programs that open the file without SQLite hold no lock at all; on Linux
/// [`open_by_other_processes`] covers both, and names the processes.
#[derive(Debug)]
pub struct ExclusiveHold {
    conn: rusqlite::Connection,
    path: PathBuf,
}

impl ExclusiveHold {
    /// Takes the lock, or says who is in the way ([`ServiceError::InUse`]).
    pub fn take(db: &Path) -> Result<ExclusiveHold, ServiceError> {
        let sqlite = |source| Error::Sqlite {
            path: db.to_owned(),
            source,
        };
        let conn = rusqlite::Connection::open_with_flags(
            db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sqlite)?;
        conn.busy_timeout(Duration::ZERO).map_err(sqlite)?;
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
            .map_err(sqlite)?;
        match conn.execute_batch("BEGIN EXCLUSIVE; COMMIT") {
            Ok(()) => Ok(ExclusiveHold {
                conn,
                path: db.to_owned(),
            }),
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                ) =>
            {
                Err(in_use(db, open_by_other_processes(db)))
            }
            Err(e) => Err(sqlite(e).into()),
        }
    }

    /// Writes a compact copy of the database (its WAL included) to `out`.
    pub fn copy_to(&self, out: &Path) -> Result<(), Error> {
        self.conn
            .execute("VACUUM INTO ?1", [out.to_string_lossy()])
            .map_err(|source| Error::Sqlite {
                path: self.path.clone(),
                source,
            })?;
        Ok(())
    }

    /// Closes the connection, releasing the lock (and, in WAL mode, checkpointing
    /// and removing `<db>-wal`, as SQLite's last connection does).
    pub fn release(self) -> Result<(), Error> {
        let path = self.path;
        self.conn
            .close()
            .map_err(|(_, source)| Error::Sqlite { path, source })
    }
}

fn on_event(inner: &Weak<Inner>, path: &Path, event: &Event) {
    let Some(inner) = inner.upgrade() else { return };
    let service = Service { inner };
    if service
        .with_entry(path, |e| e.track.apply(event, SystemTime::now()))
        .is_ok()
    {
        service.notify(path, Some(event));
    }
}

fn in_use(path: &Path, pids: Vec<u32>) -> ServiceError {
    ServiceError::InUse {
        path: path.to_owned(),
        pids,
    }
}

/// ` (process 12, 34)`, or nothing when the processes are unknown.
fn pid_list(pids: &[u32]) -> String {
    if pids.is_empty() {
        return String::new();
    }
    let list: Vec<String> = pids.iter().map(u32::to_string).collect();
    format!(" (process {})", list.join(", "))
}

/// Checks a replica can be reached by listing it; returns its newest TXID. This is
/// the app's "Test connection".
pub async fn probe_replica(client: &dyn ReplicaClient) -> Result<Option<Txid>, Error> {
    crate::storage::replica_newest_txid(client).await
}

/// Checks that a folder destination can be written: creates it if needed, then
/// writes, syncs and deletes a small probe file in it.
pub fn check_folder_writable(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(Error::io("create backup folder", dir))?;
    let probe = dir.join(".tideline-write-test");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&probe)?;
        std::io::Write::write_all(&mut f, b"tideline")?;
        f.sync_all()
    };
    let written = write().map_err(Error::io("write a test file in", dir));
    let _ = std::fs::remove_file(&probe);
    written
}

/// What [`inspect_database`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbInfo {
    /// Bytes of the database file.
    pub size: u64,
    /// `PRAGMA journal_mode` (`wal`, `delete`, …).
    pub journal_mode: String,
}

impl DbInfo {
    /// True when the database is in WAL mode already.
    pub fn is_wal(&self) -> bool {
        self.journal_mode.eq_ignore_ascii_case("wal")
    }
}

/// Checks that `path` is a SQLite database and reads its journal mode, without
/// changing anything. Replication switches a database to WAL mode when it starts.
pub fn inspect_database(path: &Path) -> Result<DbInfo, Error> {
    // The same check replication makes, so the window never accepts a file the
    // engine then refuses (or the reverse).
    crate::capture::check_sqlite_header(path)?;
    let size = std::fs::metadata(path)
        .map_err(Error::io("stat", path))?
        .len();
    let sqlite = |source| Error::Sqlite {
        path: path.to_owned(),
        source,
    };
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite)?;
    let journal_mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(sqlite)?;
    Ok(DbInfo { size, journal_mode })
}

/// Kinds of restore point, by the level of the file that ends there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointKind {
    /// A full snapshot (level 9).
    Snapshot,
    /// The end of a compacted window (levels 1 to 8).
    Compacted,
    /// A recent change (level 0).
    Change,
}

/// One state the replica can restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestorePoint {
    /// The TXID the database is at after restoring this point.
    pub txid: Txid,
    /// When this state reached the replica.
    pub created_at: SystemTime,
    /// What kind of file ends here.
    pub kind: PointKind,
    /// Its level.
    pub level: u8,
}

/// The most restore points listed (the newest ones).
pub const MAX_RESTORE_POINTS: usize = 500;

/// Every state the replica can restore, oldest first (at most the newest
/// [`MAX_RESTORE_POINTS`]): each TXID where some file ends and a restore plan reaches
/// exactly it. The first point's time is "restorable from".
pub async fn restore_points(client: &dyn ReplicaClient) -> Result<Vec<RestorePoint>, Error> {
    let levels = list_levels(client).await?;
    Ok(points_of(&levels))
}

fn points_of(levels: &[Vec<FileInfo>]) -> Vec<RestorePoint> {
    // Each TXID where a file ends, with the earliest file that ends there.
    let mut ends: BTreeMap<Txid, &FileInfo> = BTreeMap::new();
    for f in levels.iter().flatten() {
        ends.entry(f.max_txid)
            .and_modify(|cur| {
                if (f.created_at, f.level) < (cur.created_at, cur.level) {
                    *cur = f;
                }
            })
            .or_insert(f);
    }
    let mut points: Vec<RestorePoint> = ends
        .into_iter()
        .rev()
        .filter(|(txid, _)| plan(levels, Target::Txid(*txid)).is_ok())
        .take(MAX_RESTORE_POINTS)
        .map(|(txid, f)| RestorePoint {
            txid,
            created_at: f.created_at,
            kind: match f.level {
                0 => PointKind::Change,
                SNAPSHOT_LEVEL => PointKind::Snapshot,
                _ => PointKind::Compacted,
            },
            level: f.level,
        })
        .collect();
    points.reverse();
    points
}

/// Where a restored copy goes by default: next to the database, named
/// `<stem>-restored-<UTC time>.db`, e.g. `app-restored-2026-11-24T15-02-11.db`.
pub fn restored_copy_path(db: &Path, now: SystemTime) -> PathBuf {
    sibling_path(db, "restored", now)
}

fn sibling_path(db: &Path, what: &str, now: SystemTime) -> PathBuf {
    let stem = db
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "database".into());
    let ext = db
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    db.with_file_name(format!(
        "{stem}-{what}-{}{ext}",
        crate::time::file_timestamp(now)
    ))
}

/// [`sibling_path`], or with `-2`, `-3`, … appended to the stem when that exists (an
/// undo within the second of its restore would otherwise collide with its safety
/// copy).
fn free_sibling_path(db: &Path, what: &str, now: SystemTime) -> PathBuf {
    let first = sibling_path(db, what, now);
    if !first.exists() {
        return first;
    }
    let stem = first
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = first
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    (2u32..)
        .map(|n| first.with_file_name(format!("{stem}-{n}{ext}")))
        .find(|p| !p.exists())
        .expect("some numbered name is free")
}

/// Phases of a restore, for progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestorePhase {
    /// Listing the replica and choosing files.
    Planning,
    /// Fetching and merging this many files into the output.
    Writing {
        /// Files in the plan.
        files: usize,
    },
    /// Done and verified with `PRAGMA integrity_check`.
    Verified,
}

/// Restores `target` into a new file `out` (refused if it exists, or if a `-wal`,
/// `-shm` or `-journal` lies beside it: [`Overwrite::Refuse`]), verified with `PRAGMA
/// integrity_check` before it appears; `progress` hears each phase.
pub async fn restore_copy(
    client: Arc<dyn ReplicaClient>,
    target: Target,
    out: &Path,
    progress: impl Fn(RestorePhase) + Send,
) -> Result<Restored, Error> {
    let opts = RestoreOptions::new(Overwrite::Refuse, IntegrityCheck::Full);
    check_output(out, opts.overwrite)?;
    progress(RestorePhase::Planning);
    let files = crate::restore::plan_restore(client.as_ref(), target).await?;
    progress(RestorePhase::Writing { files: files.len() });
    let restored = restore_plan_to(client, files, out, opts).await?;
    progress(RestorePhase::Verified);
    Ok(restored)
}

/// Other processes that have `db` (or its WAL) open, by their `/proc/*/fd` links:
/// an extra on Linux that names them, and that sees programs holding no SQLite lock.
/// Empty where `/proc` does not exist; [`ExclusiveHold`] is the portable check.
pub fn open_by_other_processes(db: &Path) -> Vec<u32> {
    let me = std::process::id();
    let Ok(db) = std::fs::canonicalize(db) else {
        return Vec::new();
    };
    let wal = crate::capture::wal_path(&db);
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        if fds
            .flatten()
            .filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .any(|target| target == db || target == wal)
        {
            pids.push(pid);
        }
    }
    pids
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A task that ignores the stop signal is aborted after [`STOP_TIMEOUT`], and
    /// `join` returns only once its state (what would hold the database open) is
    /// dropped — never detached.
    #[tokio::test(start_paused = true)]
    async fn a_task_that_does_not_stop_is_aborted_and_joined() {
        struct Held(Arc<std::sync::atomic::AtomicBool>);
        impl Drop for Held {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let released = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let held = Held(Arc::clone(&released));
        let (stop, _stop_rx) = watch::channel(false);
        let (wake, _wake_rx) = wake_channel();
        let task = tokio::spawn(async move {
            let _held = held;
            std::future::pending::<()>().await;
        });
        let started = tokio::time::Instant::now();
        join(Running {
            stop,
            wake,
            stats: Arc::default(),
            task,
        })
        .await;
        assert!(released.load(std::sync::atomic::Ordering::SeqCst));
        assert!(started.elapsed() >= STOP_TIMEOUT);
    }

    #[test]
    fn timestamps_are_file_names() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_964_531);
        assert_eq!(crate::time::file_timestamp(t), "2026-11-29T15-02-11");
        assert_eq!(
            restored_copy_path(Path::new("/d/app.db"), t),
            Path::new("/d/app-restored-2026-11-29T15-02-11.db")
        );
        assert_eq!(
            crate::time::file_timestamp(SystemTime::UNIX_EPOCH),
            "1970-01-01T00-00-00"
        );
    }

    #[test]
    fn states_follow_events() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let db = PathBuf::from("/x.db");
        let mut t = Track::default();
        assert_eq!(t.state(t0), SyncState::Starting);
        t.apply(
            &Event::Started {
                db: db.clone(),
                replica: "r".into(),
                txid: None,
            },
            t0,
        );
        assert_eq!(t.state(t0), SyncState::InSync);
        t.apply(
            &Event::Captured {
                db: db.clone(),
                txid: Txid(1),
                pages: 1,
                bytes: 1,
                snapshot: None,
            },
            t0,
        );
        assert_eq!(t.state(t0), SyncState::Syncing);
        assert_eq!(
            t.state(t0 + LAGGING_AFTER + Duration::from_secs(1)),
            SyncState::Lagging
        );
        t.apply(
            &Event::Shipped {
                db: db.clone(),
                files: 1,
                bytes: 1,
                txid: Txid(1),
                lag: Duration::from_millis(5),
            },
            t0,
        );
        assert_eq!(t.state(t0 + Duration::from_secs(100)), SyncState::InSync);
        t.apply(
            &Event::Error {
                db,
                stage: Stage::Ship,
                code: ErrorCode::Io,
                message: "boom".into(),
                retry_in: Duration::from_secs(1),
            },
            t0,
        );
        assert_eq!(t.state(t0), SyncState::Error);
        t.paused = true;
        assert_eq!(t.state(t0), SyncState::Paused);
    }
}
