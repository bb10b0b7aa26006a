//! Retention: which replica files may be deleted, as pure functions of the listing,
//! the time and the configuration (Litestream 0.5's rules), plus a grace period that
//! protects restores already under way.
//!
//! * **L0**: files compacted into L1 (MaxTXID ≤ newest L1 MaxTXID) and older than
//!   `l0-retention`, oldest first, stopping at the first file that is not, so L0 stays
//!   contiguous for readers that follow it; the newest L0 file is always kept (it is
//!   the position a takeover resumes from). `l0-retention: 0` keeps L0 files.
//! * **Snapshots** (L9): files created before `now − snapshot.retention`; the newest
//!   snapshot is always kept.
//! * **Cascade**: in levels 1..=8, files whose MaxTXID is below the MaxTXID of the
//!   newest snapshot being deleted (Litestream's deliberately conservative floor);
//!   each level keeps at least its newest file.
//! * `retention.enabled: false`: no replica deletions at all (bucket lifecycle rules
//!   do it); local meta-directory cleanup still happens.
//!
//! ## Restores under way: a grace period (tombstones)
//!
//! A restore lists the replica, then reads its files for as long as the download
//! takes. A file that became deletable after the listing must not vanish under it
//! (Litestream issue #1270). Deletable files are therefore first *tombstoned* in
//! memory with the time they became deletable, and deleted only once they have been
//! deletable for `DEFAULT_DELETE_GRACE` (configurable): any restore that planned
//! with them and runs for less than the grace period completes. Tombstones are not
//! persisted; after a restart the grace period starts again, which only delays
//! deletions. No extra replica request is spent on them.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use tideline_ltx::Txid;

use crate::storage::FileInfo;

/// How long a file stays in the replica after it became deletable.
pub(crate) const DEFAULT_DELETE_GRACE: Duration = Duration::from_secs(10 * 60);

/// L0 files that may be deleted: compacted into L1 (`l1_max`), created at or before
/// `now − retention`, oldest first and contiguous from the oldest, never the newest.
pub fn l0_deletable(
    l0: &[FileInfo],
    l1_max: Option<Txid>,
    now: SystemTime,
    retention: Option<Duration>,
) -> Vec<FileInfo> {
    let (Some(retention), Some(l1_max)) = (retention, l1_max) else {
        return Vec::new();
    };
    let cutoff = now.checked_sub(retention).unwrap_or(SystemTime::UNIX_EPOCH);
    let keep_newest = l0.len().saturating_sub(1);
    l0[..keep_newest]
        .iter()
        .take_while(|f| f.max_txid <= l1_max && f.created_at <= cutoff)
        .cloned()
        .collect()
}

/// How L0 retention sees a level-0 listing, as Litestream's
/// `litestream_l0_retention_files_total` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct L0Census {
    /// Files [`l0_deletable`] gives.
    pub eligible: usize,
    /// Files not yet compacted into L1 (never deleted).
    pub not_compacted: usize,
    /// Compacted files kept because they are younger than the retention (or the
    /// newest file, which is always kept).
    pub too_recent: usize,
}

/// Counts `l0` by what L0 retention may do with each file; `eligible` is what
/// [`l0_deletable`] returned for the same inputs.
pub fn l0_census(l0: &[FileInfo], l1_max: Option<Txid>, eligible: usize) -> L0Census {
    let not_compacted = l0
        .iter()
        .filter(|f| l1_max.is_none_or(|max| f.max_txid > max))
        .count();
    L0Census {
        eligible,
        not_compacted,
        too_recent: l0.len().saturating_sub(eligible + not_compacted),
    }
}

/// Snapshots that may be deleted (created before `now − retention`, never the newest)
/// and the cascade floor they give: the MaxTXID of the newest of them.
pub fn snapshots_deletable(
    l9: &[FileInfo],
    now: SystemTime,
    retention: Duration,
) -> (Vec<FileInfo>, Option<Txid>) {
    let cutoff = now.checked_sub(retention).unwrap_or(SystemTime::UNIX_EPOCH);
    let newest = l9.iter().max_by_key(|f| (f.max_txid, f.created_at));
    let del: Vec<FileInfo> = l9
        .iter()
        .filter(|f| Some(*f) != newest && f.created_at < cutoff)
        .cloned()
        .collect();
    let floor = del.iter().map(|f| f.max_txid).max();
    (del, floor)
}

/// Files of one compaction level (sorted by TXID) below the cascade floor: MaxTXID <
/// `floor`, never the level's newest file.
pub fn cascade_deletable(level: &[FileInfo], floor: Txid) -> Vec<FileInfo> {
    let keep_newest = level.len().saturating_sub(1);
    level[..keep_newest]
        .iter()
        .filter(|f| f.max_txid < floor)
        .cloned()
        .collect()
}

/// Key of a file in the tombstone set.
type Key = (u8, Txid, Txid);

/// Files waiting out the grace period before deletion.
#[derive(Debug, Default, Clone)]
pub struct Tombstones {
    since: BTreeMap<Key, (FileInfo, SystemTime)>,
}

impl Tombstones {
    /// Marks `files` deletable as of `now` (files already marked keep their time).
    pub fn mark(&mut self, files: impl IntoIterator<Item = FileInfo>, now: SystemTime) {
        for f in files {
            self.since
                .entry((f.level, f.min_txid, f.max_txid))
                .or_insert((f, now));
        }
    }

    /// Removes and returns the files deletable for at least `grace` at `now`.
    pub fn due(&mut self, now: SystemTime, grace: Duration) -> Vec<FileInfo> {
        let due: Vec<Key> = self
            .since
            .iter()
            .filter(|(_, (_, t))| now.duration_since(*t).is_ok_and(|d| d >= grace))
            .map(|(k, _)| *k)
            .collect();
        due.iter()
            .filter_map(|k| self.since.remove(k).map(|(f, _)| f))
            .collect()
    }

    /// Forgets a file (deleted, or no longer in the replica).
    pub fn forget(&mut self, f: &FileInfo) {
        self.since.remove(&(f.level, f.min_txid, f.max_txid));
    }

    /// Files waiting.
    pub fn len(&self) -> usize {
        self.since.len()
    }

    /// True if none wait.
    pub fn is_empty(&self) -> bool {
        self.since.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn f(level: u8, min: u64, max: u64, created: u64) -> FileInfo {
        FileInfo {
            level,
            min_txid: Txid(min),
            max_txid: Txid(max),
            size: 1,
            created_at: at(created),
        }
    }

    #[test]
    fn l0_keeps_uncompacted_young_and_newest_files_and_stays_contiguous() {
        let l0: Vec<_> = (1..=10).map(|t| f(0, t, t, t * 60)).collect();
        let five = Some(Duration::from_secs(300));
        // Compacted up to 6, now = 600 s: files created ≤ 300 s (TXIDs 1..=5).
        let del = l0_deletable(&l0, Some(Txid(6)), at(600), five);
        assert_eq!(del, l0[..5].to_vec());
        // Compacted only up to 3.
        assert_eq!(
            l0_deletable(&l0, Some(Txid(3)), at(6000), five),
            l0[..3].to_vec()
        );
        // Never the newest, even when everything is old and compacted.
        assert_eq!(
            l0_deletable(&l0, Some(Txid(10)), at(6000), five),
            l0[..9].to_vec()
        );
        // No L1 yet, or retention off.
        assert!(l0_deletable(&l0, None, at(6000), five).is_empty());
        assert!(l0_deletable(&l0, Some(Txid(10)), at(6000), None).is_empty());
        // A young file stops the scan even if older-looking files follow.
        let mut odd = l0.clone();
        odd[1].created_at = at(10_000);
        assert_eq!(
            l0_deletable(&odd, Some(Txid(10)), at(6000), five),
            l0[..1].to_vec()
        );
    }

    #[test]
    fn l0_census_splits_the_level_by_what_retention_may_do() {
        let l0: Vec<_> = (1..=10).map(|t| f(0, t, t, t * 60)).collect();
        let five = Some(Duration::from_secs(300));
        // Compacted up to 6 at 600 s: 1..=5 may go, 6 is too young, 7..=10 wait for L1.
        let del = l0_deletable(&l0, Some(Txid(6)), at(600), five);
        let census = l0_census(&l0, Some(Txid(6)), del.len());
        let want = L0Census {
            eligible: 5,
            not_compacted: 4,
            too_recent: 1,
        };
        assert_eq!(census, want);
        // Nothing compacted yet: every file waits.
        assert_eq!(l0_census(&l0, None, 0).not_compacted, 10);
        // All compacted and old: all but the newest may go.
        let del = l0_deletable(&l0, Some(Txid(10)), at(6000), five);
        assert_eq!(l0_census(&l0, Some(Txid(10)), del.len()).too_recent, 1);
    }

    #[test]
    fn snapshots_keep_the_newest_and_give_the_cascade_floor() {
        let day = Duration::from_secs(86_400);
        let l9 = vec![f(9, 1, 10, 0), f(9, 1, 20, 86_400), f(9, 1, 30, 172_800)];
        let (del, floor) = snapshots_deletable(&l9, at(172_800 - 10), day);
        assert_eq!(del, l9[..1].to_vec());
        assert_eq!(floor, Some(Txid(10)));
        let (del, floor) = snapshots_deletable(&l9, at(10_000_000), day);
        assert_eq!(del, l9[..2].to_vec());
        assert_eq!(floor, Some(Txid(20)));
        let (del, floor) = snapshots_deletable(&l9[2..], at(10_000_000), day);
        assert!(del.is_empty() && floor.is_none());
    }

    #[test]
    fn cascade_keeps_each_levels_newest() {
        let l1 = vec![f(1, 1, 5, 0), f(1, 6, 9, 0), f(1, 10, 12, 0)];
        assert_eq!(cascade_deletable(&l1, Txid(10)), l1[..2].to_vec());
        assert_eq!(cascade_deletable(&l1, Txid(9)), l1[..1].to_vec());
        assert_eq!(cascade_deletable(&l1, Txid(100)), l1[..2].to_vec());
        assert!(cascade_deletable(&l1[2..], Txid(100)).is_empty());
    }

    #[test]
    fn tombstones_wait_out_the_grace_period() {
        let mut t = Tombstones::default();
        let grace = Duration::from_secs(600);
        t.mark([f(0, 1, 1, 0)], at(100));
        t.mark([f(0, 1, 1, 0), f(0, 2, 2, 0)], at(400));
        assert!(t.due(at(699), grace).is_empty());
        assert_eq!(t.due(at(700), grace), vec![f(0, 1, 1, 0)]);
        assert_eq!(t.len(), 1);
        assert_eq!(t.due(at(1000), grace), vec![f(0, 2, 2, 0)]);
        assert!(t.is_empty());
    }
}
