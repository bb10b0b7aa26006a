//! Snapshots (level 9): when one is due (a pure function of the listing and the time)
//! and taking one from the live database.
//!
//! As in Litestream 0.5, a snapshot is a full-database LTX file (MinTXID 1, MaxTXID the
//! captured position) read from the database file plus the WAL frames up to the
//! captured offset, written once per wall-clock-aligned `snapshot.interval` window
//! (00:00 UTC with the default 24 h) when the database has moved past the newest
//! snapshot, and at start when the replica has none. The application is never
//! blocked: pages are read under the read transaction replication already holds; only
//! our own captures and checkpoints wait while the snapshot is written.

use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tideline_ltx::Txid;

use crate::capture::{Captured, Database};
use crate::error::Result;
use crate::storage::FileInfo;

/// True if a snapshot should be taken now: the replica's newest TXID (`replica_max`,
/// over all levels) is past the newest snapshot, and no snapshot was taken in the
/// current window (`last_window` in memory, `newest.created_at` in the replica).
pub fn snapshot_due(
    newest: Option<&FileInfo>,
    replica_max: Option<Txid>,
    last_window: Option<SystemTime>,
    now: SystemTime,
    interval: Duration,
) -> bool {
    let Some(max) = replica_max else { return false };
    let Some(newest) = newest else { return true };
    max > newest.max_txid
        && crate::levels::compaction::level_due(last_window, Some(newest.created_at), now, interval)
}

/// What taking a snapshot produced.
#[derive(Debug)]
pub struct SnapshotTaken {
    /// The snapshot file (level 9), written at the path given.
    pub snapshot: Captured,
    /// L0 files captured just before it (the snapshot covers them; they are shipped
    /// as usual).
    pub captured: Vec<Captured>,
}

/// Something that can write a full snapshot of a database at its captured position.
/// Blocking; called on a blocking thread.
pub trait SnapshotSource: Send + Sync {
    /// Writes the snapshot to `dst`, timestamped `now`; `None` if the database has
    /// no position yet.
    fn take_snapshot(&self, dst: &Path, now: SystemTime) -> Result<Option<SnapshotTaken>>;
}

impl SnapshotSource for Mutex<Database> {
    /// Captures what is committed, then writes the snapshot before the read mark moves
    /// (see `Database::write_snapshot` for why that order makes it consistent).
    fn take_snapshot(&self, dst: &Path, now: SystemTime) -> Result<Option<SnapshotTaken>> {
        snapshot_locked(
            &mut self.lock().unwrap_or_else(PoisonError::into_inner),
            dst,
            now,
        )
    }
}

/// [`SnapshotSource::take_snapshot`] on a database already locked by the caller.
pub(crate) fn snapshot_locked(
    db: &mut Database,
    dst: &Path,
    now: SystemTime,
) -> Result<Option<SnapshotTaken>> {
    let captured = db.sync_to_end(now)?;
    let snapshot = db.write_snapshot(dst, now)?;
    db.advance_read_mark()?;
    Ok(snapshot.map(|snapshot| SnapshotTaken { snapshot, captured }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn snap(max: u64, created: u64) -> FileInfo {
        FileInfo {
            level: 9,
            min_txid: Txid(1),
            max_txid: Txid(max),
            size: 1,
            created_at: at(created),
        }
    }

    #[test]
    fn due_at_start_and_once_per_window_when_the_database_moved() {
        let day = Duration::from_secs(86_400);
        // Nothing replicated: nothing to snapshot.
        assert!(!snapshot_due(None, None, None, at(10), day));
        // No snapshot yet: take one at once.
        assert!(snapshot_due(None, Some(Txid(3)), None, at(10), day));
        let s = snap(3, 10);
        // Same window, or nothing new: no.
        assert!(!snapshot_due(Some(&s), Some(Txid(9)), None, at(5000), day));
        assert!(!snapshot_due(
            Some(&s),
            Some(Txid(3)),
            None,
            at(90_000),
            day
        ));
        // Next window and the database moved.
        assert!(snapshot_due(Some(&s), Some(Txid(9)), None, at(86_400), day));
        assert!(!snapshot_due(
            Some(&s),
            Some(Txid(9)),
            Some(at(86_400)),
            at(86_401),
            day
        ));
    }
}
