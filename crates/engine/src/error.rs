//! The engine's error type: what went wrong, on which path, and what to do about it.

use std::io;
use std::path::PathBuf;

use tideline_ltx::Txid;

use crate::restore::PlanError;
use crate::storage::ReplicaError;

/// Everything the engine reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file-system operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done ("create", "rename", …).
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// An LTX file is corrupt or unreadable.
    #[error("LTX file {name}: {source}")]
    Ltx {
        /// The file (replica path or name).
        name: String,
        /// What is wrong with it.
        #[source]
        source: tideline_ltx::Error,
    },
    /// The newest local L0 file, the database's position, cannot be read: `tideline
    /// reset` drops the local state.
    #[error("the local position of {} is damaged ({}: {source}); run `tideline reset {}` to drop the local state — the replica is untouched, and the next sync writes a fresh snapshot", db.display(), file.display(), db.display())]
    LocalStateDamaged {
        /// The database.
        db: PathBuf,
        /// The damaged file.
        file: PathBuf,
        /// What is wrong with it.
        #[source]
        source: tideline_ltx::Error,
    },
    /// The replica could not be read or written.
    #[error(transparent)]
    Replica(#[from] ReplicaError),
    /// A compaction level cannot be built from the level below.
    #[error(transparent)]
    Compaction(#[from] crate::levels::compaction::CompactionError),
    /// No restore plan reaches the target.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// Restore output already exists and overwriting was not asked for.
    #[error("{} already exists; restore to another path with -o, or pass -force to overwrite it", .0.display())]
    OutputExists(PathBuf),
    /// A SQLite sidecar of another database lies beside the restore output, and
    /// replacing it was not asked for.
    #[error("{} exists; SQLite would apply it to the restored database and corrupt it. Restore to another path with -o, or delete it (`tideline restore -force` removes it)", .0.display())]
    StaleSidecar(PathBuf),
    /// A database file to restore from has a non-empty `-wal` beside it: copying the
    /// file alone would miss the changes in it.
    #[error("{} holds changes not yet in the database file beside it; open and close that database once with SQLite (which checkpoints them), then try again", .0.display())]
    SourceHasWal(PathBuf),
    /// The restore output is a directory.
    #[error("{} is a directory; give the restored database's file path (-o)", .0.display())]
    OutputIsDirectory(PathBuf),
    /// A restored database failed SQLite's integrity check. It was checked before it
    /// was put in place, so the output path was left as it was.
    #[error("the restored database failed PRAGMA {mode}: {detail}; {} was left untouched and the restored copy was deleted (the replica may hold a damaged file: try an earlier restore point)", path.display())]
    IntegrityCheck {
        /// quick_check or integrity_check.
        mode: &'static str,
        /// SQLite's first complaint.
        detail: String,
        /// The output that was not replaced.
        path: PathBuf,
    },
    /// SQLite reported an error.
    #[error("SQLite error on {}: {source}", path.display())]
    Sqlite {
        /// The database.
        path: PathBuf,
        /// The error.
        #[source]
        source: rusqlite::Error,
    },
    /// The database to replicate does not exist.
    #[error("database {} does not exist; check the path (replication starts from an existing SQLite database)", .0.display())]
    DatabaseMissing(PathBuf),
    /// The folder of a `dir:` entry cannot be read.
    #[error("cannot read the directory {} (dbs[].dir): {source}; check the path, or create the folder", dir.display())]
    DirectoryUnreadable {
        /// The folder.
        dir: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A `dir:` entry without `watch:` found no database.
    #[error("no SQLite databases found in directory {} with pattern {pattern:?}; check dir: and pattern:, or add watch: true to wait for databases to appear", dir.display())]
    NoDatabasesInDirectory {
        /// The folder.
        dir: PathBuf,
        /// The `pattern:` of the entry.
        pattern: String,
    },
    /// The file is not a SQLite database.
    #[error("{} is not a SQLite database (it does not start with \"SQLite format 3\"); check the path", .0.display())]
    NotSqlite(PathBuf),
    /// The database is not in WAL mode and could not be switched.
    #[error("{} uses journal_mode={mode} and could not be switched to WAL ({detail}); replication reads the write-ahead log, so run `PRAGMA journal_mode=WAL` on it while no other connection is open", path.display())]
    NotWal {
        /// The database.
        path: PathBuf,
        /// Its journal mode.
        mode: String,
        /// Why switching failed.
        detail: String,
    },
    /// Another replicator holds the database's lock.
    #[error("{} is already being replicated by {} (it holds {}); stop that one first, one replicator per database", db.display(), holder.as_deref().unwrap_or("another process"), lock.display())]
    AlreadyReplicating {
        /// The database.
        db: PathBuf,
        /// The lock file.
        lock: PathBuf,
        /// The holder as its lock file names it ("process 1234 (tideline replicate)").
        holder: Option<String>,
    },
    /// Another program writes L0 files into this database's meta directory (Litestream
    /// running on the same database, or a replicator with another lock directory).
    #[error("another replicator is writing to {} (a Litestream process on the same database?): it wrote {}, which this replicator did not; run one replicator per database", meta.display(), file.display())]
    AnotherReplicator {
        /// The meta directory.
        meta: PathBuf,
        /// The file it wrote.
        file: PathBuf,
    },
    /// A control request named a database this replicator does not replicate.
    #[error("database not found: {}; `tideline list` shows the databases this replicator knows, `tideline register -replica URL DB` adds one", .0.display())]
    NotReplicated(PathBuf),
    /// A control request reached a replicator that is shutting down.
    #[error("replication is stopping; the request was not carried out")]
    ReplicationStopped,
    /// The control socket (`socket:`) could not be served.
    #[error("socket: cannot serve the control socket at {}: {source}; check socket.path (its folder must exist and be writable by this user)", socket.display())]
    ControlSocket {
        /// The socket's path.
        socket: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A control command could not reach the daemon.
    #[error("failed to connect to control socket {}: {source}; is `tideline replicate` (or Litestream) running with `socket: {{enabled: true, path: …}}` in its config? Give that path with -socket", socket.display())]
    ControlUnreachable {
        /// The socket's path.
        socket: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The daemon answered a control command with an error.
    #[error("{command} failed: {message}")]
    ControlRefused {
        /// The command (`start`, `stop`, …).
        command: &'static str,
        /// The daemon's words.
        message: String,
    },
    /// A control command got no answer in time.
    #[error("no answer within {secs} s (a final upload may still be under way); raise -timeout")]
    ControlTimedOut {
        /// The limit.
        secs: u64,
    },
    /// The metrics endpoint (`addr:`) could not listen: the port is taken, or the host
    /// is not an address of this machine.
    #[error(
        "addr: cannot serve metrics on {addr}: {source}; choose a free port (and an address of this machine) in addr:, e.g. addr: \":9090\""
    )]
    MetricsListen {
        /// The address as configured.
        addr: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The replica shows nothing, though this database had shipped to it: a drive not
    /// mounted, a renamed or emptied folder, an emptied bucket. Nothing is written to
    /// it meanwhile; capture goes on locally and uploads resume when it is back.
    #[error("destination missing or changed — is the drive connected? {replica} holds no backup, but this database had shipped TXID {shipped} there; nothing is written to it until it is back (changes are kept locally meanwhile). If it was emptied on purpose, delete {} to start a new backup there", record.display())]
    DestinationMissing {
        /// The replica (no credentials).
        replica: String,
        /// The newest TXID known to have reached it.
        shipped: Txid,
        /// The shipped record to delete to start afresh.
        record: PathBuf,
    },
    /// The WAL file is malformed.
    #[error("write-ahead log {}: {reason}", path.display())]
    Wal {
        /// The WAL file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The configuration cannot be used (a missing replica, a bad S3 setting).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A replica type this build was compiled without.
    #[error(
        "replica type {kind} is not supported by this build of Tideline; use a build with the `{kind}` feature, or a file or s3 replica"
    )]
    ReplicaTypeNotBuilt {
        /// The type, as the config names it.
        kind: &'static str,
    },
    /// Something that should not happen did: a bug, reported instead of a panic.
    #[error("internal error: {0}; this is a bug in Tideline, please report it with the log")]
    Internal(String),
    /// The final sync at shutdown did not finish within `shutdown-sync-timeout` (the
    /// replica stalled); what was not shipped stays in the meta directory.
    #[error("the replica did not finish the final sync within shutdown-sync-timeout ({}); the files not shipped stay in the meta directory and are shipped at the next start (raise shutdown-sync-timeout to wait longer)", crate::config::format_duration(*.timeout))]
    ShutdownSyncTimedOut {
        /// The `shutdown-sync-timeout` that ran out.
        timeout: std::time::Duration,
    },
    /// Restore inputs do not make up a whole database.
    #[error("restore inputs are incomplete: {0}")]
    IncompleteRestore(String),
}

/// What kind of error it is, as a stable name the window, the tray and scripts decide
/// by (serialized snake_case, e.g. `"wrong_credentials"`); the message says the rest.
/// Codes are only ever added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The database file does not exist.
    DatabaseMissing,
    /// The file is not a SQLite database.
    NotSqlite,
    /// The database is not in WAL mode and could not be switched.
    NotWal,
    /// Another process has the database open or replicates it.
    InUse,
    /// The destination shows no backup though this database shipped there.
    DestinationMissing,
    /// The destination could not be read or written.
    DestinationUnavailable,
    /// The S3 endpoint could not be reached (refused, timed out, DNS, TLS).
    DestinationUnreachable,
    /// S3 rejected the keys, or none were found.
    WrongCredentials,
    /// The keys work but may not use this bucket or path.
    AccessDenied,
    /// The S3 bucket does not exist.
    NoSuchBucket,
    /// This machine's clock is too far from the S3 server's.
    ClockSkew,
    /// The bucket is in another region than the one set.
    WrongRegion,
    /// The configuration cannot be used.
    InvalidConfig,
    /// This build cannot do it.
    Unsupported,
    /// The restore output exists already (or a stale sidecar is beside it).
    OutputExists,
    /// No restore point matches.
    NoRestorePoint,
    /// The restored database failed SQLite's integrity check.
    IntegrityFailed,
    /// The replica holds corrupt or incomplete files.
    ReplicaCorrupt,
    /// The local replication state (the meta directory's files) is damaged.
    LocalStateDamaged,
    /// The disk is full.
    DiskFull,
    /// A local file operation or SQLite failed.
    Io,
    /// The database is already in the list.
    AlreadyAdded,
    /// The database is not in the list.
    NotFound,
    /// The database is paused.
    Paused,
    /// A value given is not valid.
    InvalidInput,
    /// No OS keychain is available for the destination's keys (the app keeps them
    /// there, never in plain text).
    KeychainUnavailable,
    /// A bug.
    Internal,
    /// The SSH server's host key is unknown or changed: the server is not trusted.
    HostKeyRejected,
}

impl Error {
    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::DatabaseMissing(_) | Error::NoDatabasesInDirectory { .. } => {
                ErrorCode::DatabaseMissing
            }
            Error::DirectoryUnreadable { source, .. }
                if source.kind() == io::ErrorKind::NotFound =>
            {
                ErrorCode::DatabaseMissing
            }
            Error::DirectoryUnreadable { .. } => ErrorCode::Io,
            Error::NotSqlite(_) => ErrorCode::NotSqlite,
            Error::NotWal { .. } => ErrorCode::NotWal,
            Error::AlreadyReplicating { .. }
            | Error::AnotherReplicator { .. }
            | Error::SourceHasWal(_) => ErrorCode::InUse,
            Error::DestinationMissing { .. } => ErrorCode::DestinationMissing,
            Error::MetricsListen { source, .. } if source.kind() == io::ErrorKind::AddrInUse => {
                ErrorCode::InUse
            }
            Error::MetricsListen { .. } => ErrorCode::InvalidConfig,
            Error::NotReplicated(_) => ErrorCode::NotFound,
            Error::ControlSocket { .. }
            | Error::ControlUnreachable { .. }
            | Error::ControlTimedOut { .. } => ErrorCode::Io,
            Error::ControlRefused { .. } => ErrorCode::InvalidInput,
            Error::ReplicationStopped => ErrorCode::Paused,
            Error::Replica(e) => e.code(),
            Error::ShutdownSyncTimedOut { .. } => ErrorCode::DestinationUnavailable,
            Error::Plan(_) => ErrorCode::NoRestorePoint,
            Error::OutputExists(_) | Error::StaleSidecar(_) => ErrorCode::OutputExists,
            Error::OutputIsDirectory(_) => ErrorCode::InvalidInput,
            Error::IntegrityCheck { .. } => ErrorCode::IntegrityFailed,
            Error::Ltx { .. } | Error::IncompleteRestore(_) | Error::Wal { .. } => {
                ErrorCode::ReplicaCorrupt
            }
            Error::Compaction(_) => ErrorCode::ReplicaCorrupt,
            Error::LocalStateDamaged { .. } => ErrorCode::LocalStateDamaged,
            Error::Config(_) => ErrorCode::InvalidConfig,
            Error::ReplicaTypeNotBuilt { .. } => ErrorCode::Unsupported,
            Error::Io { source, .. } if is_disk_full(source) => ErrorCode::DiskFull,
            Error::Io { .. } | Error::Sqlite { .. } => ErrorCode::Io,
            Error::Internal(_) => ErrorCode::Internal,
        }
    }

    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}

impl ReplicaError {
    /// The stable code of this replica failure (what `Error::Replica` of it has).
    pub fn code(&self) -> ErrorCode {
        use crate::storage::RemoteFailure;
        use crate::storage::S3Failure;
        match self {
            ReplicaError::Missing { .. } => ErrorCode::DestinationMissing,
            ReplicaError::S3 { failure, .. } => match failure {
                S3Failure::Unreachable(_) => ErrorCode::DestinationUnreachable,
                S3Failure::WrongCredentials { .. } | S3Failure::NoCredentials(_) => {
                    ErrorCode::WrongCredentials
                }
                S3Failure::AccessDenied => ErrorCode::AccessDenied,
                S3Failure::NoSuchBucket => ErrorCode::NoSuchBucket,
                S3Failure::ClockSkew => ErrorCode::ClockSkew,
                S3Failure::WrongRegion(_) => ErrorCode::WrongRegion,
                _ => ErrorCode::DestinationUnavailable,
            },
            ReplicaError::Remote { failure, .. } => match failure {
                RemoteFailure::Unreachable(_) => ErrorCode::DestinationUnreachable,
                RemoteFailure::WrongCredentials { .. } => ErrorCode::WrongCredentials,
                RemoteFailure::AccessDenied(_) => ErrorCode::AccessDenied,
                RemoteFailure::HostKeyUnknown { .. } | RemoteFailure::HostKeyChanged { .. } => {
                    ErrorCode::HostKeyRejected
                }
                RemoteFailure::ServerFull(_) => ErrorCode::DiskFull,
                RemoteFailure::NoSuchBucket(_) => ErrorCode::NoSuchBucket,
                RemoteFailure::BadCredentialsFile { .. } => ErrorCode::WrongCredentials,
                // The replica's TLS settings (root-cas, client-cert) must change.
                RemoteFailure::TlsRejected(_) => ErrorCode::InvalidConfig,
                _ => ErrorCode::DestinationUnavailable,
            },
            ReplicaError::Io { source, .. } if is_disk_full(source) => ErrorCode::DiskFull,
            _ => ErrorCode::DestinationUnavailable,
        }
    }
}

/// An error as the window, the tray and scripts receive it: its stable code and the
/// message for people.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorReport {
    /// What kind of error it is.
    pub code: ErrorCode,
    /// What went wrong and what to do, in words.
    pub message: String,
}

impl ErrorReport {
    /// A report with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ErrorReport {
        ErrorReport {
            code,
            message: message.into(),
        }
    }
}

impl From<&Error> for ErrorReport {
    fn from(e: &Error) -> ErrorReport {
        ErrorReport::new(e.code(), e.to_string())
    }
}

impl From<Error> for ErrorReport {
    fn from(e: Error) -> ErrorReport {
        ErrorReport::from(&e)
    }
}

impl std::fmt::Display for ErrorReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ErrorReport {}

/// ENOSPC (or the quota's EDQUOT): no space left for the file being written.
fn is_disk_full(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull || e.kind() == io::ErrorKind::QuotaExceeded
}

/// Result alias of the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;
