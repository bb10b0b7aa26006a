//! Every database one `tideline replicate` runs, as a set that can change while it
//! runs: the databases given at start (opened a few at a time, failing fast on one
//! that cannot be opened), and, for `dir:` entries with `watch: true`, databases
//! created in their folders later (started on their folder's file events) and removed
//! (stopped, after shipping what was captured). One stop ends them all. A directory's
//! databases are put away while idle (`slot`), so a fleet of idle databases holds no
//! SQLite connections. With a control inbox (`control`), databases are also
//! registered, stopped, started and unregistered on request while it runs.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Semaphore, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::control::{ControlInbox, DbSummary, Outcome, Request, Shipped};
use super::directory::{self, Change, DirWatcher};
use super::task::DbTask;
use super::{ReplicateSettings, TaskStats, heartbeat};
use crate::config::{DbConfig, DirConfig, ReplicaConfig};
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
    /// Stopped on request: who waits for the end, and whether it is then forgotten
    /// (`unregister`) or kept as stopped (`stop`).
    waiters: Vec<oneshot::Sender<Result<Outcome>>>,
    forget: bool,
    /// Registered while running: its failures are its own (reported), not the
    /// replicator's.
    registered: bool,
}

/// The positions the fleet's databases reached, kept from their events.
type ShippedBoard = Arc<Mutex<HashMap<PathBuf, Shipped>>>;

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
    /// How to start again the databases not found in a directory (the config's and
    /// the registered ones), for `start` after a `stop`.
    configs: HashMap<PathBuf, (DbConfig, Arc<dyn ReplicaClient>)>,
    /// Databases stopped on request: not running, not brought back by their
    /// directory, until `start`.
    stopped: HashSet<PathBuf>,
    shipped: ShippedBoard,
}

impl Fleet {
    pub(super) fn new(settings: ReplicateSettings, events: EventSink) -> Fleet {
        let compactions = Arc::new(Semaphore::new(settings.max_concurrent_compactions.max(1)));
        let shipped = ShippedBoard::default();
        let events = crate::metrics::observing(events);
        let events: EventSink = {
            let shipped = Arc::clone(&shipped);
            Arc::new(move |e: &Event| {
                if let Event::Shipped { db, txid, .. } = e {
                    let mut board = shipped.lock().unwrap_or_else(PoisonError::into_inner);
                    let at = board.entry(db.clone()).or_default();
                    (at.txid, at.at) = (Some(*txid), Some(std::time::SystemTime::now()));
                }
                events(e);
            })
        };
        Fleet {
            settings,
            events,
            compactions,
            board: Arc::default(),
            members: HashMap::new(),
            tasks: JoinSet::new(),
            first_err: None,
            configs: HashMap::new(),
            stopped: HashSet::new(),
            shipped,
        }
    }

    /// Replicates `dbs` and what `dirs` (those with `watch:`) bring, until `stop`
    /// (or once, with `settings.once`).
    pub(super) async fn run(
        mut self,
        dbs: Vec<(DbConfig, Arc<dyn ReplicaClient>)>,
        dirs: Vec<DirConfig>,
        mut stop: watch::Receiver<bool>,
        inbox: Option<ControlInbox>,
    ) -> Result<()> {
        let from_dir: HashSet<PathBuf> = dbs
            .iter()
            .filter(|(c, _)| dirs.iter().any(|d| d.matches(&c.path)))
            .map(|(c, _)| c.path.clone())
            .collect();
        if inbox.is_some() {
            // Kept to start them again after a `stop` (a directory's are found again).
            for (cfg, client) in dbs.iter().filter(|(c, _)| !from_dir.contains(&c.path)) {
                self.configs
                    .insert(cfg.path.clone(), (cfg.clone(), Arc::clone(client)));
            }
        }
        let all_dirs = dirs.clone();
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
        let listening = inbox.is_some() && !self.settings.once;
        let mut inbox = inbox.map(|i| i.0);
        // A stop that came while the databases were being opened reaches them now.
        let mut stopping = *stop.borrow();
        if stopping {
            for m in self.members.values() {
                let _ = m.stop.send(true);
            }
        }
        let mut pending: Vec<Change> = Vec::new();
        let mut flush_at: Option<Instant> = None;
        loop {
            if self.tasks.is_empty() && (stopping || (!watching && !listening)) {
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
                Some(request) = recv(&mut inbox), if listening && !stopping => {
                    self.request(request, &all_dirs);
                }
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
                waiters: Vec::new(),
                forget: false,
                registered: false,
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
        let own = member.as_ref().is_some_and(|m| m.from_dir || m.registered);
        if let Some(m) = &member
            && !m.waiters.is_empty()
        {
            self.stopped_on_request(&path, m.forget);
        }
        let member = member.map(|mut m| {
            let txid = self.replica_txid(&path);
            let status = if m.forget { "unregistered" } else { "stopped" };
            for w in m.waiters.drain(..) {
                let _ = w.send(Ok(outcome(status, &path, txid)));
            }
            m
        });
        if let Err(e) = ran {
            if own {
                (self.events)(&Event::Error {
                    db: path.clone(),
                    stage: Stage::Open,
                    code: e.code(),
                    message: if from_dir {
                        format!("{e}; this database of the directory is not replicated")
                    } else {
                        format!("{e}; this registered database is not replicated any more")
                    },
                    retry_in: std::time::Duration::ZERO,
                });
            } else {
                self.first_err.get_or_insert(e);
            }
        }
        if !self.stopped.contains(&path) {
            // Gone for good (or back below): a fleet whose databases come and go keeps
            // no record of the ones that went.
            self.shipped
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&path);
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
    /// database, and it is not replicated already (nor stopped on request).
    fn appeared(&mut self, path: &Path, dirs: &[DirConfig]) {
        if self.members.contains_key(path) || self.stopped.contains(path) {
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

    // ---- Requests of the control socket ----

    /// Acts on one control request; requests that stop a database are answered when
    /// it has ended (`ended`), the others at once.
    fn request(&mut self, request: Request, dirs: &[DirConfig]) {
        match request {
            Request::List { reply } => {
                let _ = reply.send(self.summaries());
            }
            Request::Stop { path, reply } => self.stop_member(path, reply, false),
            Request::Unregister { path, reply } => self.stop_member(path, reply, true),
            Request::Start { path, reply } => self.start_member(path, reply, dirs),
            Request::Register {
                path,
                replica_url,
                reply,
            } => self.register(path, &replica_url, reply, dirs),
        }
    }

    fn replica_txid(&self, path: &Path) -> u64 {
        let board = self.shipped.lock().unwrap_or_else(PoisonError::into_inner);
        board.get(path).and_then(|s| s.txid).map_or(0, |t| t.0)
    }

    /// Every database known: running, or stopped on request.
    fn summaries(&self) -> Vec<DbSummary> {
        let board = self.shipped.lock().unwrap_or_else(PoisonError::into_inner);
        let running = self.members.keys().map(|p| (p, "replicating"));
        let stopped = self.stopped.iter().map(|p| (p, "stopped"));
        let mut out: Vec<DbSummary> = running
            .chain(stopped)
            .map(|(path, status)| {
                let shipped = board.get(path).copied().unwrap_or_default();
                DbSummary {
                    path: path.clone(),
                    status: status.to_owned(),
                    last_sync_at: shipped.at,
                    txid: shipped.txid.map_or(0, |t| t.0),
                }
            })
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }

    /// `stop` / `unregister`: the database's task is stopped (it ships what it
    /// captured) and the answer waits for its end.
    fn stop_member(
        &mut self,
        path: PathBuf,
        reply: oneshot::Sender<Result<Outcome>>,
        forget: bool,
    ) {
        if let Some(m) = self.members.get_mut(&path) {
            m.forget |= forget;
            m.waiters.push(reply);
            let _ = m.stop.send(true);
            return;
        }
        let known = self.stopped.contains(&path);
        let answer = match (known, forget) {
            (true, true) => {
                self.stopped.remove(&path);
                self.configs.remove(&path);
                Ok(outcome("unregistered", &path, self.replica_txid(&path)))
            }
            (true, false) => Ok(outcome("already_stopped", &path, self.replica_txid(&path))),
            (false, true) => Ok(outcome("already_unregistered", &path, 0)),
            (false, false) => Err(Error::NotReplicated(path)),
        };
        let _ = reply.send(answer);
    }

    /// A database stopped on request has ended: kept as stopped, or forgotten.
    fn stopped_on_request(&mut self, path: &Path, forget: bool) {
        if forget {
            // A directory's database (no config of its own) stays out until `start`,
            // like a stopped one: otherwise its directory would bring it straight back.
            if self.configs.remove(path).is_none() {
                self.stopped.insert(path.to_owned());
            }
        } else {
            self.stopped.insert(path.to_owned());
        }
    }

    /// `start`: a stopped database runs again (its config kept, or its directory's).
    fn start_member(
        &mut self,
        path: PathBuf,
        reply: oneshot::Sender<Result<Outcome>>,
        dirs: &[DirConfig],
    ) {
        if self.members.contains_key(&path) {
            let txid = self.replica_txid(&path);
            let _ = reply.send(Ok(outcome("already_running", &path, txid)));
            return;
        }
        if !self.stopped.remove(&path) {
            let _ = reply.send(Err(Error::NotReplicated(path)));
            return;
        }
        let prepared = match self.configs.get(&path) {
            Some((cfg, client)) => Ok((cfg.clone(), Arc::clone(client), false)),
            None => match dirs.iter().find(|d| d.matches(&path)) {
                Some(dir) => dir
                    .entry(&path)
                    .map_err(Error::from)
                    .and_then(|cfg| Ok((cfg.clone(), open_client(cfg.require_replica()?)?, true))),
                None => Err(Error::NotReplicated(path.clone())),
            },
        };
        match prepared {
            Ok((cfg, client, from_dir)) => self.launch(cfg, client, from_dir, "started", reply),
            Err(e) => {
                self.stopped.insert(path);
                let _ = reply.send(Err(e));
            }
        }
    }

    /// `register`: a database not in the config replicated to `replica_url`.
    fn register(
        &mut self,
        path: PathBuf,
        replica_url: &str,
        reply: oneshot::Sender<Result<Outcome>>,
        dirs: &[DirConfig],
    ) {
        let known = self.members.contains_key(&path)
            || self.stopped.contains(&path)
            || self.configs.contains_key(&path)
            || dirs.iter().any(|d| d.matches(&path) && path.exists());
        if known {
            let txid = self.replica_txid(&path);
            let _ = reply.send(Ok(outcome("already_registered", &path, txid)));
            return;
        }
        let prepared = ReplicaConfig::from_url(replica_url)
            .map_err(Error::from)
            .and_then(|replica| {
                let mut cfg = DbConfig::new(&path);
                let client = open_client(&replica)?;
                cfg.replica = Some(replica);
                Ok((cfg, client))
            });
        match prepared {
            Ok((cfg, client)) => {
                self.configs
                    .insert(path.clone(), (cfg.clone(), Arc::clone(&client)));
                self.launch(cfg, client, false, "registered", reply);
                if let Some(m) = self.members.get_mut(&path) {
                    m.registered = true;
                }
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// Opens and runs a database, answering `reply` with `status` once it is open (or
    /// with why it could not be opened, which then ends it quietly).
    fn launch(
        &mut self,
        cfg: DbConfig,
        client: Arc<dyn ReplicaClient>,
        from_dir: bool,
        status: &'static str,
        reply: oneshot::Sender<Result<Outcome>>,
    ) {
        let path = cfg.path.clone();
        let stop = watch::channel(false);
        let open = self.starter(cfg, client, stop.1.clone(), from_dir);
        let shipped = Arc::clone(&self.shipped);
        let answered = async move {
            match open.await {
                Ok(Some(task)) => {
                    let txid = shipped
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .get(task.path())
                        .and_then(|s| s.txid)
                        .map_or(0, |t| t.0);
                    let _ = reply.send(Ok(outcome(status, task.path(), txid)));
                    Ok(Some(task))
                }
                Ok(None) => {
                    let _ = reply.send(Err(Error::ReplicationStopped));
                    Ok(None)
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                    Ok(None)
                }
            }
        };
        self.spawn(path, from_dir, stop, answered);
    }
}

fn outcome(status: &str, path: &Path, txid: u64) -> Outcome {
    Outcome {
        status: status.to_owned(),
        path: path.to_owned(),
        txid,
    }
}

/// The next control request, or never without an inbox.
async fn recv(inbox: &mut Option<tokio::sync::mpsc::Receiver<Request>>) -> Option<Request> {
    match inbox {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
