//! Matching what this machine shipped with what the replica holds, before anything is
//! uploaded: at start, and again whenever an upload failed (the destination may have
//! gone and come back, possibly different).
//!
//! The meta directory keeps a *shipped record* (`tideline-shipped.json`): the replica
//! it applies to, the newest TXID known to have reached it, and the size of that
//! level-0 file. With it, a replica that shows nothing (a drive not mounted yet, an
//! emptied folder or bucket) is recognised as missing rather than new: nothing is
//! written to it, local L0 files stay, and the task reports the problem until the
//! destination is back. A replica that shows less than was shipped, or another file
//! under the shipped TXID, was changed by someone else: replication starts a
//! consistent new generation there (the whole database at the next TXID) so that
//! restoring the latest state always gives the database.
//!
//! [`decide`] is the rule, a pure function of the record, the replica's listing and
//! the local L0 TXIDs.

use std::path::{Path, PathBuf};

use tideline_ltx::Txid;

use crate::storage::{FileInfo, newest_file};

/// What this machine knows reached a replica.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct ShippedRecord {
    /// The replica, as its client describes it (no credentials).
    pub replica: String,
    /// The newest TXID known to be in the replica.
    pub txid: u64,
    /// The size of the level-0 file ending at `txid`: another chain's file under the
    /// same name has, in practice, another size.
    pub size: u64,
}

/// Where the shipped record of the database with meta directory `meta` lives.
pub(crate) fn record_path(meta: &Path) -> PathBuf {
    crate::capture::MetaDir::new(meta).shipped_record()
}

impl ShippedRecord {
    /// The record in `meta` if it is for `replica`. A record for another replica (the
    /// destination was changed in the config) or an unreadable one does not apply:
    /// the new destination starts afresh.
    pub fn load(meta: &Path, replica: &str) -> Option<ShippedRecord> {
        let bytes = std::fs::read(record_path(meta)).ok()?;
        let rec: ShippedRecord = serde_json::from_slice(&bytes).ok()?;
        (rec.replica == replica).then_some(rec)
    }

    /// Writes the record atomically and durably.
    pub fn store(&self, meta: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::storage::durable::write_atomic(&record_path(meta), &bytes)
    }
}

/// What to do before uploading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// The local L0 files continue the replica: upload those above `replica`.
    Resume {
        /// The replica's newest TXID (`None`: a new, empty replica).
        replica: Option<Txid>,
    },
    /// An empty replica that nothing was shipped to: a new backup, from TXID 1. Local
    /// L0 files (positions of an earlier destination) are superseded.
    Fresh,
    /// Take the replica's newest file as the position: the next capture is the whole
    /// database at the TXID after it.
    Adopt {
        /// The replica's newest file.
        file: FileInfo,
        /// Set when the replica was changed behind our back, in words.
        changed: Option<String>,
    },
    /// Write nothing: the replica shows nothing though `shipped` reached it.
    Refuse {
        /// The newest TXID the record says reached the replica.
        shipped: Txid,
    },
}

/// The rule (see the module docs). `levels` is the replica's listing by level,
/// `local` the TXIDs of the local L0 files, oldest first.
pub(crate) fn decide(
    record: Option<&ShippedRecord>,
    levels: &[Vec<FileInfo>],
    local: &[Txid],
) -> Decision {
    let Some(newest) = newest_file(levels) else {
        return match record {
            Some(rec) => Decision::Refuse {
                shipped: Txid(rec.txid),
            },
            None => Decision::Fresh,
        };
    };
    let r = newest.max_txid;
    if let Some(rec) = record {
        let changed = if r.0 < rec.txid {
            Some(format!(
                "it holds TXIDs up to {r}, but {} had reached it",
                Txid(rec.txid)
            ))
        } else {
            levels
                .first()
                .and_then(|l0| l0.iter().find(|f| f.max_txid.0 == rec.txid))
                .filter(|f| f.size != rec.size)
                .map(|f| {
                    format!(
                        "its file for TXID {} has {} bytes where this machine uploaded {}",
                        f.max_txid, f.size, rec.size
                    )
                })
        };
        if changed.is_some() {
            return Decision::Adopt {
                file: newest.clone(),
                changed,
            };
        }
    }
    if continues(local, r) {
        Decision::Resume { replica: Some(r) }
    } else {
        Decision::Adopt {
            file: newest.clone(),
            changed: None,
        }
    }
}

/// True if the local files reach at least `r` and those above it follow it without a
/// gap, so uploading them continues the replica.
fn continues(local: &[Txid], r: Txid) -> bool {
    let Some(max) = local.last() else {
        return false;
    };
    if *max < r {
        return false;
    }
    let above: Vec<Txid> = local.iter().copied().filter(|t| *t > r).collect();
    above.first().is_none_or(|f| *f == r.next()) && above.windows(2).all(|w| w[1] == w[0].next())
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::storage::SNAPSHOT_LEVEL;

    fn file(level: u8, min: u64, max: u64, size: u64) -> FileInfo {
        FileInfo {
            level,
            min_txid: Txid(min),
            max_txid: Txid(max),
            size,
            created_at: SystemTime::UNIX_EPOCH,
        }
    }

    fn levels(files: &[FileInfo]) -> Vec<Vec<FileInfo>> {
        let mut out = vec![Vec::new(); SNAPSHOT_LEVEL as usize + 1];
        for f in files {
            out[f.level as usize].push(f.clone());
        }
        out
    }

    fn rec(txid: u64, size: u64) -> ShippedRecord {
        ShippedRecord {
            replica: "file:///b".into(),
            txid,
            size,
        }
    }

    fn txids(v: &[u64]) -> Vec<Txid> {
        v.iter().map(|&t| Txid(t)).collect()
    }

    #[test]
    fn an_empty_replica_is_new_only_if_nothing_was_shipped_there() {
        assert_eq!(decide(None, &levels(&[]), &txids(&[5])), Decision::Fresh);
        assert_eq!(
            decide(Some(&rec(5, 100)), &levels(&[]), &txids(&[5])),
            Decision::Refuse { shipped: Txid(5) }
        );
    }

    #[test]
    fn local_files_that_continue_the_replica_are_uploaded() {
        let replica = levels(&[file(0, 1, 1, 50), file(0, 2, 2, 100)]);
        assert_eq!(
            decide(Some(&rec(2, 100)), &replica, &txids(&[2, 3, 4])),
            Decision::Resume {
                replica: Some(Txid(2))
            }
        );
        // A gap above the replica cannot be uploaded: a new position is taken.
        assert!(matches!(
            decide(Some(&rec(2, 100)), &replica, &txids(&[2, 4])),
            Decision::Adopt { changed: None, .. }
        ));
    }

    #[test]
    fn a_snapshot_newer_than_the_l0_files_does_not_hide_them() {
        // L0 files 3 and 4 were still local when the snapshot at 4 was uploaded.
        let replica = levels(&[file(0, 1, 2, 100), file(SNAPSHOT_LEVEL, 1, 4, 900)]);
        assert_eq!(newest_file(&replica).unwrap().max_txid, Txid(2));
        assert_eq!(
            decide(None, &replica, &txids(&[3, 4])),
            Decision::Resume {
                replica: Some(Txid(2))
            }
        );
        // Only snapshots: the newest snapshot is the position.
        let only = levels(&[file(SNAPSHOT_LEVEL, 1, 4, 900)]);
        assert_eq!(newest_file(&only).unwrap().max_txid, Txid(4));
    }

    #[test]
    fn a_replica_behind_the_record_or_with_another_file_is_a_new_generation() {
        let behind = levels(&[file(0, 1, 3, 100)]);
        let d = decide(Some(&rec(7, 100)), &behind, &txids(&[4, 5, 6, 7]));
        assert!(
            matches!(&d, Decision::Adopt { file, changed: Some(why) } if file.max_txid == Txid(3) && why.contains("up to")),
            "{d:?}"
        );
        let other = levels(&[file(0, 1, 1, 10), file(0, 7, 7, 555)]);
        let d = decide(Some(&rec(7, 100)), &other, &txids(&[7]));
        assert!(
            matches!(&d, Decision::Adopt { changed: Some(why), .. } if why.contains("555")),
            "{d:?}"
        );
        // The same file, compacted away from L0 by retention: still ours.
        let compacted = levels(&[file(1, 1, 9, 999)]);
        assert_eq!(
            decide(Some(&rec(7, 100)), &compacted, &txids(&[9, 10])),
            Decision::Resume {
                replica: Some(Txid(9))
            }
        );
    }
}
