//! Restore points: every state a replica can restore, from its listing, for the
//! window's timeline.

use std::collections::BTreeMap;
use std::time::SystemTime;

use tideline_ltx::Txid;

use crate::error::Error;
use crate::restore::{Target, list_levels, plan};
use crate::storage::{FileInfo, ReplicaClient, SNAPSHOT_LEVEL};

/// Kinds of restore point, by the level of the file that ends there (serialized
/// snake_case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PointKind {
    /// A full snapshot (level 9).
    Snapshot,
    /// The end of a compacted window (levels 1 to 8).
    Compacted,
    /// A recent change (level 0).
    Change,
}

/// One state the replica can restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestorePoint {
    /// The TXID the database is at after restoring this point.
    pub txid: Txid,
    /// When this state reached the replica.
    pub created_at: SystemTime,
    /// What kind of file ends here.
    pub kind: PointKind,
    /// Its level.
    pub level: u8,
}

/// The most restore points listed (the newest ones).
pub const MAX_RESTORE_POINTS: usize = 500;

/// Every state the replica can restore, oldest first (at most the newest
/// [`MAX_RESTORE_POINTS`]): each TXID where some file ends and a restore plan reaches
/// exactly it. The first point's time is "restorable from".
pub async fn restore_points(client: &dyn ReplicaClient) -> Result<Vec<RestorePoint>, Error> {
    let levels = list_levels(client).await?;
    Ok(points_of(&levels))
}

fn points_of(levels: &[Vec<FileInfo>]) -> Vec<RestorePoint> {
    // Each TXID where a file ends, with the earliest file that ends there.
    let mut ends: BTreeMap<Txid, &FileInfo> = BTreeMap::new();
    for f in levels.iter().flatten() {
        ends.entry(f.max_txid)
            .and_modify(|cur| {
                if (f.created_at, f.level) < (cur.created_at, cur.level) {
                    *cur = f;
                }
            })
            .or_insert(f);
    }
    let mut points: Vec<RestorePoint> = ends
        .into_iter()
        .rev()
        .filter(|(txid, _)| plan(levels, Target::Txid(*txid)).is_ok())
        .take(MAX_RESTORE_POINTS)
        .map(|(txid, f)| RestorePoint {
            txid,
            created_at: f.created_at,
            kind: match f.level {
                0 => PointKind::Change,
                SNAPSHOT_LEVEL => PointKind::Snapshot,
                _ => PointKind::Compacted,
            },
            level: f.level,
        })
        .collect();
    points.reverse();
    points
}
