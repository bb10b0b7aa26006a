//! Choosing the fewest LTX files that rebuild a database at a target, exactly as
//! Litestream 0.5's `CalcRestorePlan`, so both tools restore the same state from the
//! same replica.
//!
//! 1. Start from the newest snapshot (level 9) at or below the target TXID and created
//!    strictly before the target time.
//! 2. Then, repeatedly, among the files of levels 8..=0 that continue the chain
//!    (MinTXID ≤ current + 1, MaxTXID > current) and respect the target, take the one
//!    reaching furthest; ties go to the smaller MinTXID, then the higher level, then
//!    the older file.
//! 3. A latest restore fails if any level has a file beyond a gap; a TXID restore fails
//!    unless the chain ends exactly at the TXID (restores reach file boundaries only).

use std::time::SystemTime;

use tideline_ltx::Txid;

use crate::storage::{FileInfo, MAX_COMPACTION_LEVEL, SNAPSHOT_LEVEL};

/// What to restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Target {
    /// Everything the replica has.
    #[default]
    Latest,
    /// The state after this TXID, which must be a file boundary.
    Txid(Txid),
    /// The newest state whose files were all created strictly before this time.
    Time(SystemTime),
}

/// Why no plan exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// Nothing in the replica reaches the target.
    #[error("no matching backup files available{}", match .0 {
        Target::Txid(t) => format!(" for TXID {t} (a restore can only stop at a TXID where some file ends; `tideline ltx -level all` lists them)"),
        Target::Time(_) => " before that time".to_string(),
        Target::Latest => String::new(),
    })]
    NotAvailable(Target),
    /// The replica holds no LTX file at all (a wrong path, or nothing replicated yet).
    #[error(
        "the replica holds no backup (no LTX files); check the replica path or URL, or replicate to it first"
    )]
    NoBackup,
    /// A time target before the oldest restore point.
    #[error("no backup exists before {}; the oldest restore point is {} (pick a later time)", crate::time::format_rfc3339(*.target), crate::time::format_rfc3339(*.oldest))]
    BeforeOldest {
        /// The time asked for.
        target: SystemTime,
        /// When the oldest restorable state was written.
        oldest: SystemTime,
    },
    /// A latest restore would silently miss data past a gap.
    #[error(
        "non-contiguous LTX files in the replica: files reach TXID {have} but the next one starts at {next} (level {level}); restore an earlier TXID with -txid, or repair the replica"
    )]
    Gap {
        /// The TXID the chain reaches.
        have: Txid,
        /// Where the next file starts.
        next: Txid,
        /// The level holding it.
        level: u8,
    },
}

impl PlanError {
    /// True when there is simply nothing to restore at the target (no backup, or none
    /// that old), as opposed to a replica that is damaged.
    pub fn is_nothing_to_restore(&self) -> bool {
        matches!(
            self,
            PlanError::NotAvailable(_) | PlanError::NoBackup | PlanError::BeforeOldest { .. }
        )
    }

    /// A [`PlanError::NotAvailable`] made specific: an empty replica, or a time before
    /// the oldest restore point, so the message says what exists instead.
    fn explained(self, levels: &[Vec<FileInfo>], target: Target) -> PlanError {
        if !matches!(self, PlanError::NotAvailable(_)) {
            return self;
        }
        if levels.iter().all(Vec::is_empty) {
            return PlanError::NoBackup;
        }
        if let Target::Time(t) = target {
            // Every restore starts at a file holding TXID 1 created before the target,
            // so the oldest of those is the oldest point a time can reach.
            let oldest = levels
                .iter()
                .flatten()
                .filter(|f| f.min_txid == Txid::FIRST)
                .map(|f| f.created_at)
                .min();
            if let Some(oldest) = oldest.filter(|t0| t <= *t0) {
                return PlanError::BeforeOldest { target: t, oldest };
            }
        }
        self
    }
}

/// True if `b` is a better next file than `a`.
fn better(a: &FileInfo, b: &FileInfo) -> bool {
    if b.max_txid != a.max_txid {
        return b.max_txid > a.max_txid;
    }
    if b.min_txid != a.min_txid {
        return b.min_txid < a.min_txid;
    }
    if b.level != a.level {
        return b.level > a.level;
    }
    b.created_at < a.created_at
}

fn eligible(f: &FileInfo, target: Target) -> bool {
    match target {
        Target::Latest => true,
        Target::Txid(t) => f.max_txid <= t,
        Target::Time(t) => f.created_at < t,
    }
}

/// One level's files in (min, max) order and how far the planner has looked.
struct Cursor<'a> {
    files: &'a [FileInfo],
    pos: usize,
    candidate: Option<&'a FileInfo>,
}

impl<'a> Cursor<'a> {
    /// Looks at every file that could continue a chain ending at `current`, keeping
    /// the best eligible one (files passed over are never looked at again, as in
    /// Litestream's iterator-based cursor).
    fn refresh(&mut self, current: Txid, target: Target) {
        if self.candidate.is_some_and(|c| c.max_txid <= current) {
            self.candidate = None;
        }
        while let Some(f) = self.files.get(self.pos) {
            if f.min_txid.0 > current.0 + 1 {
                return;
            }
            self.pos += 1;
            if f.max_txid <= current || !eligible(f, target) {
                continue;
            }
            if self.candidate.is_none_or(|c| better(c, f)) {
                self.candidate = Some(f);
            }
        }
    }
}

/// Plans a restore. `levels[l]` lists level `l`'s files (any order; levels absent from
/// the slice are empty). Returns the files to apply, oldest first.
pub fn plan(levels: &[Vec<FileInfo>], target: Target) -> Result<Vec<FileInfo>, PlanError> {
    plan_files(levels, target).map_err(|e| e.explained(levels, target))
}

fn plan_files(levels: &[Vec<FileInfo>], target: Target) -> Result<Vec<FileInfo>, PlanError> {
    let sorted = |level: u8| {
        let mut v: Vec<FileInfo> = levels.get(level as usize).cloned().unwrap_or_default();
        v.sort_by_key(|f| (f.min_txid, f.max_txid));
        v
    };
    let mut out: Vec<FileInfo> = Vec::new();
    let snapshot = sorted(SNAPSHOT_LEVEL)
        .into_iter()
        .rfind(|f| eligible(f, target));
    if let Some(s) = snapshot {
        out.push(s);
    }
    let mut current = out.last().map_or(Txid(0), |f| f.max_txid);
    if let Target::Txid(t) = target
        && current >= t
    {
        return Ok(out);
    }

    let lists: Vec<Vec<FileInfo>> = (0..=MAX_COMPACTION_LEVEL).rev().map(sorted).collect();
    let mut cursors: Vec<Cursor<'_>> = lists
        .iter()
        .map(|files| Cursor {
            files,
            pos: 0,
            candidate: None,
        })
        .collect();
    loop {
        let mut next: Option<usize> = None;
        for i in 0..cursors.len() {
            cursors[i].refresh(current, target);
            if let Some(c) = cursors[i].candidate
                && next.is_none_or(|n| better(cursors[n].candidate.expect("set"), c))
            {
                next = Some(i);
            }
        }
        let Some(n) = next else { break };
        let f = cursors[n].candidate.take().expect("chosen");
        out.push(f.clone());
        current = f.max_txid;
        if let Target::Txid(t) = target
            && current >= t
        {
            break;
        }
    }

    if !out.is_empty() && target == Target::Latest {
        for (i, c) in cursors.iter().enumerate() {
            if let Some(f) = c.files.get(c.pos)
                && f.min_txid.0 > current.0 + 1
            {
                return Err(PlanError::Gap {
                    have: current,
                    next: f.min_txid,
                    level: MAX_COMPACTION_LEVEL - i as u8,
                });
            }
        }
    }
    match (out.last(), target) {
        (None, _) => Err(PlanError::NotAvailable(target)),
        (Some(last), Target::Txid(t)) if last.max_txid < t => Err(PlanError::NotAvailable(target)),
        _ => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
    }

    fn f(level: u8, min: u64, max: u64, created: u64) -> FileInfo {
        FileInfo {
            level,
            min_txid: Txid(min),
            max_txid: Txid(max),
            size: 100,
            created_at: at(created),
        }
    }

    fn names(p: &[FileInfo]) -> Vec<(u8, u64, u64)> {
        p.iter()
            .map(|f| (f.level, f.min_txid.0, f.max_txid.0))
            .collect()
    }

    /// The replica the reference observed after a few minutes (§2.1), with L0 1..=a
    /// compacted into L1 and L2, and two snapshots.
    fn observed() -> Vec<Vec<FileInfo>> {
        let mut levels = vec![Vec::new(); 10];
        levels[0] = vec![f(0, 10, 10, 100)];
        levels[1] = vec![f(1, 1, 1, 10), f(1, 2, 8, 40), f(1, 9, 10, 100)];
        levels[2] = vec![f(2, 1, 8, 60), f(2, 9, 10, 120)];
        levels[9] = vec![f(9, 1, 1, 5), f(9, 1, 8, 90)];
        levels
    }

    #[test]
    fn plans_match_the_reference_observations() {
        let levels = observed();
        // Latest: the newest snapshot, then the highest level that extends it.
        assert_eq!(
            names(&plan(&levels, Target::Latest).unwrap()),
            [(9, 1, 8), (2, 9, 10)]
        );
        // A boundary TXID works; one inside a compacted range does not.
        assert_eq!(
            names(&plan(&levels, Target::Txid(Txid(10))).unwrap()),
            [(9, 1, 8), (2, 9, 10)]
        );
        assert_eq!(
            names(&plan(&levels, Target::Txid(Txid(8))).unwrap()),
            [(9, 1, 8)]
        );
        assert_eq!(
            plan(&levels, Target::Txid(Txid(5))),
            Err(PlanError::NotAvailable(Target::Txid(Txid(5))))
        );
        // Between the snapshots: the older snapshot plus L2 1-8 (overlap is fine).
        assert_eq!(
            names(&plan(&levels, Target::Time(at(70))).unwrap()),
            [(9, 1, 1), (2, 1, 8)]
        );
        // Before anything: nothing.
        assert!(plan(&levels, Target::Time(at(1))).is_err());
        // Strictly before: a file created exactly at the target time is not used.
        assert_eq!(
            names(&plan(&levels, Target::Time(at(60))).unwrap()),
            [(9, 1, 1), (1, 2, 8)]
        );
    }

    #[test]
    fn without_snapshots_the_chain_starts_at_txid_1() {
        let mut levels = vec![Vec::new(); 10];
        levels[0] = (1..=5).map(|t| f(0, t, t, t)).collect();
        assert_eq!(plan(&levels, Target::Latest).unwrap().len(), 5);
        assert_eq!(
            names(&plan(&levels, Target::Txid(Txid(3))).unwrap()),
            [(0, 1, 1), (0, 2, 2), (0, 3, 3)]
        );
        levels[0].remove(0);
        assert_eq!(
            plan(&levels, Target::Latest),
            Err(PlanError::NotAvailable(Target::Latest))
        );
    }

    #[test]
    fn ties_prefer_lower_min_then_higher_level_then_older() {
        let mut levels = vec![Vec::new(); 10];
        levels[0] = vec![f(0, 1, 1, 1), f(0, 2, 2, 2), f(0, 3, 3, 3)];
        levels[1] = vec![f(1, 1, 3, 5)];
        levels[2] = vec![f(2, 1, 3, 6)];
        assert_eq!(names(&plan(&levels, Target::Latest).unwrap()), [(2, 1, 3)]);
        levels[3] = vec![f(3, 2, 3, 7)];
        levels[0].push(f(0, 4, 4, 8));
        // 1-3 (lower min) beats 2-3 even at a lower level.
        assert_eq!(
            names(&plan(&levels, Target::Latest).unwrap()),
            [(2, 1, 3), (0, 4, 4)]
        );
    }

    #[test]
    fn a_gap_fails_a_latest_restore_but_not_an_earlier_one() {
        let mut levels = vec![Vec::new(); 10];
        levels[0] = vec![f(0, 1, 1, 1), f(0, 2, 2, 2), f(0, 5, 5, 5)];
        let err = plan(&levels, Target::Latest).unwrap_err();
        assert_eq!(
            err,
            PlanError::Gap {
                have: Txid(2),
                next: Txid(5),
                level: 0
            }
        );
        assert!(err.to_string().contains("-txid"));
        assert_eq!(plan(&levels, Target::Txid(Txid(2))).unwrap().len(), 2);
    }

    #[test]
    fn snapshot_at_or_past_the_target_txid() {
        let mut levels = vec![Vec::new(); 10];
        levels[9] = vec![f(9, 1, 4, 4), f(9, 1, 9, 9)];
        levels[0] = (5..=9).map(|t| f(0, t, t, t)).collect();
        assert_eq!(
            names(&plan(&levels, Target::Txid(Txid(4))).unwrap()),
            [(9, 1, 4)]
        );
        assert_eq!(
            names(&plan(&levels, Target::Txid(Txid(6))).unwrap()),
            [(9, 1, 4), (0, 5, 5), (0, 6, 6)]
        );
        assert_eq!(names(&plan(&levels, Target::Latest).unwrap()), [(9, 1, 9)]);
    }
}
