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
//! # async fn demo() -> Result<(), tideline_engine::ServiceError> {
//! use std::sync::Arc;
//! use tideline_engine::config::{DbConfig, ReplicaConfig};
//! use tideline_engine::{ReplicateSettings, Service, open_client};
//!
//! let service = Service::new(
//!     tokio::runtime::Handle::current(),
//!     ReplicateSettings::default(),
//!     Arc::new(|status, _event| println!("{}: {:?}", status.path.display(), status.state)),
//! );
//! let mut cfg = DbConfig::new("/data/app.db");
//! cfg.replica = Some(ReplicaConfig::from_url("/backups/app").unwrap());
//! let client = open_client(cfg.replica.as_ref().unwrap())?;
//! service.add(cfg, client, false).await?;
//! service.sync_now(std::path::Path::new("/data/app.db"))?;
//! service.shutdown().await;
//! # Ok(()) }
//! ```

mod in_place;
mod inspect;
pub mod status;

pub use crate::restore::points::{MAX_RESTORE_POINTS, PointKind, RestorePoint, restore_points};
pub use in_place::{ExclusiveHold, InPlaceRestore, RestorePhase, restore_copy, restored_copy_path};
use in_place::{Source, in_use, pid_list, replace_stopped};
use inspect::open_by_other_processes;
pub use inspect::{DbInfo, check_folder_writable, inspect, inspect_database, probe_replica};
use status::Track;
pub use status::{DbStatus, LAGGING_AFTER, StatusSink, SyncState};

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
use crate::restore::Target;
use crate::storage::ReplicaClient;

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

impl From<crate::blocking::Panicked> for ServiceError {
    fn from(p: crate::blocking::Panicked) -> ServiceError {
        Error::from(p).into()
    }
}

impl From<ServiceError> for ErrorReport {
    fn from(e: ServiceError) -> ErrorReport {
        ErrorReport::new(e.code(), e.to_string())
    }
}

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

    /// The service's wall-clock time ([`ReplicateSettings::clock`]).
    fn now(&self) -> SystemTime {
        self.inner.settings.clock.now()
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
        inspect::inspect(cfg.path.clone()).await?;
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
            .map(|e| e.status(self.now()))
            .ok_or_else(|| ServiceError::NotFound(path.to_owned()))
    }

    /// Every database's status, ordered by path.
    pub fn statuses(&self) -> Vec<DbStatus> {
        let now = self.now();
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
        let status = self.dbs().get(path).map(|e| e.status(self.now()))?;
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

fn on_event(inner: &Weak<Inner>, path: &Path, event: &Event) {
    let Some(inner) = inner.upgrade() else { return };
    let now = inner.settings.clock.now();
    let service = Service { inner };
    if service
        .with_entry(path, |e| e.track.apply(event, now))
        .is_ok()
    {
        service.notify(path, Some(event));
    }
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
