//! What commands and events carry to the window (JSON, times in milliseconds since the
//! Unix epoch, TXIDs as numbers).

use std::time::{Duration, SystemTime};

use serde::Serialize;
use tideline_engine::{DbStatus, PointKind, RestorePhase, RestorePoint, SyncState};

use crate::error::AppError;

/// Milliseconds since the Unix epoch.
pub fn ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn dur_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A database as the list shows it (also the payload of the `db-status` event).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DbView {
    /// The database file.
    pub path: String,
    /// Its file name.
    pub name: String,
    /// The destination, without credentials.
    pub destination: String,
    /// `starting`, `in_sync`, `syncing`, `lagging`, `error` or `paused`.
    pub state: SyncState,
    /// Last time changes reached the destination.
    pub last_sync_ms: Option<u64>,
    /// Commit-to-destination time of the last shipment.
    pub lag_ms: Option<u64>,
    /// Bytes of the database and its WAL.
    pub size: u64,
    /// Newest TXID captured.
    pub local_txid: Option<u64>,
    /// Newest TXID at the destination.
    pub replica_txid: Option<u64>,
    /// The last error, `{code, message}`.
    pub error: Option<AppError>,
}

impl From<&DbStatus> for DbView {
    fn from(s: &DbStatus) -> DbView {
        DbView {
            path: s.path.display().to_string(),
            name: s
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            destination: s.replica.clone(),
            state: s.state,
            last_sync_ms: s.last_sync.map(ms),
            lag_ms: s.lag.map(dur_ms),
            size: s.size,
            local_txid: s.local_txid.map(|t| t.0),
            replica_txid: s.replica_txid.map(|t| t.0),
            error: s.error.clone(),
        }
    }
}

/// One restore point.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PointView {
    /// TXID after restoring it.
    pub txid: u64,
    /// When it reached the destination.
    pub created_at_ms: u64,
    /// `snapshot`, `compacted` or `change`.
    pub kind: PointKind,
    /// Replica level of the file ending there.
    pub level: u8,
}

impl From<&RestorePoint> for PointView {
    fn from(p: &RestorePoint) -> PointView {
        PointView {
            txid: p.txid.0,
            created_at_ms: ms(p.created_at),
            kind: p.kind,
            level: p.level,
        }
    }
}

/// What an inspected file is.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct InspectView {
    /// The path as given.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// `PRAGMA journal_mode`.
    pub journal_mode: String,
    /// Already in WAL mode.
    pub is_wal: bool,
}

/// Result of a restore.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RestoreView {
    /// The restored file (the database itself, in place).
    pub output: String,
    /// The TXID it is at.
    pub txid: u64,
    /// Bytes written.
    pub bytes: u64,
    /// `PRAGMA integrity_check` said ok.
    pub verified: bool,
    /// The safety copy made before an in-place restore: the restore point to undo
    /// it with (`undo_restore`).
    pub safety_copy: Option<String>,
}

impl RestoreView {
    /// The view of an in-place restore (or its undo).
    pub fn in_place(path: String, done: &tideline_engine::InPlaceRestore) -> Self {
        RestoreView {
            output: path,
            txid: done.restored.txid.0,
            bytes: done.restored.bytes,
            verified: true,
            safety_copy: Some(done.safety_copy.display().to_string()),
        }
    }
}

/// Payload of the `restore-progress` event.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RestoreProgress {
    /// The database being restored.
    pub path: String,
    /// `planning`, `writing` (with `files`, the files in the plan) or `verified`.
    #[serde(flatten)]
    pub phase: RestorePhase,
}

/// Result of testing a destination.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TestView {
    /// What was tested, without credentials.
    pub destination: String,
    /// Newest TXID already there (a replica of this database from earlier).
    pub replica_txid: Option<u64>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The shapes `ui/src/api.ts` is written against.
    #[test]
    fn payloads_have_the_shapes_the_window_expects() {
        let writing = RestoreProgress {
            path: "/a.db".into(),
            phase: RestorePhase::Writing { files: 3 },
        };
        assert_eq!(
            serde_json::to_value(&writing).unwrap(),
            json!({"path": "/a.db", "phase": "writing", "files": 3})
        );
        let planning = RestoreProgress {
            path: "/a.db".into(),
            phase: RestorePhase::Planning,
        };
        assert_eq!(
            serde_json::to_value(&planning).unwrap(),
            json!({"path": "/a.db", "phase": "planning"})
        );
        assert_eq!(
            serde_json::to_value(SyncState::InSync).unwrap(),
            json!("in_sync")
        );
        assert_eq!(
            serde_json::to_value(PointKind::Compacted).unwrap(),
            json!("compacted")
        );
        let err = AppError::new(tideline_engine::ErrorCode::DestinationMissing, "gone");
        assert_eq!(
            serde_json::to_value(&err).unwrap(),
            json!({"code": "destination_missing", "message": "gone"})
        );
    }
}
