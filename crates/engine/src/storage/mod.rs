//! Replicas: where LTX files are kept, by level, and the client trait every backend
//! implements.
//!
//! A replica holds immutable LTX files named `%016x-%016x.ltx` in one directory per
//! level. Backends: [`file::FileReplica`] (a folder, Litestream's exact layout),
//! [`s3::S3Replica`] (S3 and S3-compatible stores, Litestream's S3 layout),
//! [`webdav::WebDavReplica`] (a WebDAV folder), `sftp::SftpReplica` (an SSH server, with
//! the `sftp` feature), `abs::AbsReplica` (Azure Blob Storage, with the `abs` feature),
//! `gs::GsReplica` (Google Cloud Storage, with the `gs` feature), `nats::NatsReplica` (a
//! NATS JetStream object store, with the `nats` feature), all in Litestream's layouts,
//! and [`memory::MemoryReplica`] (for fast tests).
//!
//! Writes upload a complete local file: the engine always has one (the L0 file in the
//! meta directory, or a compaction or snapshot written to a temporary file first), so a
//! failed upload is retried from the same bytes, and a listing never shows a partial
//! file.

use std::fmt::Debug;
use std::io::Read;
use std::ops::Range;
use std::path::Path;
use std::time::SystemTime;

use tideline_ltx::Txid;

#[cfg(feature = "abs")]
pub mod abs;
pub(crate) mod cache;
pub mod counters;
pub mod durable;
pub mod file;
#[cfg(feature = "gs")]
pub mod gs;
pub mod memory;
mod metered;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "oss")]
pub mod oss;
mod queue_reader;
pub mod remote;
pub mod s3;
#[cfg(feature = "sftp")]
pub mod sftp;
pub mod webdav;

pub use counters::RequestCounts;
pub use remote::{MissingBucket, RemoteFailure};
pub use s3::S3Failure;

pub use tideline_ltx::{MAX_COMPACTION_LEVEL, SNAPSHOT_LEVEL};

/// One LTX file in a replica, as a listing describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// 0 for per-sync files, 1..=8 for compactions, 9 for snapshots.
    pub level: u8,
    /// First TXID covered.
    pub min_txid: Txid,
    /// Last TXID covered.
    pub max_txid: Txid,
    /// Size in bytes.
    pub size: u64,
    /// Creation time: the header timestamp, kept as mtime (folders) or metadata (S3).
    pub created_at: SystemTime,
}

impl FileInfo {
    /// The file's name, `%016x-%016x.ltx`.
    pub fn filename(&self) -> String {
        tideline_ltx::format_filename(self.min_txid, self.max_txid)
    }
}

/// What went wrong talking to a replica.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicaError {
    /// The file is not in the replica (deleted by retention, or never written).
    #[error("{replica}: level {level} file {name} does not exist")]
    NotFound {
        /// The replica, as [`ReplicaClient::describe`] gives it.
        replica: String,
        /// The level.
        level: u8,
        /// The file name.
        name: String,
    },
    /// The destination is gone (a folder removed or a drive unmounted while
    /// replicating); it is not recreated.
    #[error(
        "{replica}: destination missing — is the drive connected? ({what}; it is not recreated, so that no partial backup starts on an empty mount point)"
    )]
    Missing {
        /// The replica.
        replica: String,
        /// What is missing.
        what: String,
    },
    /// Level outside 0..=9.
    #[error("level {0} is not a replica level (0 to 9)")]
    BadLevel(u8),
    /// An I/O error at the replica.
    #[error("{replica}: {op} {path}: {source}")]
    Io {
        /// The replica.
        replica: String,
        /// What was being done.
        op: &'static str,
        /// Where.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Something that should not happen did (a bug), reported instead of a panic.
    #[error("internal error: {0}; this is a bug in Tideline, please report it with the log")]
    Internal(String),
    /// An S3 request failed; `failure` says what to fix.
    #[error("{replica}: {op} {key}: {failure}")]
    S3 {
        /// The replica (bucket, path and endpoint; never credentials).
        replica: String,
        /// What was being done.
        op: &'static str,
        /// The object key or prefix.
        key: String,
        /// Why, in terms of what to fix.
        failure: S3Failure,
    },
    /// A request to an SFTP, WebDAV, Azure Blob Storage or Google Cloud Storage server
    /// failed; `failure` says what to fix.
    #[error("{replica}: {op} {path}: {failure}")]
    Remote {
        /// The replica (server and folder; never credentials).
        replica: String,
        /// What was being done.
        op: &'static str,
        /// The file or folder on the server.
        path: String,
        /// Why, in terms of what to fix.
        failure: RemoteFailure,
    },
}

impl ReplicaError {
    /// True for failures only a change of configuration fixes (wrong or missing
    /// credentials, no permission, no such bucket, another region): worth failing
    /// at start for, where a destination that is down or missing is waited for.
    pub fn needs_config_fix(&self) -> bool {
        match self {
            ReplicaError::S3 { failure, .. } => matches!(
                failure,
                S3Failure::WrongCredentials { .. }
                    | S3Failure::NoCredentials(_)
                    | S3Failure::AccessDenied
                    | S3Failure::NoSuchBucket
                    | S3Failure::WrongRegion(_)
            ),
            ReplicaError::Remote { failure, .. } => failure.needs_config_fix(),
            _ => false,
        }
    }
}

impl From<crate::blocking::Panicked> for ReplicaError {
    fn from(p: crate::blocking::Panicked) -> ReplicaError {
        ReplicaError::Internal(p.to_string())
    }
}

/// Result alias for replica operations.
pub type ReplicaResult<T> = Result<T, ReplicaError>;

/// A place LTX files are replicated to.
#[async_trait::async_trait]
pub trait ReplicaClient: Debug + Send + Sync {
    /// A description for logs and errors, never containing credentials.
    fn describe(&self) -> String;

    /// Every LTX file of `level`, sorted by (MinTXID, MaxTXID). Names that are not
    /// `%016x-%016x.ltx` are ignored.
    async fn list(&self, level: u8) -> ReplicaResult<Vec<FileInfo>>;

    /// Bytes `range` of a file (clamped to its end).
    async fn read_range(&self, file: &FileInfo, range: Range<u64>) -> ReplicaResult<Vec<u8>>;

    /// A blocking reader over a whole file, for the LTX decoder on a blocking thread.
    fn open(&self, file: &FileInfo) -> ReplicaResult<Box<dyn Read + Send>>;

    /// Stores the complete LTX file at `src` as level `level`, file `min..=max`,
    /// created at `created_at`, atomically: readers see all of it or none. Returns its
    /// listing entry.
    async fn write(
        &self,
        level: u8,
        min: Txid,
        max: Txid,
        created_at: SystemTime,
        src: &Path,
    ) -> ReplicaResult<FileInfo>;

    /// Deletes files; files already gone are not an error.
    async fn delete(&self, files: &[FileInfo]) -> ReplicaResult<()>;

    /// Like [`list`](Self::list), but asked of the replica itself even where `list` is
    /// answered from a cache (S3): how a long-running replicator notices files that
    /// another writer or a bucket lifecycle rule added or removed.
    async fn list_fresh(&self, level: u8) -> ReplicaResult<Vec<FileInfo>> {
        self.list(level).await
    }

    /// Like [`list`](Self::list), with `created_at` exactly the header timestamp even
    /// where a listing only approximates it (S3 listings give the upload time; the
    /// creation time is in each object's metadata). Restores by timestamp use this.
    async fn list_exact(&self, level: u8) -> ReplicaResult<Vec<FileInfo>> {
        self.list(level).await
    }

    /// A new backup starts here (nothing was shipped to this replica before): its root
    /// may be created. A folder replica otherwise refuses to recreate a root it has
    /// seen, so that a backup never restarts on the empty mount point of a drive that
    /// went away. Object stores need nothing.
    fn start_new_backup(&self) {}

    /// Requests made since the client was created, for backends that bill by request
    /// (S3); `None` for the others.
    fn request_counts(&self) -> Option<RequestCounts> {
        None
    }
}

/// Lists every level of `client` (index = level).
pub async fn list_levels(client: &dyn ReplicaClient) -> crate::Result<Vec<Vec<FileInfo>>> {
    let mut levels = Vec::with_capacity(SNAPSHOT_LEVEL as usize + 1);
    for level in 0..=SNAPSHOT_LEVEL {
        levels.push(client.list(level).await?);
    }
    Ok(levels)
}

/// Lists every level of `client` with exact creation times
/// ([`ReplicaClient::list_exact`]): what a restore by time plans from. On S3 this
/// costs a HEAD per file, so the other targets use [`list_levels`].
pub(crate) async fn list_levels_exact(
    client: &dyn ReplicaClient,
) -> crate::Result<Vec<Vec<FileInfo>>> {
    let mut levels = Vec::with_capacity(SNAPSHOT_LEVEL as usize + 1);
    for level in 0..=SNAPSHOT_LEVEL {
        levels.push(client.list_exact(level).await?);
    }
    Ok(levels)
}

/// The newest TXID a listing (index = level) holds at any level.
pub fn newest_txid(levels: &[Vec<FileInfo>]) -> Option<Txid> {
    levels.iter().flatten().map(|f| f.max_txid).max()
}

/// The replica's newest TXID at any level, by listing every level.
pub(crate) async fn replica_newest_txid(client: &dyn ReplicaClient) -> crate::Result<Option<Txid>> {
    Ok(newest_txid(&list_levels(client).await?))
}

/// The replica's newest file: of the incremental levels (0 to 8), which hold every
/// TXID shipped; a snapshot is taken from the live database and may be newer than the
/// L0 files uploaded before it, so it must not hide them. Only a replica with nothing
/// but snapshots is positioned by its newest snapshot.
pub(crate) fn newest_file(levels: &[Vec<FileInfo>]) -> Option<&FileInfo> {
    let incremental = levels
        .iter()
        .take(MAX_COMPACTION_LEVEL as usize + 1)
        .flatten()
        .max_by_key(|f| f.max_txid);
    incremental.or_else(|| {
        levels
            .get(SNAPSHOT_LEVEL as usize)
            .and_then(|l| l.iter().max_by_key(|f| f.max_txid))
    })
}

/// The client for a configured replica.
pub fn open_client(
    cfg: &crate::config::ReplicaConfig,
) -> crate::Result<std::sync::Arc<dyn ReplicaClient>> {
    let client = open_backend(cfg)?;
    Ok(match &cfg.target {
        // Litestream has operation metrics for remote replicas, not folders.
        crate::config::ReplicaTarget::File(_) => client,
        remote if crate::metrics::enabled() => {
            std::sync::Arc::new(metered::Metered::wrap(client, remote.kind()))
        }
        _ => client,
    })
}

fn open_backend(
    cfg: &crate::config::ReplicaConfig,
) -> crate::Result<std::sync::Arc<dyn ReplicaClient>> {
    match &cfg.target {
        crate::config::ReplicaTarget::File(f) => {
            Ok(std::sync::Arc::new(file::FileReplica::new(&f.path)))
        }
        crate::config::ReplicaTarget::S3(s) => Ok(std::sync::Arc::new(s3::S3Replica::new(s)?)),
        crate::config::ReplicaTarget::WebDav(w) => {
            Ok(std::sync::Arc::new(webdav::WebDavReplica::new(w)?))
        }
        #[cfg(feature = "sftp")]
        crate::config::ReplicaTarget::Sftp(s) => {
            Ok(std::sync::Arc::new(sftp::SftpReplica::new(s)?))
        }
        #[cfg(feature = "abs")]
        crate::config::ReplicaTarget::Abs(a) => Ok(std::sync::Arc::new(abs::AbsReplica::new(a)?)),
        #[cfg(feature = "gs")]
        crate::config::ReplicaTarget::Gs(g) => Ok(std::sync::Arc::new(gs::GsReplica::new(g)?)),
        #[cfg(feature = "nats")]
        crate::config::ReplicaTarget::Nats(n) => Ok(std::sync::Arc::new(nats::NatsReplica::new(n))),
        #[cfg(feature = "oss")]
        crate::config::ReplicaTarget::Oss(o) => Ok(std::sync::Arc::new(oss::OssReplica::new(o)?)),
        other => Err(crate::Error::ReplicaTypeNotBuilt { kind: other.kind() }),
    }
}

pub(crate) fn check_level(level: u8) -> ReplicaResult<()> {
    if level > SNAPSHOT_LEVEL {
        return Err(ReplicaError::BadLevel(level));
    }
    Ok(())
}
