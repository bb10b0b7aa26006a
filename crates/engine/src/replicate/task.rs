//! One database's task: three loops joined in one task, so that no stage waits on
//! another: capture (WAL to local L0 files, on wake-ups and a fallback poll), ship
//! (reconcile with the replica, then upload in order) and maintain (compaction,
//! snapshots, retention). Each stage backs off on its own after failures.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tideline_ltx::Txid;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;

use super::capture::{Capturer, with_db};
use super::maintain::{LiveSnapshots, MaintMsg, maintain, sleep_until_some};
use super::reconcile::{self, Decision, ShippedRecord};
use super::report::{RequestReport, missing, write_request_report};
use super::retry::{LiveTask, Retry, fallback_poll, paced};
use super::slot::{DbSlot, IdleClose};
use super::watcher::WalWatcher;
use super::{ReplicateSettings, TaskStats, Wake, open_when_present, wake_channel};
use crate::capture::{Captured, Database, DbOptions, MetaDir};
use crate::clock::Clock;
use crate::config::DbConfig;
use crate::error::{Error, Result};
use crate::events::{Event, EventSink, Stage};
use crate::levels::scheduler::{LevelsConfig, Maintainer};
use crate::storage::{ReplicaClient, RequestCounts};

/// One database's replication.
pub(super) struct DbTask {
    path: PathBuf,
    db: Arc<Mutex<DbSlot>>,
    /// The meta directory's L0 folder (listed without opening the database).
    l0_dir: PathBuf,
    /// Whether the database is put away while idle (a watched directory's).
    idle_close: Option<IdleClose>,
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
    /// Tells the upload side that local L0 files are waiting: capture after each
    /// capture, a snapshot after capturing on its own.
    kick: Arc<Notify>,
    clock: Clock,
}

/// How often the shipped record is rewritten while uploads go on: it only has to
/// show that something reached the replica and roughly how far, and each write costs
/// two fsyncs.
const RECORD_EVERY: Duration = Duration::from_secs(60);

/// Opens the database, waiting for it to exist with `wait_until` (`None` if shutdown
/// came first). Another program writing its meta directory (Litestream on the same
/// database) is refused before anything of ours goes there; a newest file that our
/// last run shipped (`record`, written at a clean stop) needs no wait.
async fn open_alone(
    cfg: &DbConfig,
    events: &EventSink,
    wait_until: Option<&mut watch::Receiver<bool>>,
    record: Option<&ShippedRecord>,
) -> Result<Option<Database>> {
    let opts = DbOptions::from_config(cfg);
    let continuous = wait_until.is_some();
    let db = match wait_until {
        Some(stop) => {
            match open_when_present(&cfg.path, opts, cfg.monitor_interval, events, stop).await? {
                Some(db) => db,
                None => return Ok(None),
            }
        }
        None => {
            let path = cfg.path.clone();
            crate::blocking::blocking("open", move || Database::open(&path, opts)).await?
        }
    };
    if continuous
        && let Some((wait, before)) = db.meta_watch()?
        && record.is_none_or(|r| (Txid(r.txid), r.size) != before.file())
    {
        tokio::time::sleep(wait).await;
        db.check_meta_quiet(before)?;
    }
    Ok(Some(db))
}

impl DbTask {
    /// Opens the database. With `wait_until`, a database that does not exist yet is
    /// waited for (`None` if shutdown came first); without it (`-once`) a missing
    /// database is an error. The replica is not contacted here: matching with it is
    /// the upload stage's first step, retried until the destination can be reached,
    /// while capture goes on locally.
    pub(super) async fn start(
        cfg: DbConfig,
        sync_interval: Duration,
        client: Arc<dyn ReplicaClient>,
        events: EventSink,
        wait_until: Option<&mut watch::Receiver<bool>>,
        (levels, compactions, clock): (LevelsConfig, Arc<tokio::sync::Semaphore>, Clock),
    ) -> Result<Option<DbTask>> {
        let meta = MetaDir::new(&cfg.meta_path);
        let l0_dir = meta.l0_dir();
        let continuous = wait_until.is_some();
        let record = ShippedRecord::load(&cfg.meta_path, &client.describe());
        let Some(db) = open_alone(&cfg, &events, wait_until, record.as_ref()).await? else {
            return Ok(None);
        };
        let db = Arc::new(Mutex::new(DbSlot::new(db, DbOptions::from_config(&cfg))));
        let kick = Arc::new(Notify::new());
        let maintainer = Maintainer::new(
            cfg.path.clone(),
            Arc::clone(&client),
            levels,
            Some(l0_dir),
            meta.ltx_dir(),
            Some(Arc::new(LiveSnapshots {
                db: Arc::clone(&db),
                clock: clock.clone(),
                kick: Arc::clone(&kick),
            })
                as Arc<dyn crate::levels::snapshot::SnapshotSource>),
            compactions,
            Arc::clone(&events),
        );
        let task = DbTask {
            path: cfg.path.clone(),
            db,
            l0_dir: meta.l0_dir(),
            idle_close: None,
            client,
            events,
            monitor_interval: cfg.monitor_interval,
            sync_interval,
            shipped: None,
            reconciled: Arc::default(),
            record,
            record_written: None,
            meta_dir: cfg.meta_path.clone(),
            started_at: clock.now(),
            reported: None,
            keeps_local_l0: maintainer.keeps_local_l0(),
            maintainer: Some(maintainer),
            maint_tx: None,
            reloaded: Arc::default(),
            kick,
            clock,
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

    /// The database file.
    pub(super) fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Puts the database away while idle by `rule` (see `slot`).
    pub(super) fn close_when_idle(&mut self, rule: IdleClose) {
        self.idle_close = Some(rule);
    }

    /// Catches up with what was committed while we were not running, then puts the
    /// database away (by its rule): its task's first look finds it unchanged, and the
    /// next change opens it again. A failure here is left to that first look, which
    /// captures (and reports) again.
    pub(super) async fn settle(&mut self) {
        let Some(rule) = self.idle_close else {
            return;
        };
        if self.capture().await.is_ok() {
            let _ = super::capture::with_slot(&self.db, move |s| Ok(s.close_if_small(rule))).await;
        }
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
            clock: self.clock.clone(),
            idle_close: self.idle_close,
        }
    }

    /// Matches the local position with the replica (see [`crate::replicate::reconcile`]): what
    /// to upload, whether to start afresh or a new generation, or to write nothing
    /// because the destination is missing.
    async fn reconcile(&mut self) -> Result<()> {
        let levels = crate::restore::list_levels(self.client.as_ref()).await?;
        let local: Vec<Txid> = crate::capture::list_l0(&self.l0_dir)?
            .into_iter()
            .map(|(t, _)| t)
            .collect();
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
        let local = crate::capture::list_l0(&self.l0_dir)?;
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
        Ok(crate::capture::list_l0(&self.l0_dir)?
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

    pub(super) async fn run(
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
                let now = self.clock.now();
                self.maintainer_mut().force_snapshot(now).await?;
            }
            if settings.enforce_retention {
                let now = self.clock.now();
                self.maintainer_mut().enforce_retention(now).await?;
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
        let _live = LiveTask::new();
        let watcher = WalWatcher::new(&self.path, wake_tx.clone());
        // Without file-system events, the WAL is looked at every monitor interval.
        let poll = watcher.is_none().then_some(self.monitor_interval);
        // The first pass captures and ships whatever happened while we were not running.
        let _ = wake_tx.try_send(());
        let kick = Arc::clone(&self.kick);
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
            self.ship_loop(stop.clone(), &kick, &stats),
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
    async fn ship_loop(
        &mut self,
        mut stop: watch::Receiver<bool>,
        kick: &Notify,
        stats: &TaskStats,
    ) {
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
            let fallback = tokio::select! {
                _ = stop.changed() => break,
                _ = kick.notified(), if listen => false,
                _ = sleep_until_some(retry_at) => false,
                // A safety net: should a path that writes L0 files ever fail to tell
                // (`kick`), its files still leave within this. A look with nothing
                // pending is a local listing, no request.
                _ = tokio::time::sleep(fallback_poll(&self.path)), if listen => true,
            };
            if *stop.borrow() {
                break;
            }
            // Put away and unchanged since: nothing was captured, so nothing can be
            // pending that was not looked at then (a snapshot tells by `kick`).
            if fallback && ship.ready() && self.put_away_unchanged() {
                stats.note_shipped(Instant::now());
                continue;
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
                        stats.note_shipped(Instant::now());
                        self.succeeded(Stage::Ship, &mut ship);
                    }
                    Err(e) => {
                        stats.note_ship_failed();
                        self.failed(Stage::Ship, &e, &mut ship);
                    }
                }
            }
            self.report_requests();
        }
    }

    /// True if the database is put away and its files unchanged since.
    fn put_away_unchanged(&self) -> bool {
        self.idle_close.is_some()
            && self
                .db
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .closed_and_unchanged()
    }

    /// Final capture and shipping, retried until the deadline.
    async fn shutdown(mut self, settings: &ReplicateSettings) -> Result<()> {
        let deadline = Instant::now() + settings.shutdown_sync_timeout;
        // A database removed while replicating (a watched directory's, or by hand)
        // has nothing more to capture: what it captured is still shipped.
        let gone = !self.path.exists();
        // A put-away database whose files did not change has nothing to capture
        // either: opening it only to find that would, over a fleet, open every
        // database at once.
        let unchanged = self.put_away_unchanged();
        loop {
            let attempt = async {
                if !gone && !unchanged {
                    self.capture().await?;
                }
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
                        code: e.code(),
                        message: format!("final sync: {e}"),
                        retry_in: settings.shutdown_sync_interval,
                    });
                    tokio::time::sleep(settings.shutdown_sync_interval).await;
                }
                Err(e) => {
                    (self.events)(&Event::Error {
                        db: self.path.clone(),
                        stage: Stage::Ship,
                        code: e.code(),
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
