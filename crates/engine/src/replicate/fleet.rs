//! Every database one `tideline replicate` runs, as a set that can change while it
//! runs: the databases given at start (opened a few at a time, failing fast on one
//! that cannot be opened), and, for `dir:` entries with `watch: true`, databases
//! created in their folders later (started on their folder's file events) and removed
//! (stopped, after shipping what was captured). One stop ends them all. A directory's
//! databases are put away while idle (`slot`), so a fleet of idle databases holds no
//! SQLite connections.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::directory::{self, Change, DirWatcher};
use super::task::DbTask;
use super::{ReplicateSettings, TaskStats, heartbeat};
use crate::config::{DbConfig, DirConfig};
use crate::error::{Error, Result};
use crate::events::{Event, EventSink, Stage};
use crate::storage::{ReplicaClient, open_client};

/// Databases opened at once at start: opening reads the meta directory and lists the
/// replica, so a fleet starts in parallel, without a request storm.
const STARTING_AT_ONCE: usize = 16;

/// The counts of every running database, for the heartbeat.
pub(super) type Board = Arc<Mutex<HashMap<PathBuf, Arc<TaskStats>>>>;

/// The counts on the board now.
pub(super) fn on_board(board: &Board) -> Vec<Arc<TaskStats>> {
    board
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .values()
        .cloned()
        .collect()
}

/// A running database.
struct Member {
    stop: watch::Sender<bool>,
    /// Found in a watched directory (so it stops when its file goes).
    from_dir: bool,
    /// Stopped because its file went; started again if it is back when it ends.
    vanished: bool,
}

/// What one database's task ends with.
type Joined = (PathBuf, Result<()>);

/// The databases running, and what they share.
pub(super) struct Fleet {
    settings: ReplicateSettings,
    events: EventSink,
    compactions: Arc<Semaphore>,
    board: Board,
    members: HashMap<PathBuf, Member>,
    tasks: JoinSet<Joined>,
    /// The first error a task ended with (what replication returns).
    first_err: Option<Error>,
}

impl Fleet {
    pub(super) fn new(settings: ReplicateSettings, events: EventSink) -> Fleet {
        let compactions = Arc::new(Semaphore::new(settings.max_concurrent_compactions.max(1)));
        Fleet {
            settings,
            events: crate::metrics::observing(events),
            compactions,
            board: Arc::default(),
            members: HashMap::new(),
            tasks: JoinSet::new(),
            first_err: None,
        }
    }

    /// Replicates `dbs` and what `dirs` (those with `watch:`) bring, until `stop`
    /// (or once, with `settings.once`).
    pub(super) async fn run(
        mut self,
        dbs: Vec<(DbConfig, Arc<dyn ReplicaClient>)>,
        dirs: Vec<DirConfig>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<()> {
        let from_dir: HashSet<PathBuf> = dbs
            .iter()
            .filter(|(c, _)| dirs.iter().any(|d| d.matches(&c.path)))
            .map(|(c, _)| c.path.clone())
            .collect();
        // Only watched directories are followed; every directory's databases are put
        // away while idle.
        let dirs: Vec<DirConfig> = dirs.into_iter().filter(|d| d.watch).collect();
        let started = self.start_all(dbs, &from_dir, &stop).await?;
        for task in started {
            let path = task.path().to_owned();
            let from_dir = from_dir.contains(&path);
            self.spawn(path, from_dir, watch::channel(false), async move {
                Ok(Some(task))
            });
        }
        let heartbeat = self.heartbeat(&stop);
        let watching = !self.settings.once && !dirs.is_empty();
        let (tx, mut changes) = DirWatcher::queue();
        let mut watchers = Vec::new();
        if watching {
            for dir in &dirs {
                watchers.push(DirWatcher::new(dir, tx.clone())?);
            }
            // What appeared between the first look and the watch.
            self.rescan(&dirs);
        }
        drop(tx);
        let mut stopping = *stop.borrow();
        let mut pending: Vec<Change> = Vec::new();
        let mut flush_at: Option<Instant> = None;
        loop {
            if self.tasks.is_empty() && (stopping || !watching) {
                break;
            }
            tokio::select! {
                _ = stop.changed(), if !stopping => {
                    stopping = true;
                    for m in self.members.values() {
                        let _ = m.stop.send(true);
                    }
                }
                Some(joined) = self.tasks.join_next() => self.ended(joined, &dirs, stopping),
                Some(change) = changes.recv(), if watching && !stopping => {
                    // A removal is acted on at once (Litestream's order too): the
                    // database's own task would otherwise look for its file in vain.
                    if let Change::Vanished(path) = &change {
                        self.vanished(path);
                        continue;
                    }
                    if pending.last() != Some(&change) {
                        pending.push(change);
                    }
                    flush_at.get_or_insert_with(|| Instant::now() + directory::DEBOUNCE);
                }
                _ = super::maintain::sleep_until_some(flush_at), if !stopping => {
                    flush_at = None;
                    for change in std::mem::take(&mut pending) {
                        self.apply(change, &dirs);
                    }
                }
            }
        }
        drop(watchers);
        if let Some(h) = heartbeat {
            // Stopped with the rest (the stop was sent); a request under way is dropped.
            h.abort();
        }
        self.first_err.map_or(Ok(()), Err)
    }

    /// Opens `dbs`, a few at a time; the first that cannot be opened ends the start
    /// with its error. `None`s (shutdown while waiting for a database) are dropped.
    async fn start_all(
        &self,
        dbs: Vec<(DbConfig, Arc<dyn ReplicaClient>)>,
        from_dir: &HashSet<PathBuf>,
        stop: &watch::Receiver<bool>,
    ) -> Result<Vec<DbTask>> {
        let permits = Arc::new(Semaphore::new(STARTING_AT_ONCE));
        let mut starting = JoinSet::new();
        for (i, (cfg, client)) in dbs.into_iter().enumerate() {
            let permits = Arc::clone(&permits);
            let found = from_dir.contains(&cfg.path);
            let start = self.starter(cfg, client, stop.clone(), found);
            starting.spawn(async move {
                let _permit = permits.acquire_owned().await;
                (i, start.await)
            });
        }
        let mut opened = Vec::new();
        while let Some(joined) = starting.join_next().await {
            match joined {
                Ok((i, Ok(Some(task)))) => opened.push((i, task)),
                Ok((_, Ok(None))) => {}
                Ok((_, Err(e))) => return Err(e),
                Err(join) => {
                    return Err(Error::Internal(format!(
                        "starting a database failed: {join}"
                    )));
                }
            }
        }
        // In the order given, as the log and the events have always been.
        opened.sort_by_key(|(i, _)| *i);
        Ok(opened.into_iter().map(|(_, t)| t).collect())
    }

    /// Opening one database (see [`DbTask::start`]).
    fn starter(
        &self,
        cfg: DbConfig,
        client: Arc<dyn ReplicaClient>,
        mut stop: watch::Receiver<bool>,
        from_dir: bool,
    ) -> impl Future<Output = Result<Option<DbTask>>> + Send + 'static {
        let events = Arc::clone(&self.events);
        let once = self.settings.once;
        // A directory's database is put away while idle; right after its start too,
        // once it has caught up, so that a fleet never has every database open.
        let idle = self.settings.idle_close.filter(|_| from_dir && !once);
        let shared = (
            self.settings.levels.clone(),
            Arc::clone(&self.compactions),
            self.settings.clock.clone(),
        );
        async move {
            let sync_interval = cfg
                .replica
                .as_ref()
                .map_or(crate::config::DEFAULT_SYNC_INTERVAL, |r| r.sync_interval);
            let mut task = DbTask::start(
                cfg,
                sync_interval,
                client,
                events,
                (!once).then_some(&mut stop),
                shared,
            )
            .await?;
            if let (Some(t), Some(rule)) = (task.as_mut(), idle) {
                t.close_when_idle(rule);
                t.settle().await;
            }
            Ok(task)
        }
    }

    /// Runs the database `open` gives until it ends, stopped by `stop` (the
    /// database's own, which the opening may also wait on).
    fn spawn(
        &mut self,
        path: PathBuf,
        from_dir: bool,
        (stop_tx, stop_rx): (watch::Sender<bool>, watch::Receiver<bool>),
        open: impl Future<Output = Result<Option<DbTask>>> + Send + 'static,
    ) {
        let stats = Arc::new(TaskStats::default());
        self.board
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(path.clone(), Arc::clone(&stats));
        self.members.insert(
            path.clone(),
            Member {
                stop: stop_tx,
                from_dir,
                vanished: false,
            },
        );
        let settings = self.settings.clone();
        self.tasks.spawn(async move {
            let ran = match open.await {
                Ok(Some(task)) => task.run(settings, stop_rx, None, stats).await,
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            };
            (path, ran)
        });
    }

    /// Starts the heartbeat, if configured (never with `-once`).
    fn heartbeat(&self, stop: &watch::Receiver<bool>) -> Option<tokio::task::JoinHandle<()>> {
        match &self.settings.heartbeat {
            Some(hb) if !self.settings.once => Some(tokio::spawn(heartbeat::run(
                hb.clone(),
                self.settings.heartbeat_check_every,
                Arc::clone(&self.board),
                stop.clone(),
                Arc::clone(&self.events),
            ))),
            _ => None,
        }
    }

    /// A database's task ended: off the board; its error kept (a database found
    /// while running reports its own, replication goes on); started again if it
    /// ended because its file went and the file is back.
    fn ended(
        &mut self,
        joined: std::result::Result<Joined, tokio::task::JoinError>,
        dirs: &[DirConfig],
        stopping: bool,
    ) {
        let (path, ran) = match joined {
            Ok(j) => j,
            Err(join) => {
                self.first_err
                    .get_or_insert(Error::Internal(format!("replication task failed: {join}")));
                return;
            }
        };
        self.board
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&path);
        let member = self.members.remove(&path);
        let from_dir = member.as_ref().is_some_and(|m| m.from_dir);
        if let Err(e) = ran {
            if from_dir {
                (self.events)(&Event::Error {
                    db: path.clone(),
                    stage: Stage::Open,
                    code: e.code(),
                    message: format!("{e}; this database of the directory is not replicated"),
                    retry_in: std::time::Duration::ZERO,
                });
            } else {
                self.first_err.get_or_insert(e);
            }
        }
        if !stopping && member.is_some_and(|m| m.vanished) {
            self.appeared(&path, dirs);
        }
    }

    /// Acts on one change in a watched directory.
    fn apply(&mut self, change: Change, dirs: &[DirConfig]) {
        match change {
            Change::Appeared(path) if path.is_dir() => {
                // A new sub-folder: its databases may have been written before its
                // watch was added.
                if dirs.iter().any(|d| d.recursive && path.starts_with(&d.dir)) {
                    self.rescan(dirs);
                }
            }
            Change::Appeared(path) => self.appeared(&path, dirs),
            Change::Vanished(path) => self.vanished(&path),
            Change::Rescan => self.rescan(dirs),
        }
    }

    /// Starts replicating `path` if a watched directory stands for it, it is a SQLite
    /// database, and it is not replicated already.
    fn appeared(&mut self, path: &Path, dirs: &[DirConfig]) {
        if self.members.contains_key(path) {
            return;
        }
        let Some(dir) = dirs.iter().find(|d| d.matches(path)) else {
            return;
        };
        if !directory::is_sqlite_database(path) {
            return;
        }
        let prepared = dir.entry(path).map_err(Error::from).and_then(|cfg| {
            let client = open_client(cfg.require_replica()?)?;
            Ok((cfg, client))
        });
        let (cfg, client) = match prepared {
            Ok(p) => p,
            Err(e) => {
                (self.events)(&Event::Error {
                    db: path.to_owned(),
                    stage: Stage::Open,
                    code: e.code(),
                    message: e.to_string(),
                    retry_in: std::time::Duration::ZERO,
                });
                return;
            }
        };
        (self.events)(&Event::Discovered {
            db: path.to_owned(),
            dir: dir.dir.clone(),
        });
        let stop = watch::channel(false);
        let open = self.starter(cfg, client, stop.1.clone(), true);
        self.spawn(path.to_owned(), true, stop, open);
    }

    /// Stops the databases found in a watched directory at `path` or under it (a
    /// removed folder), after they ship what they captured.
    fn vanished(&mut self, path: &Path) {
        if path.exists() && !path.is_dir() {
            // Renamed away and back, or removed and written again within the debounce.
            return;
        }
        for (db, m) in &mut self.members {
            if m.from_dir && !m.vanished && db.starts_with(path) {
                m.vanished = true;
                let _ = m.stop.send(true);
                (self.events)(&Event::Vanished { db: db.clone() });
            }
        }
    }

    /// Looks at every watched directory again: starts what is new, stops what went.
    fn rescan(&mut self, dirs: &[DirConfig]) {
        for dir in dirs {
            match directory::find_databases(dir) {
                Ok(found) => {
                    for path in found {
                        self.appeared(&path, dirs);
                    }
                }
                Err(e) => (self.events)(&Event::Error {
                    db: dir.dir.clone(),
                    stage: Stage::Open,
                    code: e.code(),
                    message: e.to_string(),
                    retry_in: directory::DEBOUNCE,
                }),
            }
        }
        let gone: Vec<PathBuf> = self
            .members
            .iter()
            .filter(|(p, m)| m.from_dir && !p.exists())
            .map(|(p, _)| p.clone())
            .collect();
        for path in gone {
            self.vanished(&path);
        }
    }
}
