//! What a replicator leaves in the meta directory for `tideline status` and the app to
//! read without it running: the requests it made, and whether its destination went
//! missing.

use std::path::{Path, PathBuf};

use tideline_ltx::Txid;

use super::reconcile::{self, Decision, ShippedRecord};
use crate::error::Error;
use crate::storage::RequestCounts;

/// What is wrong with a destination as `tideline status` sees it, without a running
/// replicator: the replica (described as `replica`, listed as `levels`) shows nothing
/// though the shipped record in `meta_dir` says this database shipped there. The same
/// rule the replicator applies before uploading.
pub(crate) fn destination_problem(
    meta_dir: &Path,
    replica: &str,
    levels: &[Vec<crate::storage::FileInfo>],
) -> Option<Error> {
    let record = ShippedRecord::load(meta_dir, replica)?;
    match reconcile::decide(Some(&record), levels, &[]) {
        Decision::Refuse { shipped } => Some(missing(meta_dir, replica, shipped)),
        _ => None,
    }
}

pub(super) fn missing(meta_dir: &Path, replica: &str, shipped: Txid) -> Error {
    Error::DestinationMissing {
        replica: replica.to_owned(),
        shipped,
        record: reconcile::record_path(meta_dir),
    }
}

/// A running replicator's requests to its replica since it started, as `tideline
/// status` shows them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RequestReport {
    /// The replica (no credentials).
    pub replica: String,
    /// When the replicator started (RFC 3339).
    pub since: String,
    /// Requests and bytes.
    pub counts: RequestCounts,
}

fn request_report_path(meta_dir: &Path) -> PathBuf {
    crate::capture::MetaDir::new(meta_dir).request_report()
}

pub(super) fn write_request_report(meta_dir: &Path, report: &RequestReport) -> std::io::Result<()> {
    let path = request_report_path(meta_dir);
    let bytes = serde_json::to_vec_pretty(report).map_err(std::io::Error::other)?;
    crate::storage::durable::write_atomic(&path, &bytes)
}

/// The request report a replicator left in `meta_dir` (the newest one, also after it
/// stopped), if any.
pub(crate) fn read_request_report(meta_dir: &Path) -> Option<RequestReport> {
    let data = std::fs::read(request_report_path(meta_dir)).ok()?;
    serde_json::from_slice(&data).ok()
}
