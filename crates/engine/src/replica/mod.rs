//! What replicas hold: LTX files by level, and how they are described in listings.
//!
//! The replica client trait and its folder, S3 and in-memory backends build on these
//! types; the restore planner works on listings of them alone.

use std::time::SystemTime;

use tideline_ltx::Txid;

/// Level of full snapshots (MinTXID always 1).
pub const SNAPSHOT_LEVEL: u8 = 9;
/// Highest compaction level (`levels:` may configure up to 8).
pub const MAX_COMPACTION_LEVEL: u8 = 8;

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
