//! A database's replication status read from disk and the replica, without a running
//! replicator: what `tideline status` shows. The rule for "behind" and the summary
//! live here so that every front end says the same thing.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tideline_ltx::Txid;

use crate::capture::{MetaDir, wal_path};
use crate::config::DbConfig;
use crate::error::{Error, ErrorReport};
use crate::events::{Event, Stage};
use crate::replicate::{RequestReport, destination_problem, read_request_report};
use crate::restore::list_levels;
use crate::storage::open_client;

/// One database's status, from its files, its meta directory and its replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseReport {
    /// The database file.
    pub path: PathBuf,
    /// The replica (no credentials), if one is configured.
    pub replica: Option<String>,
    /// Bytes of the database file; `None` when it does not exist.
    pub db_size: Option<u64>,
    /// Bytes of its `-wal` (0 when there is none).
    pub wal_size: u64,
    /// The local position: the newest L0 file in the meta directory, what replication
    /// resumes from.
    pub local_txid: Option<Txid>,
    /// The newest TXID in the replica.
    pub replica_txid: Option<Txid>,
    /// The requests the last replicator made to the replica, from its report.
    pub requests: Option<RequestReport>,
    /// What went wrong reading the position or the replica.
    pub error: Option<ErrorReport>,
    /// Gaps and overlaps in the replica's levels ([`crate::levels::validation`]), one
    /// line each; empty when every level is contiguous.
    pub replica_problems: Vec<String>,
}

/// A [`DatabaseReport`] in a few words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Summary {
    /// Reading the position or the replica failed.
    Error,
    /// The database file does not exist.
    DatabaseMissing,
    /// Nothing was replicated yet.
    NotReplicated,
    /// The replica has a backup but there is no local position.
    NoLocalPosition,
    /// Changes captured locally have not reached the replica.
    Behind,
    /// The replica is ahead of the local position (another replicator, or a restore).
    Ahead,
    /// Everything captured is in the replica.
    InSync,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Summary::Error => "error",
            Summary::DatabaseMissing => "database missing",
            Summary::NotReplicated => "not replicated yet",
            Summary::NoLocalPosition => "no local position (next start continues the replica)",
            Summary::Behind => "replica behind",
            Summary::Ahead => "replica ahead",
            Summary::InSync => "in sync",
        })
    }
}

impl DatabaseReport {
    /// Reads a configured database's status. One problem (a missing file, an
    /// unreachable replica) is recorded in [`DatabaseReport::error`] and does not
    /// hide the rest.
    pub async fn read(db: &DbConfig) -> DatabaseReport {
        let mut s = DatabaseReport {
            path: db.path.clone(),
            replica: db.replica.as_ref().map(|r| r.target.to_string()),
            db_size: std::fs::metadata(&db.path).ok().map(|m| m.len()),
            wal_size: std::fs::metadata(wal_path(&db.path)).map_or(0, |m| m.len()),
            local_txid: None,
            replica_txid: None,
            requests: read_request_report(&db.meta_path),
            error: None,
            replica_problems: Vec::new(),
        };
        match MetaDir::new(&db.meta_path).list_l0() {
            Ok(files) => s.local_txid = files.last().map(|(txid, _)| *txid),
            Err(e) => s.error = Some(e.into()),
        }
        match replica_txid(db).await {
            Ok((t, problems)) => (s.replica_txid, s.replica_problems) = (t, problems),
            Err(e) => {
                s.error.get_or_insert(e.into());
            }
        }
        s
    }

    /// Whether changes captured locally have not reached the replica.
    pub fn behind(&self) -> bool {
        self.error.is_none()
            && self
                .local_txid
                .is_some_and(|l| self.replica_txid.is_none_or(|r| r < l))
    }

    /// The status in a few words.
    pub fn summary(&self) -> Summary {
        if self.error.is_some() {
            return Summary::Error;
        }
        if self.db_size.is_none() {
            return Summary::DatabaseMissing;
        }
        match (self.local_txid, self.replica_txid) {
            (None, None) => Summary::NotReplicated,
            (None, Some(_)) => Summary::NoLocalPosition,
            _ if self.behind() => Summary::Behind,
            (Some(l), Some(r)) if r > l => Summary::Ahead,
            _ => Summary::InSync,
        }
    }
}

/// The replica's newest TXID and its levels' problems, or what is wrong with the
/// destination (the same rule the replicator applies before uploading).
async fn replica_txid(db: &DbConfig) -> Result<(Option<Txid>, Vec<String>), Error> {
    let client = open_client(db.require_replica()?)?;
    let levels = list_levels(client.as_ref()).await?;
    if let Some(problem) = destination_problem(&db.meta_path, &client.describe(), &levels) {
        return Err(problem);
    }
    let problems = crate::levels::validation::check_levels(&levels);
    Ok((
        crate::storage::newest_txid(&levels),
        problems.iter().map(ToString::to_string).collect(),
    ))
}

/// Changes captured but not shipped for longer than this make a database "lagging".
pub const LAGGING_AFTER: Duration = Duration::from_secs(15);

/// A database's replication state, as the app shows it (serialized snake_case:
/// `"in_sync"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncState {
    /// Opening the database and reconciling with the replica.
    Starting,
    /// Everything committed is in the replica.
    InSync,
    /// Changes are on their way to the replica.
    Syncing,
    /// Changes have waited more than [`LAGGING_AFTER`] for the replica.
    Lagging,
    /// The last attempt failed; it is retried.
    Error,
    /// Replication is paused by the user.
    Paused,
}

/// A snapshot of one database's replication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbStatus {
    /// The database.
    pub path: PathBuf,
    /// The replica, without credentials.
    pub replica: String,
    /// The state.
    pub state: SyncState,
    /// When changes last reached the replica (or replication found it up to date).
    pub last_sync: Option<SystemTime>,
    /// Commit-to-replica time of the last shipment.
    pub lag: Option<Duration>,
    /// Bytes of the database file plus its WAL.
    pub size: u64,
    /// The newest TXID captured locally.
    pub local_txid: Option<Txid>,
    /// The newest TXID in the replica.
    pub replica_txid: Option<Txid>,
    /// The last error (cleared by the next success).
    pub error: Option<ErrorReport>,
    /// Capture attempts since the task last started (see [`crate::replicate::TaskStats::syncs`]).
    pub syncs: u64,
}

/// Receives a database's status after every change, with the engine event that caused
/// it (`None` for the service's own changes: added, paused, resumed, task ended).
pub type StatusSink = Arc<dyn Fn(&DbStatus, Option<&Event>) + Send + Sync>;

/// What the events told so far.
#[derive(Debug, Default)]
pub(super) struct Track {
    pub(super) started: bool,
    pub(super) paused: bool,
    pub(super) local: Option<Txid>,
    pub(super) replica: Option<Txid>,
    pub(super) last_sync: Option<SystemTime>,
    pub(super) lag: Option<Duration>,
    /// The failing stages, each with its last error (cleared when it recovers).
    pub(super) errors: BTreeMap<Stage, ErrorReport>,
    pub(super) unshipped_since: Option<SystemTime>,
}

impl Track {
    pub(super) fn state(&self, now: SystemTime) -> SyncState {
        if self.paused {
            SyncState::Paused
        } else if !self.errors.is_empty() {
            SyncState::Error
        } else if !self.started {
            SyncState::Starting
        } else if self.local > self.replica {
            let waited = self
                .unshipped_since
                .and_then(|t| now.duration_since(t).ok())
                .unwrap_or_default();
            if waited > LAGGING_AFTER {
                SyncState::Lagging
            } else {
                SyncState::Syncing
            }
        } else {
            SyncState::InSync
        }
    }

    pub(super) fn apply(&mut self, event: &Event, now: SystemTime) {
        match event {
            Event::Started { txid, .. } => {
                self.started = true;
                self.errors.clear();
                self.local = self.local.max(*txid);
                if self.local <= self.replica {
                    self.last_sync.get_or_insert(now);
                }
            }
            Event::Captured { txid, .. } => {
                self.errors.remove(&Stage::Capture);
                self.local = self.local.max(Some(*txid));
                if self.local > self.replica {
                    self.unshipped_since.get_or_insert(now);
                }
            }
            Event::Shipped { txid, lag, .. } => {
                self.errors.remove(&Stage::Ship);
                self.replica = self.replica.max(Some(*txid));
                self.last_sync = Some(now);
                self.lag = Some(*lag);
                if self.local <= self.replica {
                    self.unshipped_since = None;
                }
            }
            Event::Error {
                stage,
                code,
                message,
                ..
            } => {
                self.errors
                    .insert(*stage, ErrorReport::new(*code, message.clone()));
            }
            Event::Recovered { stage, .. } => {
                self.errors.remove(stage);
            }
            // Maintenance of the replica does not change how far it is behind, nor do
            // a watched directory's comings and goings (the app watches no directory).
            Event::Stopped { .. }
            | Event::NewGeneration { .. }
            | Event::Checkpointed { .. }
            | Event::Compacted { .. }
            | Event::Snapshotted { .. }
            | Event::Deleted { .. }
            | Event::Validated { .. }
            | Event::Discovered { .. }
            | Event::Vanished { .. }
            | Event::Heartbeat { .. } => {}
        }
    }
}
