//! Checkpoints of the watched database: when one is due, and the low-stall protocol
//! that copies the WAL into the database and lets SQLite restart it without losing
//! anything uncaptured (see the [`database`](super::database) module docs).
//!
//! A checkpoint runs in explicit phases:
//! 1. lock-free: move our read mark to the WAL's end and PASSIVE-checkpoint, a few
//!    rounds while a busy writer keeps adding frames;
//! 2. under the write lock (briefly; deferred if a busy writer keeps it): capture the
//!    tail, checkpoint it, and check that everything in the WAL is captured and copied;
//! 3. restart the WAL with a write of ours and take a read mark in the new generation.
//!
//! A TRUNCATE checkpoint (the WAL grew huge) first runs those phases, and only if they
//! did not restart the WAL falls back to SQLite's blocking TRUNCATE.

use std::time::{Duration, Instant, SystemTime};

use rusqlite::Connection;

use super::database::{Captured, Database, SnapshotReason};
use super::sqlite::{begin_read, bump_seq, end_read, sqlite_err};
use crate::capture::wal::{FRAME_HEADER_SIZE, WAL_HEADER_SIZE, WalHeader};
use crate::error::Result;

pub use crate::events::CheckpointMode;

/// What a checkpoint did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpointed {
    /// `Passive`, or `Truncate` when SQLite's TRUNCATE ran.
    pub mode: CheckpointMode,
    /// WAL frames at the time, and frames copied into the database.
    pub frames: (i64, i64),
    /// Whether the WAL was then restarted from the beginning.
    pub restarted: bool,
    /// True if the write lock was not granted quickly (a busy writer): only the
    /// lock-free first phase ran, and the checkpoint is retried after a later sync.
    pub deferred: bool,
    /// L0 files captured under the write lock (frames written during the first phase).
    pub captured: Vec<Captured>,
    /// How long the application's writers were held off.
    pub writers_blocked: Duration,
}

/// Most lock-free first-phase rounds of a checkpoint.
const PHASE1_ROUNDS: usize = 3;
/// A tail of at most this many uncaptured frames is left to the locked second phase.
const SMALL_TAIL_FRAMES: u64 = 256;

/// How long phase 2 of a checkpoint first waits for the write lock before deferring
/// (doubling at each deferral, up to `busy-timeout`). Waiting holds nothing, so it costs
/// the application nothing; it only delays our own loop. 100 ms was too short for a
/// writer committing 1 MiB transactions back to back: the barrier was deferred until
/// the WAL reached truncate-page-n and was cut by a TRUNCATE (a full-database L0).
const BARRIER_WAIT: Duration = Duration::from_millis(250);

/// How long phase 2 waits for the application's own checkpoint to finish.
const CHECKPOINT_BUSY_WAIT: Duration = Duration::from_millis(50);

/// Phase 2's result: the checkpoint's (busy, log, checkpointed) and whether the WAL
/// is now captured and copied in full.
type TailCheckpoint = ((i64, i64, i64), bool);

impl Database {
    /// Which checkpoint, if any, is due after a sync that reached the end of the WAL.
    /// The time-based interval counts from the first call (the start of replication),
    /// not from an unknown last checkpoint, so a restart does not checkpoint at once.
    pub fn checkpoint_due(&mut self, now: Instant) -> Option<CheckpointMode> {
        let since = *self.last_checkpoint.get_or_insert(now);
        let pages = self.wal_pages();
        if pages >= self.opts.truncate_page_n {
            Some(CheckpointMode::Truncate)
        } else if pages >= self.opts.min_checkpoint_page_count {
            Some(CheckpointMode::Passive)
        } else if pages > 1
            && let Some(every) = self.opts.checkpoint_interval
            && now.duration_since(since) >= every
        {
            Some(CheckpointMode::Passive)
        } else {
            None
        }
    }

    /// Checkpoints the WAL into the database (see the module docs for the protocol) and
    /// lets SQLite restart it, capturing anything written meanwhile. `now` stamps the
    /// L0 files and the checkpoint time.
    pub fn checkpoint(
        &mut self,
        mode: CheckpointMode,
        now: SystemTime,
        clock: Instant,
    ) -> Result<Checkpointed> {
        self.last_checkpoint = Some(clock);
        // Even at truncate-page-n (~500 MB: a bulk load, or a writer that kept our
        // barrier out) the PASSIVE protocol goes first, as Litestream does: when it
        // restarts the WAL nothing is lost and no full copy is needed.
        let passive = self.checkpoint_passive(now)?;
        if mode == CheckpointMode::Passive || passive.restarted {
            return Ok(passive);
        }
        self.checkpoint_truncate(now, passive.captured)
    }

    /// The low-stall protocol: phases 1 to 3 of the module docs.
    fn checkpoint_passive(&mut self, now: SystemTime) -> Result<Checkpointed> {
        let mut captured = Vec::new();
        self.copy_lock_free(now, &mut captured)?;
        if !self.take_write_lock()? {
            return Ok(Checkpointed {
                mode: CheckpointMode::Passive,
                frames: (0, 0),
                restarted: false,
                deferred: true,
                captured,
                writers_blocked: Duration::ZERO,
            });
        }
        let t = Instant::now();
        let tail = self.checkpoint_tail(now, &mut captured);
        let rollback = self
            .writer
            .execute_batch("ROLLBACK")
            .map_err(sqlite_err(&self.path));
        let writers_blocked = t.elapsed();
        let ((_, log, done), complete) = tail?;
        rollback?;
        let restarted = complete && self.restart_wal()?;
        Ok(Checkpointed {
            mode: CheckpointMode::Passive,
            frames: (log, done),
            restarted,
            deferred: false,
            captured,
            writers_blocked,
        })
    }

    /// Phase 1, no lock: move our read mark to the WAL's end and copy what we can.
    /// (If another process restarts the WAL in the instant our mark is released, the
    /// next sync sees unexpected salts and writes a full L0: safe.) A busy writer adds
    /// frames while this runs; repeating it shrinks what phase 2 must capture and copy
    /// while writers wait.
    fn copy_lock_free(&mut self, now: SystemTime, captured: &mut Vec<Captured>) -> Result<()> {
        let sq = sqlite_err(&self.path);
        for round in 0..PHASE1_ROUNDS {
            if round > 0 {
                self.sync_all(now, captured)?;
            }
            self.advance_read_mark()?;
            // `log` is the number of frames in the current WAL generation (the file
            // itself is reused, not shrunk, so its length says nothing).
            let (_, log, _) =
                checkpoint_pragma(&self.writer, CheckpointMode::Passive).map_err(&sq)?;
            if log.max(0) as u64 <= self.wal_pages() + SMALL_TAIL_FRAMES {
                break;
            }
        }
        Ok(())
    }

    /// Takes the write lock for phase 2: false if a busy writer kept it. SQLite's lock
    /// waits are not fair: a writer that never pauses can keep the lock from us
    /// indefinitely. So try briefly and, if refused, leave the rest of the checkpoint
    /// to a later sync (phase 1 already copied most of the WAL).
    fn take_write_lock(&mut self) -> Result<bool> {
        let sq = sqlite_err(&self.path);
        let wait = (BARRIER_WAIT * 2u32.saturating_pow(self.deferrals.min(16)))
            .min(self.opts.busy_timeout.max(BARRIER_WAIT));
        self.writer.busy_timeout(wait).map_err(&sq)?;
        let began = self.writer.execute_batch("BEGIN IMMEDIATE");
        self.writer
            .busy_timeout(self.opts.busy_timeout)
            .map_err(&sq)?;
        match began {
            Ok(()) => {
                self.deferrals = 0;
                Ok(true)
            }
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => {
                self.deferrals += 1;
                Ok(false)
            }
            Err(e) => Err(sq(e)),
        }
    }

    /// Phase 2, writers held off (the caller holds the write lock and releases it):
    /// capture the tail and checkpoint it.
    fn checkpoint_tail(
        &mut self,
        now: SystemTime,
        captured: &mut Vec<Captured>,
    ) -> Result<TailCheckpoint> {
        let sq = sqlite_err(&self.path);
        self.sync_all(now, captured)?;
        end_read(self.reader()).map_err(&sq)?;
        let r = passive_while_busy(self.reader()).map_err(&sq);
        begin_read(self.reader()).map_err(&sq)?;
        // Everything committed was captured just now, under the write lock.
        self.restart_safe = true;
        let r = r?;
        let end = self.pos.map_or(0, |p| p.wal_end);
        let frames_end = WAL_HEADER_SIZE as u64
            + r.1.max(0) as u64 * (FRAME_HEADER_SIZE as u64 + u64::from(self.page_size));
        // Everything in the WAL is captured and copied: it may restart now.
        Ok((r, r.1 == r.2 && frames_end == end))
    }

    /// Phase 3, after a complete phase 2: the next write restarts the WAL (salt-1 + 1,
    /// a new salt-2). Make it ours, so it happens now, then take a read mark in the new
    /// generation. True if the WAL did restart.
    fn restart_wal(&mut self) -> Result<bool> {
        let Some(pos) = self.pos else {
            return Ok(false);
        };
        self.restart_expected = Some((pos.salts.0.wrapping_add(1), 0));
        bump_seq(&self.writer).map_err(sqlite_err(&self.path))?;
        let mut restarted = false;
        if let Ok(h) = read_wal_header(&self.wal_path)
            && h.salt1 == pos.salts.0.wrapping_add(1)
        {
            self.restart_expected = Some((h.salt1, h.salt2));
            restarted = true;
        } else {
            self.restart_expected = None;
        }
        self.advance_read_mark()?;
        Ok(restarted)
    }

    /// SQLite's TRUNCATE, after the PASSIVE protocol could not restart the WAL: blocks
    /// writers until done; the next sync sees the reset WAL and writes a full-database
    /// L0, as Litestream does. `captured` is what the PASSIVE attempt captured.
    fn checkpoint_truncate(
        &mut self,
        now: SystemTime,
        mut captured: Vec<Captured>,
    ) -> Result<Checkpointed> {
        let sq = sqlite_err(&self.path);
        let t = Instant::now();
        self.sync_all(now, &mut captured)?;
        end_read(self.reader()).map_err(&sq)?;
        let r = checkpoint_pragma(self.reader(), CheckpointMode::Truncate).map_err(&sq);
        // Frames committed between that capture and the checkpoint went into the
        // database file uncaptured: the next sync writes the whole database.
        self.force_snapshot = Some(SnapshotReason::TruncateCheckpoint);
        begin_read(self.reader()).map_err(&sq)?;
        self.restart_safe = false;
        let (_, log, done) = r?;
        Ok(Checkpointed {
            mode: CheckpointMode::Truncate,
            frames: (log, done),
            restarted: true,
            deferred: false,
            captured,
            writers_blocked: t.elapsed(),
        })
    }

    /// Syncs until the WAL is captured to its end.
    fn sync_all(&mut self, now: SystemTime, out: &mut Vec<Captured>) -> Result<()> {
        out.extend(self.sync_to_end(now)?);
        Ok(())
    }
}

fn read_wal_header(path: &std::path::Path) -> std::io::Result<WalHeader> {
    use std::io::Read;
    let mut b = [0u8; WAL_HEADER_SIZE];
    std::fs::File::open(path)?.read_exact(&mut b)?;
    WalHeader::decode(&b).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// A PASSIVE checkpoint that, while we hold the write lock, waits out a checkpoint the
/// application is running at that moment. SQLite answers PASSIVE with "busy" at once
/// when another connection holds the checkpointer lock, and under a busy writer that
/// is often: SQLite's automatic checkpoint runs after every commit once the WAL is past
/// `wal_autocheckpoint` pages. Without the retry the WAL could not restart, grew to
/// `truncate-page-n` and was cut by a TRUNCATE (a full-database L0 and a long stall).
/// The application's checkpoint cannot start a new commit meanwhile (we hold the
/// write lock), so it ends soon; the wait is bounded all the same.
fn passive_while_busy(c: &Connection) -> rusqlite::Result<(i64, i64, i64)> {
    let deadline = Instant::now() + CHECKPOINT_BUSY_WAIT;
    loop {
        let r = checkpoint_pragma(c, CheckpointMode::Passive)?;
        if r.0 == 0 || Instant::now() >= deadline {
            return Ok(r);
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// `PRAGMA wal_checkpoint(<mode>)`: (busy, log frames, checkpointed frames).
fn checkpoint_pragma(c: &Connection, mode: CheckpointMode) -> rusqlite::Result<(i64, i64, i64)> {
    c.query_row(
        &format!("PRAGMA wal_checkpoint({})", mode.pragma()),
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
}
