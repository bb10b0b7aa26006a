//! The per-database scheduler of compaction levels, snapshots and retention.
//!
//! A [`Maintainer`] keeps the replica's listing in memory: it lists every level once
//! at start (and again every [`LevelsConfig::relist_interval`] to reconcile with
//! anything else touching the replica), then keeps the cache true from its own writes
//! and deletions and from the L0 uploads replication reports ([`Maintainer::note_written`]).
//! Deciding what to do is therefore free: [`Maintainer::tick`] evaluates the pure rules
//! of [`crate::levels::compaction`], [`crate::levels::snapshot`] and [`crate::levels::retention`] on the cache
//! at the time it is given, and only spends requests on actual work (one PUT per
//! compaction or snapshot, one delete call per level and pass). Litestream lists the
//! replica on every compaction, snapshot and L0-retention tick instead.
//!
//! Time is always passed in, so tests drive hours of schedule without waiting.
//! Compactions and snapshots of all databases share one semaphore, so at most a
//! configured number run at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tideline_ltx::Txid;
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::events::{Event, EventSink};
use crate::levels::compaction::{compact_files, level_due, next_window, plan_inputs, window_start};
use crate::levels::retention::{self, DEFAULT_DELETE_GRACE, Tombstones};
use crate::levels::snapshot::{SnapshotSource, snapshot_due};
use crate::levels::validation;
use crate::storage::{FileInfo, MAX_COMPACTION_LEVEL, ReplicaClient, SNAPSHOT_LEVEL};

/// Compaction, snapshot and retention settings (Litestream's keys, shared by every
/// database of a config file).
#[derive(Debug, Clone)]
pub struct LevelsConfig {
    /// `levels:` windows of L1, L2, … (empty: no compaction, L0 files are kept by
    /// replication only until shipped).
    pub levels: Vec<Duration>,
    /// `snapshot.interval`.
    pub snapshot_interval: Duration,
    /// `snapshot.retention`.
    pub snapshot_retention: Duration,
    /// `l0-retention` (`None`: keep L0 files).
    pub l0_retention: Option<Duration>,
    /// `l0-retention-check-interval`. Checks cost no request here (the listing is
    /// cached), only deletions do.
    pub l0_retention_check_interval: Duration,
    /// `retention.enabled`: false leaves replica deletions to bucket lifecycle rules.
    pub retention_enabled: bool,
    /// How long a deletable file stays, so restores under way finish (see
    /// [`crate::levels::retention`]).
    pub delete_grace: Duration,
    /// Deletions are batched: at most one pass (one delete request per level) this
    /// often. Litestream deletes on every 15 s L0 check.
    pub delete_interval: Duration,
    /// How often the cached listing is replaced by a fresh one.
    pub relist_interval: Duration,
    /// `validation.interval`: how often levels 0 to 8 are listed afresh and checked
    /// for gaps and overlaps ([`crate::levels::validation`]); `None`: never.
    pub validation_interval: Option<Duration>,
}

impl LevelsConfig {
    /// The settings of a config file.
    pub fn from_config(c: &Config) -> Self {
        LevelsConfig {
            levels: c.levels.clone(),
            snapshot_interval: c.snapshot.interval,
            snapshot_retention: c.snapshot.retention,
            l0_retention: c.l0_retention,
            l0_retention_check_interval: c.l0_retention_check_interval,
            retention_enabled: c.retention.enabled,
            delete_grace: DEFAULT_DELETE_GRACE,
            delete_interval: Duration::from_secs(5 * 60),
            relist_interval: Duration::from_secs(6 * 3600),
            validation_interval: c.validation_interval,
        }
    }
}

impl Default for LevelsConfig {
    fn default() -> Self {
        LevelsConfig::from_config(&Config::default())
    }
}

/// Default bound on compactions and snapshots running at once across databases.
pub(crate) const DEFAULT_MAX_CONCURRENT_COMPACTIONS: usize = 2;

/// Compaction, snapshots and retention of one database's replica.
pub struct Maintainer {
    db: PathBuf,
    client: Arc<dyn ReplicaClient>,
    cfg: LevelsConfig,
    /// The meta directory's `ltx/0`: local L0 copies, read instead of downloads and
    /// removed once compacted into L1.
    local_l0: Option<PathBuf>,
    /// Where compactions and snapshots are written before upload.
    tmp_dir: PathBuf,
    source: Option<Arc<dyn SnapshotSource>>,
    limit: Arc<Semaphore>,
    events: EventSink,
    /// The replica's files, index = level; `None` until listed.
    cache: Option<Vec<Vec<FileInfo>>>,
    listed_at: Option<SystemTime>,
    /// Window each level (index) last ran in; 9 = snapshots.
    last_window: [Option<SystemTime>; 10],
    last_l0_check: Option<SystemTime>,
    tombstones: Tombstones,
    last_tick: Option<SystemTime>,
    last_delete: Option<SystemTime>,
    /// When levels were last validated (or the first tick, before any).
    last_validation: Option<SystemTime>,
}

impl std::fmt::Debug for Maintainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Maintainer")
            .field("db", &self.db)
            .field("replica", &self.client.describe())
            .field("cfg", &self.cfg)
            .field("tombstones", &self.tombstones.len())
            .finish_non_exhaustive()
    }
}

impl Maintainer {
    /// A maintainer of `client` for database `db` (named in events). `tmp_dir` is in
    /// the meta directory; `local_l0` its `ltx/0`; `source` takes snapshots (none: no
    /// snapshots); `limit` is shared by every database.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        db: PathBuf,
        client: Arc<dyn ReplicaClient>,
        cfg: LevelsConfig,
        local_l0: Option<PathBuf>,
        tmp_dir: PathBuf,
        source: Option<Arc<dyn SnapshotSource>>,
        limit: Arc<Semaphore>,
        events: EventSink,
    ) -> Self {
        Maintainer {
            db,
            client,
            cfg,
            local_l0,
            tmp_dir,
            source,
            limit,
            events,
            cache: None,
            listed_at: None,
            last_window: [None; 10],
            last_l0_check: None,
            tombstones: Tombstones::default(),
            last_tick: None,
            last_delete: None,
            last_validation: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &LevelsConfig {
        &self.cfg
    }

    /// The meta directory's copy of `level` (`ltx/<level>`), next to `ltx/0`.
    fn local_dir(&self, level: u8) -> Option<PathBuf> {
        let l0 = self.local_l0.as_ref()?;
        if level == 0 {
            return Some(l0.clone());
        }
        Some(l0.parent()?.join(level.to_string()))
    }

    /// True if local L0 files must stay after upload until compacted into L1.
    pub(crate) fn keeps_local_l0(&self) -> bool {
        !self.cfg.levels.is_empty()
    }

    /// The cached listing, index = level (empty before the first tick).
    pub fn listing(&self) -> &[Vec<FileInfo>] {
        self.cache.as_deref().unwrap_or(&[])
    }

    /// Forgets the cached listing (and the local copies of compaction levels): the
    /// replica was found changed, so the next tick lists it afresh.
    pub(crate) fn invalidate(&mut self) {
        self.cache = None;
        self.listed_at = None;
    }

    /// Records a file written to the replica by someone else in this process (L0
    /// uploads), keeping the cache true without a listing.
    pub fn note_written(&mut self, info: FileInfo) {
        if let Some(levels) = self.cache.as_mut() {
            let level = &mut levels[info.level as usize];
            let key = (info.min_txid, info.max_txid);
            match level.binary_search_by_key(&key, |f| (f.min_txid, f.max_txid)) {
                Ok(i) => level[i] = info,
                Err(i) => level.insert(i, info),
            }
        }
    }

    fn forget(&mut self, files: &[FileInfo]) {
        if let Some(levels) = self.cache.as_mut() {
            for f in files {
                levels[f.level as usize]
                    .retain(|g| (g.min_txid, g.max_txid) != (f.min_txid, f.max_txid));
            }
        }
    }

    async fn ensure_listed(&mut self, now: SystemTime) -> Result<()> {
        let stale = self.listed_at.is_none_or(|t| {
            now.duration_since(t)
                .is_ok_and(|d| d >= self.cfg.relist_interval)
        });
        if self.cache.is_none() {
            // Local copies of compaction levels from an earlier run may belong to a
            // replica that has since been reset or changed by another tool; they are
            // only a shortcut, so start without them (L0 copies are reconciled with the
            // replica by replication itself).
            if let Some(l0) = &self.local_l0
                && let Some(ltx) = l0.parent()
            {
                for level in 1..SNAPSHOT_LEVEL {
                    let _ = std::fs::remove_dir_all(ltx.join(level.to_string()));
                }
            }
        }
        if self.cache.is_none() || stale {
            // Fresh from the replica, not from the client's own cache (which S3 keeps
            // true only against this process's writes): this is where another writer
            // or a lifecycle rule is noticed.
            let mut levels = Vec::with_capacity(usize::from(SNAPSHOT_LEVEL) + 1);
            for level in 0..=SNAPSHOT_LEVEL {
                levels.push(self.client.list_fresh(level).await?);
            }
            self.cache = Some(levels);
            self.listed_at = Some(now);
        }
        Ok(())
    }

    fn level(&self, n: u8) -> &[FileInfo] {
        self.cache
            .as_ref()
            .and_then(|c| c.get(n as usize))
            .map_or(&[], Vec::as_slice)
    }

    /// When [`Maintainer::tick`] should next run: now if it never ran, else the first
    /// window boundary or retention check after its last run.
    pub(crate) fn due_at(&self) -> Option<SystemTime> {
        self.last_tick.map(|t| self.next_due(t))
    }

    /// True if [`Maintainer::tick`] has something to evaluate at `now`.
    pub fn is_due(&self, now: SystemTime) -> bool {
        self.due_at().is_none_or(|d| d <= now)
    }

    /// The first window boundary or retention check strictly after `now` that can
    /// have work: a level's window only while the level below holds files it has not
    /// compacted (counted from the newest of them, so a database woken from idle
    /// compacts at the end of the window its write fell in, as if it had ticked all
    /// along); L0 checks only while compacted L0 files wait for their retention;
    /// a snapshot's expiry. So an idle database wakes once per snapshot window, not
    /// every 15 s — which adds up over a fleet.
    pub(crate) fn next_due(&self, now: SystemTime) -> SystemTime {
        let mut due = next_window(now, self.cfg.snapshot_interval);
        for (i, iv) in self.cfg.levels.iter().enumerate() {
            let level = i as u8 + 1;
            let below = self.level(level - 1).last();
            let done = self.level(level).last().map(|f| f.max_txid);
            if let Some(input) = below.filter(|f| Some(f.max_txid) > done) {
                due = due.min(next_window(now.max(input.created_at), *iv));
            }
        }
        let snapshots = self.level(SNAPSHOT_LEVEL);
        if self.cfg.retention_enabled && snapshots.len() > 1 {
            let oldest = snapshots.iter().map(|f| f.created_at).min();
            if let Some(expires) = oldest.map(|t| t + self.cfg.snapshot_retention) {
                due = due.min(expires.max(now + Duration::from_millis(1)));
            }
        }
        let l1_max = self.level(1).last().map(|f| f.max_txid);
        let l0 = self.level(0);
        let l0_waiting = l0[..l0.len().saturating_sub(1)]
            .first()
            .is_some_and(|f| Some(f.max_txid) <= l1_max);
        if let Some(iv) = self.cfg.validation_interval {
            let next = self.last_validation.map_or(now + iv, |t| t + iv);
            due = due.min(next.max(now + Duration::from_millis(1)));
        }
        if (self.cfg.l0_retention.is_some() && l0_waiting) || !self.tombstones.is_empty() {
            let check = self
                .last_l0_check
                .map_or(now, |t| t + self.cfg.l0_retention_check_interval);
            due = due.min(check.max(now + Duration::from_millis(1)));
        }
        due
    }

    /// Does what is due at `now`: compactions level by level (L1 first, so a level
    /// sees the files the level below just produced), a snapshot, retention.
    pub async fn tick(&mut self, now: SystemTime) -> Result<()> {
        self.last_tick = Some(now);
        self.ensure_listed(now).await?;
        for i in 0..self.cfg.levels.len() {
            let level = i as u8 + 1;
            self.compact_level(level, now).await?;
        }
        self.snapshot_if_due(now, false).await?;
        self.retain(now, false).await?;
        self.validate_if_due(now).await
    }

    /// Lists levels 0 to the highest compaction level afresh and reports their
    /// contiguity ([`Event::Validated`]) once per `validation.interval`, counted from
    /// the first tick, as Litestream's ticker.
    async fn validate_if_due(&mut self, now: SystemTime) -> Result<()> {
        let Some(iv) = self.cfg.validation_interval else {
            return Ok(());
        };
        let since = *self.last_validation.get_or_insert(now);
        if now.duration_since(since).map_or(true, |d| d < iv) {
            return Ok(());
        }
        self.last_validation = Some(now);
        let mut problems = Vec::new();
        let top = self.cfg.levels.len().min(usize::from(MAX_COMPACTION_LEVEL)) as u8;
        for level in 0..=top {
            let files = self.client.list_fresh(level).await?;
            problems.extend(validation::check_level(level, &files));
        }
        (self.events)(&Event::Validated {
            db: self.db.clone(),
            problems: problems.iter().map(ToString::to_string).collect(),
        });
        Ok(())
    }

    async fn compact_level(&mut self, level: u8, now: SystemTime) -> Result<()> {
        let iv = self.cfg.levels[level as usize - 1];
        let newest = self.level(level).last().map(|f| f.created_at);
        if !level_due(self.last_window[level as usize], newest, now, iv) {
            return Ok(());
        }
        let inputs =
            plan_inputs(level, self.level(level - 1), self.level(level)).map_err(Error::from)?;
        self.last_window[level as usize] = Some(window_start(now, iv));
        if inputs.is_empty() {
            return Ok(());
        }
        let _permit = Arc::clone(&self.limit)
            .acquire_owned()
            .await
            .expect("compaction semaphore closed");
        // Local copies: L0 files in the meta directory, and the outputs of lower
        // levels kept until the next level has consumed them (no downloads).
        let local = self.local_dir(level - 1);
        let keep = if (level as usize) < self.cfg.levels.len() {
            self.local_dir(level)
        } else {
            None
        };
        let done = compact_files(
            &self.client,
            level,
            inputs,
            local.as_deref(),
            &self.tmp_dir,
            keep.as_deref(),
        )
        .await?;
        (self.events)(&Event::Compacted {
            db: self.db.clone(),
            level,
            files: done.inputs.len(),
            local_files: done.local_inputs,
            min_txid: done.output.min_txid,
            max_txid: done.output.max_txid,
            bytes_in: done.bytes_in,
            bytes: done.output.size,
            duration: done.duration,
        });
        let max = done.output.max_txid;
        self.note_written(done.output);
        if level == 1
            && let Some(dir) = &self.local_l0
        {
            remove_compacted_local(dir, max)?;
        } else if let Some(dir) = local {
            remove_local_copies(&dir, max)?;
        }
        Ok(())
    }

    /// Takes a snapshot if one is due (or `force`d and the database moved).
    async fn snapshot_if_due(&mut self, now: SystemTime, force: bool) -> Result<()> {
        let Some(source) = self.source.clone() else {
            return Ok(());
        };
        let iv = self.cfg.snapshot_interval;
        let replica_max = (0..SNAPSHOT_LEVEL)
            .filter_map(|l| self.level(l).last().map(|f| f.max_txid))
            .max();
        let newest = self.level(SNAPSHOT_LEVEL).last().cloned();
        let due = snapshot_due(
            newest.as_ref(),
            replica_max,
            self.last_window[SNAPSHOT_LEVEL as usize],
            now,
            iv,
        ) || force;
        let ws = window_start(now, iv);
        if self.last_window[SNAPSHOT_LEVEL as usize].is_none_or(|w| w < ws) {
            self.last_window[SNAPSHOT_LEVEL as usize] = Some(ws);
        }
        if !due {
            return Ok(());
        }
        let _permit = Arc::clone(&self.limit)
            .acquire_owned()
            .await
            .expect("compaction semaphore closed");
        let started = Instant::now();
        std::fs::create_dir_all(&self.tmp_dir).map_err(Error::io("create", &self.tmp_dir))?;
        let tmp = self.tmp_dir.join("snapshot.ltx.tmp");
        let job = {
            let tmp = tmp.clone();
            move || source.take_snapshot(&tmp, now)
        };
        let taken = crate::blocking::blocking("snapshot", job).await;
        let taken = match taken {
            Ok(Some(t)) => t,
            Ok(None) => return Ok(()),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        for c in &taken.captured {
            (self.events)(&Event::Captured {
                db: self.db.clone(),
                txid: c.info.max_txid,
                pages: c.pages,
                bytes: c.info.size,
                snapshot: c.snapshot,
            });
        }
        let s = &taken.snapshot;
        if newest.is_some_and(|n| n.max_txid >= s.info.max_txid) && !force {
            let _ = std::fs::remove_file(&tmp);
            return Ok(());
        }
        let written = self
            .client
            .write(
                SNAPSHOT_LEVEL,
                s.info.min_txid,
                s.info.max_txid,
                s.info.created_at,
                &tmp,
            )
            .await;
        let _ = std::fs::remove_file(&tmp);
        let info = written?;
        crate::failpoint::hit("snapshot-uploaded");
        (self.events)(&Event::Snapshotted {
            db: self.db.clone(),
            txid: info.max_txid,
            pages: s.pages,
            bytes: info.size,
            duration: started.elapsed(),
        });
        self.note_written(info);
        Ok(())
    }

    /// Marks what the rules allow deleting, and deletes what has waited out the grace
    /// period (`immediate`: everything marked, for `-enforce-retention`).
    async fn retain(&mut self, now: SystemTime, immediate: bool) -> Result<()> {
        let l0_due = immediate
            || self.last_l0_check.is_none_or(|t| {
                now.duration_since(t)
                    .is_ok_and(|d| d >= self.cfg.l0_retention_check_interval)
            });
        if l0_due {
            self.last_l0_check = Some(now);
            let l1_max = self.level(1).last().map(|f| f.max_txid);
            let del = retention::l0_deletable(self.level(0), l1_max, now, self.cfg.l0_retention);
            if self.cfg.l0_retention.is_some() {
                let census = retention::l0_census(self.level(0), l1_max, del.len());
                let counts = [census.eligible, census.not_compacted, census.too_recent];
                crate::metrics::l0_census(&self.db, counts);
            }
            if self.cfg.retention_enabled {
                self.tombstones.mark(del, now);
            }
        }
        // Snapshot retention runs in every evaluation: it is a pure function of the
        // cache, and marking is idempotent.
        let (snaps, floor) = retention::snapshots_deletable(
            self.level(SNAPSHOT_LEVEL),
            now,
            self.cfg.snapshot_retention,
        );
        if self.cfg.retention_enabled && !snaps.is_empty() {
            let mut del = snaps;
            if let Some(floor) = floor {
                for l in 1..SNAPSHOT_LEVEL {
                    del.extend(retention::cascade_deletable(self.level(l), floor));
                }
            }
            self.tombstones.mark(del, now);
        }
        let grace = if immediate {
            Duration::ZERO
        } else {
            self.cfg.delete_grace
        };
        let batching = self.last_delete.is_some_and(|t| {
            now.duration_since(t)
                .is_ok_and(|d| d < self.cfg.delete_interval)
        });
        if batching && !immediate {
            return Ok(());
        }
        let due = self.tombstones.due(now, grace);
        if due.is_empty() {
            return Ok(());
        }
        self.last_delete = Some(now);
        for level in 0..=SNAPSHOT_LEVEL {
            let files: Vec<FileInfo> = due.iter().filter(|f| f.level == level).cloned().collect();
            if files.is_empty() {
                continue;
            }
            let started = Instant::now();
            crate::failpoint::hit("retention-delete-started");
            self.client.delete(&files).await?;
            crate::failpoint::hit("retention-delete-finished");
            self.forget(&files);
            (self.events)(&Event::Deleted {
                db: self.db.clone(),
                level,
                files: files.len(),
                bytes: files.iter().map(|f| f.size).sum(),
                duration: started.elapsed(),
            });
        }
        Ok(())
    }

    /// `-force-snapshot`: a snapshot now, if the database has a position.
    pub async fn force_snapshot(&mut self, now: SystemTime) -> Result<()> {
        self.ensure_listed(now).await?;
        self.snapshot_if_due(now, true).await
    }

    /// `-enforce-retention`: applies the retention rules now, without the grace
    /// period (an operator's explicit request).
    pub async fn enforce_retention(&mut self, now: SystemTime) -> Result<()> {
        self.ensure_listed(now).await?;
        self.retain(now, true).await
    }
}

/// Removes local L0 copies compacted into L1 (TXID ≤ `l1_max`), except the newest
/// local file, which is the database's position.
fn remove_compacted_local(dir: &Path, l1_max: Txid) -> Result<()> {
    let local = crate::capture::list_l0(dir)?;
    let Some((newest, _)) = local.last() else {
        return Ok(());
    };
    for (t, p) in &local {
        if t < newest && *t <= l1_max {
            std::fs::remove_file(p).map_err(Error::io("remove", p))?;
        }
    }
    Ok(())
}

/// Removes local copies of a compaction level (`ltx/<n>`) consumed by the next level
/// (MaxTXID ≤ `max`).
fn remove_local_copies(dir: &Path, max: Txid) -> Result<()> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("list", dir)(e)),
    };
    for e in rd {
        let e = e.map_err(Error::io("list", dir))?;
        if let Some((_, m)) = e
            .file_name()
            .to_str()
            .and_then(tideline_ltx::parse_filename)
            && m <= max
        {
            let p = e.path();
            std::fs::remove_file(&p).map_err(Error::io("remove", &p))?;
        }
    }
    Ok(())
}
