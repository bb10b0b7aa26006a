//! The capture side of a database's task: wakes on change (or the fallback poll),
//! captures committed WAL frames into local L0 files at most once per
//! `monitor-interval`, checkpoints when due, and tells the upload side. It runs beside
//! the uploads, so a slow or stalled destination never delays capture.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::TaskStats;
use super::retry::{MAX_BACKOFF, MAX_CAPTURE_BACKOFF, Retry, paced};
use super::slot::{DbSlot, IdleClose};
use crate::capture::{Captured, Database};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::events::{Event, EventSink, Stage};
use crate::metrics;

/// WAL captured at once beyond which it is flushed before the read mark moves (see
/// `Database::flush_wal`); below it, as after a few small commits, the application's
/// own fsync is short and ours would only add lag.
pub(super) const FLUSH_WAL_BYTES: u64 = 4 << 20;

/// How long a database file may be missing before capture reports it: a removed
/// database of a watched directory is stopped well within it.
const MISSING_GRACE: Duration = Duration::from_secs(2);

/// The capture side of a database's task: runs beside the uploads, so that a slow or
/// stalled destination never delays the capture of commits into local L0 files (each
/// keeps its own restore point, and checkpoints go on).
#[derive(Clone)]
pub(super) struct Capturer {
    pub(super) path: PathBuf,
    pub(super) db: Arc<Mutex<DbSlot>>,
    pub(super) events: EventSink,
    pub(super) monitor_interval: Duration,
    /// Set when capture took another replicator's files as the position.
    pub(super) reloaded: Arc<AtomicBool>,
    pub(super) clock: Clock,
    /// Whether (and when) the database is put away while idle (see `slot`).
    pub(super) idle_close: Option<IdleClose>,
}

impl Capturer {
    pub(super) async fn with_db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Database) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        with_db(&self.db, f).await
    }

    /// The slot, locked briefly (no IO but a stat is done under it here).
    fn slot(&self) -> std::sync::MutexGuard<'_, DbSlot> {
        self.db.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Captures everything committed, checkpointing when due.
    pub(super) async fn capture(&self) -> Result<Vec<Captured>> {
        let clock = self.clock.clone();
        let path = self.path.clone();
        let captured = self
            .with_db(move |db| {
                let out = db.sync_to_end(clock.now())?;
                if out.last().is_some_and(|c| !c.more) {
                    if out.iter().map(|c| c.wal_bytes).sum::<u64>() >= FLUSH_WAL_BYTES {
                        db.flush_wal();
                    }
                    db.advance_read_mark()?;
                }
                let ck = match db.checkpoint_due(Instant::now().into_std()) {
                    Some(mode) => {
                        let started = Instant::now();
                        let ck = db.checkpoint(mode, clock.now(), Instant::now().into_std());
                        let ran = match &ck {
                            Ok(c) if c.deferred => None,
                            Ok(c) => Some((c.mode, true)),
                            Err(_) => Some((mode, false)),
                        };
                        if let Some((mode, ok)) = ran {
                            metrics::checkpointed(&path, mode, started.elapsed(), ok);
                        }
                        Some(ck?)
                    }
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
    pub(super) fn failed(&self, stage: Stage, e: &Error, retry: &mut Retry) {
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
            code: e.code(),
            message: e.to_string(),
            retry_in: retry.backoff,
        });
    }

    /// Clears a stage's retry state, telling listeners if it had been failing.
    pub(super) fn succeeded(&self, stage: Stage, retry: &mut Retry) {
        if retry.failing() {
            (self.events)(&Event::Recovered {
                db: self.path.clone(),
                stage,
            });
        }
        *retry = Retry::default();
    }

    /// Waits for changes and captures them until `stop`, telling the upload side
    /// (`kick`) whenever there is something new. `poll`: how often to look without a
    /// wake-up; `None` for the fallback poll of a database with file-system events.
    pub(super) async fn run(
        &self,
        mut stop: watch::Receiver<bool>,
        wake: &mut mpsc::Receiver<()>,
        poll: Option<Duration>,
        kick: &tokio::sync::Notify,
        stats: &TaskStats,
    ) {
        let mut last_capture: Option<Instant> = None;
        let mut missing_since: Option<Instant> = None;
        // The last capture that found news (or the start): idle time counts from it.
        let mut last_news = Instant::now();
        let mut retry = Retry::default();
        loop {
            if *stop.borrow() {
                break;
            }
            let poll = poll.unwrap_or_else(|| super::retry::fallback_poll(&self.path));
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
            // The database file was removed: a watched directory's database is stopped
            // for it within moments; any other is reported missing once that grace is
            // over (capturing would only fail on its missing write-ahead log).
            if !self.path.exists() {
                let since = *missing_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= MISSING_GRACE {
                    stats.note_capture(false);
                    let e = Error::DatabaseMissing(self.path.clone());
                    self.failed(Stage::Capture, &e, &mut retry);
                }
                continue;
            }
            missing_since = None;
            // Put away and unchanged (our own close's writes wake us too): nothing to
            // capture, and no reason to reopen.
            if self.idle_close.is_some() && self.slot().closed_and_unchanged() {
                // A look that found nothing new, as a capture would have (the
                // heartbeat counts it).
                stats.note_capture(true);
                continue;
            }
            stats.syncs.fetch_add(1, Ordering::Relaxed);
            // Intervals count from the start of a capture, so its own duration does
            // not add up into lag.
            let started = Instant::now();
            let outcome = self.capture().await;
            let wal_bytes = outcome
                .as_ref()
                .map_or(0, |c| c.iter().map(|c| c.wal_bytes).sum());
            let wal = crate::capture::wal_path(&self.path);
            metrics::synced(&self.path, &wal, started.elapsed(), wal_bytes);
            match outcome {
                Ok(captured) => {
                    if !captured.is_empty() {
                        last_capture = Some(started);
                        last_news = started;
                        kick.notify_one();
                    } else if let Some(rule) = self.idle_close
                        && started.duration_since(last_news) >= rule.after
                        && !self.slot().is_closed()
                    {
                        // Everything is captured: the close loses nothing.
                        let _ = with_slot(&self.db, move |s| Ok(s.close_if_small(rule))).await;
                        // Counted from now, so a database too large to close is not
                        // asked again at every look.
                        last_news = Instant::now();
                    }
                    stats.note_capture(true);
                    self.succeeded(Stage::Capture, &mut retry);
                }
                Err(e) => {
                    stats.note_capture(false);
                    self.failed(Stage::Capture, &e, &mut retry);
                }
            }
        }
    }
}

/// Runs `f` on the locked database on a blocking thread (SQLite and file IO block),
/// reopening it first if it was put away.
pub(super) async fn with_db<T: Send + 'static>(
    db: &Arc<Mutex<DbSlot>>,
    f: impl FnOnce(&mut Database) -> Result<T> + Send + 'static,
) -> Result<T> {
    with_slot(db, move |slot| f(slot.get()?)).await
}

/// Runs `f` on the locked slot on a blocking thread.
pub(super) async fn with_slot<T: Send + 'static>(
    db: &Arc<Mutex<DbSlot>>,
    f: impl FnOnce(&mut DbSlot) -> Result<T> + Send + 'static,
) -> Result<T> {
    let db = Arc::clone(db);
    crate::blocking::blocking("database", move || {
        f(&mut db.lock().unwrap_or_else(PoisonError::into_inner))
    })
    .await
}
