//! The engine's event vocabulary: what replication reports as it goes, per database
//! and stage, to the CLI's log, the app's window and tray, and the service's status.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tideline_ltx::Txid;

use crate::error::ErrorCode;

/// What replication reports as it goes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// A database's replication started.
    Started {
        /// The database.
        db: PathBuf,
        /// The replica (no credentials).
        replica: String,
        /// The local TXID after reconciling with the replica.
        txid: Option<Txid>,
    },
    /// Changes were captured into an L0 file.
    Captured {
        /// The database.
        db: PathBuf,
        /// Its TXID.
        txid: Txid,
        /// Pages in it.
        pages: u32,
        /// Bytes.
        bytes: u64,
        /// Set when it holds the whole database, with why.
        snapshot: Option<SnapshotReason>,
    },
    /// Files reached the replica.
    Shipped {
        /// The database.
        db: PathBuf,
        /// Files uploaded.
        files: usize,
        /// Bytes uploaded.
        bytes: u64,
        /// The replica's TXID now.
        txid: Txid,
        /// Time from the oldest capture among them to its arrival.
        lag: Duration,
    },
    /// The WAL was checkpointed into the database.
    Checkpointed {
        /// The database.
        db: PathBuf,
        /// PASSIVE or TRUNCATE.
        mode: CheckpointMode,
        /// Whether the WAL restarted.
        restarted: bool,
        /// How long the application's writers were held off.
        writers_blocked: Duration,
    },
    /// Something failed; it is retried. The other stages go on: a failing upload does
    /// not stop capture, a failing compaction neither capture nor upload.
    Error {
        /// The database.
        db: PathBuf,
        /// Which stage failed.
        stage: Stage,
        /// What kind of failure it is.
        code: ErrorCode,
        /// What failed, in words.
        message: String,
        /// When the next attempt is.
        retry_in: Duration,
    },
    /// A stage that had failed works again.
    Recovered {
        /// The database.
        db: PathBuf,
        /// The stage.
        stage: Stage,
    },
    /// The replica did not hold what this machine had shipped to it (another writer,
    /// a restored or emptied-and-refilled destination): replication starts a
    /// consistent new generation there, the whole database at `txid`.
    NewGeneration {
        /// The database.
        db: PathBuf,
        /// What was found, in words.
        reason: String,
        /// The TXID the whole-database copy will have.
        txid: Txid,
    },
    /// Files of one level were merged into the next level.
    Compacted {
        /// The database.
        db: PathBuf,
        /// The level written (1..=8).
        level: u8,
        /// Input files merged.
        files: usize,
        /// Of those, read from local L0 copies instead of the replica.
        local_files: usize,
        /// First TXID of the output.
        min_txid: Txid,
        /// Last TXID of the output.
        max_txid: Txid,
        /// Bytes of the inputs.
        bytes_in: u64,
        /// Bytes of the output.
        bytes: u64,
        /// Merge and upload time.
        duration: Duration,
    },
    /// A full snapshot (level 9) was written.
    Snapshotted {
        /// The database.
        db: PathBuf,
        /// Its MaxTXID.
        txid: Txid,
        /// Pages.
        pages: u32,
        /// Bytes.
        bytes: u64,
        /// Read, write and upload time.
        duration: Duration,
    },
    /// Retention deleted files of one level from the replica.
    Deleted {
        /// The database.
        db: PathBuf,
        /// The level.
        level: u8,
        /// Files deleted.
        files: usize,
        /// Their bytes.
        bytes: u64,
        /// Time of the delete request(s).
        duration: Duration,
    },
    /// The heartbeat URL was requested (every database had replicated within the
    /// heartbeat interval), or the request failed.
    Heartbeat {
        /// The URL, without credentials.
        url: String,
        /// Why the request failed; `None` when the monitor answered 2xx.
        error: Option<String>,
    },
    /// The replica's levels were checked for gaps and overlaps (`validation:`).
    Validated {
        /// The database.
        db: PathBuf,
        /// What was found, one line each (empty: every level is contiguous).
        problems: Vec<String>,
    },
    /// A database appeared in a watched directory (`dir:` with `watch: true`) and is
    /// replicated from now on.
    Discovered {
        /// The database.
        db: PathBuf,
        /// The directory's folder.
        dir: PathBuf,
    },
    /// A database of a watched directory was removed (or renamed away): it stops
    /// after shipping what it captured. Its replica stays.
    Vanished {
        /// The database.
        db: PathBuf,
    },
    /// A database's replication stopped.
    Stopped {
        /// The database.
        db: PathBuf,
        /// The replica's TXID at the end.
        txid: Option<Txid>,
        /// Files still waiting to be shipped (0 after a clean stop).
        pending: usize,
    },
}

/// The stages of a database's replication, each retried on its own after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Stage {
    /// Opening the database (a missing file, a lock held by another replicator).
    Open,
    /// Capturing committed WAL frames into local L0 files.
    Capture,
    /// Matching with the replica and uploading L0 files to it.
    Ship,
    /// Compaction, snapshots and retention.
    Maintain,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::Open => "opening the database",
            Stage::Capture => "capture",
            Stage::Ship => "upload",
            Stage::Maintain => "maintenance",
        })
    }
}

impl Event {
    /// True for failures.
    pub fn is_error(&self) -> bool {
        matches!(
            self,
            Event::Error { .. } | Event::Heartbeat { error: Some(_), .. }
        ) || matches!(self, Event::Stopped { pending, .. } if *pending > 0)
            || matches!(self, Event::Validated { problems, .. } if !problems.is_empty())
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(db) = self.db() {
            write!(f, "{}: ", db.display())?;
        }
        // `db` matches every variant without a wildcard, so a new event cannot be
        // added without coming here; one with no words yet shows its fields.
        let text = self.flow_text().or_else(|| self.upkeep_text());
        f.write_str(&text.unwrap_or_else(|| format!("{self:?}")))
    }
}

impl Event {
    /// The database the event is about; `None` for the heartbeat, which is about all.
    pub fn db(&self) -> Option<&std::path::Path> {
        Some(match self {
            Event::Started { db, .. }
            | Event::Captured { db, .. }
            | Event::Shipped { db, .. }
            | Event::Checkpointed { db, .. }
            | Event::Error { db, .. }
            | Event::Recovered { db, .. }
            | Event::NewGeneration { db, .. }
            | Event::Compacted { db, .. }
            | Event::Snapshotted { db, .. }
            | Event::Deleted { db, .. }
            | Event::Validated { db, .. }
            | Event::Discovered { db, .. }
            | Event::Vanished { db }
            | Event::Stopped { db, .. } => db,
            Event::Heartbeat { .. } => return None,
        })
    }

    /// The words for the data flowing (start, capture, upload, checkpoint, stop);
    /// `None` for the other events.
    fn flow_text(&self) -> Option<String> {
        Some(match self {
            Event::Started { replica, txid, .. } => format!(
                "replicating to {replica} from TXID {}",
                txid.map_or("none (first sync)".into(), |t| t.to_string())
            ),
            Event::Captured {
                txid,
                pages,
                bytes,
                snapshot,
                ..
            } => {
                let whole = snapshot
                    .as_ref()
                    .map(|r| format!(" (whole database: {r})"))
                    .unwrap_or_default();
                format!("captured TXID {txid}: {pages} pages, {bytes} bytes{whole}")
            }
            Event::Shipped {
                files,
                bytes,
                txid,
                lag,
                ..
            } => format!(
                "shipped {files} file(s), {bytes} bytes, replica at TXID {txid}, lag {} ms",
                lag.as_millis()
            ),
            Event::Checkpointed {
                mode,
                restarted,
                writers_blocked,
                ..
            } => format!(
                "checkpoint {mode}{}, writers held {} ms",
                if *restarted { ", WAL restarted" } else { "" },
                writers_blocked.as_millis()
            ),
            Event::Discovered { dir, .. } => {
                format!("new database in {}, replicating it", dir.display())
            }
            Event::Vanished { .. } => {
                "removed from its directory; stopping (its replica stays)".to_owned()
            }
            Event::Stopped { txid, pending, .. } => format!(
                "stopped at replica TXID {}{}",
                txid.map_or("none".into(), |t| t.to_string()),
                if *pending > 0 {
                    format!("; {pending} file(s) NOT shipped (kept in the meta directory)")
                } else {
                    String::new()
                }
            ),
            _ => return None,
        })
    }

    /// The words for upkeep and trouble (compaction, snapshot, retention, a new
    /// generation, failures and recoveries).
    fn upkeep_text(&self) -> Option<String> {
        Some(match self {
            Event::Error {
                stage,
                message,
                retry_in,
                ..
            } => format!(
                "{stage} failed: {message}; retrying in {} s",
                retry_in.as_secs_f32()
            ),
            Event::Recovered { stage, .. } => format!("{stage} works again"),
            Event::Heartbeat { url, error: None } => format!("heartbeat sent to {url}"),
            Event::Heartbeat {
                url,
                error: Some(e),
            } => format!("heartbeat to {url} failed: {e}; trying again at the next interval"),
            Event::NewGeneration { reason, txid, .. } => format!(
                "the replica was changed by someone else ({reason}); starting a new generation there with the whole database at TXID {txid}"
            ),
            Event::Compacted {
                level,
                files,
                local_files,
                min_txid,
                max_txid,
                bytes_in,
                bytes,
                duration,
                ..
            } => format!(
                "compacted {files} file(s) ({local_files} local), {bytes_in} bytes, into level {level} {min_txid}-{max_txid}, {bytes} bytes, in {} ms",
                duration.as_millis()
            ),
            Event::Snapshotted {
                txid,
                pages,
                bytes,
                duration,
                ..
            } => format!(
                "snapshot at TXID {txid}: {pages} pages, {bytes} bytes, in {} ms",
                duration.as_millis()
            ),
            Event::Validated { problems, .. } if problems.is_empty() => {
                "validation: every level is contiguous".to_owned()
            }
            Event::Validated { problems, .. } => format!(
                "validation found {} problem(s): {}",
                problems.len(),
                problems.join("; ")
            ),
            Event::Deleted {
                level,
                files,
                bytes,
                duration,
                ..
            } => format!(
                "retention deleted {files} level-{level} file(s), {bytes} bytes, in {} ms",
                duration.as_millis()
            ),
            _ => return None,
        })
    }
}

/// Which checkpoint to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckpointMode {
    /// Copy what can be copied without blocking the application's writers (they are
    /// held off only briefly, for the tail), then restart the WAL.
    Passive,
    /// As `Passive` first; if the WAL could not be restarted that way, SQLite's
    /// TRUNCATE, which blocks writers until done.
    Truncate,
}

impl CheckpointMode {
    /// The mode's word in `PRAGMA wal_checkpoint(...)`, as events and logs show it.
    pub fn pragma(self) -> &'static str {
        match self {
            CheckpointMode::Passive => "PASSIVE",
            CheckpointMode::Truncate => "TRUNCATE",
        }
    }
}

impl std::fmt::Display for CheckpointMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.pragma())
    }
}

/// Why a full-database L0 was written instead of an incremental one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnapshotReason {
    /// The first capture of this database (no position).
    FirstSync,
    /// The WAL was restarted by another process.
    WalRestarted,
    /// The WAL is shorter than the position: truncated by another process.
    WalTruncated,
    /// The frame before the position no longer matches: overwritten.
    WalOverwritten,
    /// After a TRUNCATE checkpoint, which may have copied frames written after the
    /// last capture straight into the database.
    TruncateCheckpoint,
    /// The position came from the replica (a new machine, a restore, a reset replica):
    /// the database is copied whole once to continue the replica's TXIDs.
    ReplicaPosition,
}

impl std::fmt::Display for SnapshotReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SnapshotReason::FirstSync => "first sync",
            SnapshotReason::WalRestarted => "WAL restarted by another process",
            SnapshotReason::WalTruncated => "WAL truncated by another process",
            SnapshotReason::WalOverwritten => "WAL overwritten by another process",
            SnapshotReason::TruncateCheckpoint => "TRUNCATE checkpoint",
            SnapshotReason::ReplicaPosition => "continuing the replica's TXIDs",
        })
    }
}

/// Where replication reports events.
pub type EventSink = Arc<dyn Fn(&Event) + Send + Sync>;
