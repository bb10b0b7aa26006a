//! `validation:`: the periodic check that each level of a replica (0 to 8; snapshots
//! are not contiguous by nature) is sorted and contiguous, as Litestream's
//! `ValidateLevel` checks it: a gap means a restore to the TXIDs in it is impossible, an
//! overlap that two writers shared the replica.
//!
//! One difference, on purpose: a file starting at TXID 1 holds the whole database (a
//! first sync, or a new generation after another process restarted the WAL), so it
//! overlapping the files before it is how such a replica looks, not a fault; Litestream
//! reports it as an overlap.
//!
//! Reason to change: what counts as a broken level.

use std::fmt;

use tideline_ltx::Txid;

use crate::storage::FileInfo;

/// What is wrong between two neighbouring files of a level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// TXIDs missing between them.
    Gap,
    /// The second starts inside the first.
    Overlap,
    /// The second starts before the first.
    Unsorted,
}

impl ProblemKind {
    /// Litestream's word for it (`gap`, `overlap`, `unsorted`).
    pub fn name(self) -> &'static str {
        match self {
            ProblemKind::Gap => "gap",
            ProblemKind::Overlap => "overlap",
            ProblemKind::Unsorted => "unsorted",
        }
    }
}

/// One problem found in a level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The level (0 to 8).
    pub level: u8,
    /// What is wrong.
    pub kind: ProblemKind,
    /// The earlier file's TXID range.
    pub prev: (Txid, Txid),
    /// The file after it.
    pub next: (Txid, Txid),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (p, n) = (self.prev, self.next);
        match self.kind {
            ProblemKind::Gap => write!(
                f,
                "level {}: TXID gap: {}-{} is followed by {}-{} (expected {}); TXIDs in between cannot be restored",
                self.level,
                p.0,
                p.1,
                n.0,
                n.1,
                Txid(p.1.0 + 1)
            ),
            ProblemKind::Overlap => write!(
                f,
                "level {}: TXID overlap: {}-{} and {}-{}; did two replicators write to this replica?",
                self.level, p.0, p.1, n.0, n.1
            ),
            ProblemKind::Unsorted => write!(
                f,
                "level {}: files out of order: {}-{} listed before {}-{}",
                self.level, p.0, p.1, n.0, n.1
            ),
        }
    }
}

/// The problems of one level's listing (sorted by MinTXID, as listings are). Gaps and
/// overlaps are looked for in the order the TXIDs were written (by MaxTXID), where a
/// whole-database file simply continues the chain.
pub fn check_level(level: u8, files: &[FileInfo]) -> Vec<Problem> {
    let problem = |kind, prev: &FileInfo, next: &FileInfo| Problem {
        level,
        kind,
        prev: (prev.min_txid, prev.max_txid),
        next: (next.min_txid, next.max_txid),
    };
    let mut out: Vec<Problem> = files
        .windows(2)
        .filter(|p| p[1].min_txid < p[0].min_txid)
        .map(|p| problem(ProblemKind::Unsorted, &p[0], &p[1]))
        .collect();
    let mut written: Vec<&FileInfo> = files.iter().collect();
    written.sort_by_key(|f| (f.max_txid, f.min_txid));
    for pair in written.windows(2) {
        let (prev, next) = (pair[0], pair[1]);
        if next.min_txid.0 > prev.max_txid.0 + 1 {
            out.push(problem(ProblemKind::Gap, prev, next));
        } else if next.min_txid <= prev.max_txid && next.min_txid.0 != 1 {
            out.push(problem(ProblemKind::Overlap, prev, next));
        }
    }
    out
}

/// The problems of levels 0 to 8 of a listing (index = level).
pub fn check_levels(levels: &[Vec<FileInfo>]) -> Vec<Problem> {
    levels
        .iter()
        .enumerate()
        .take(usize::from(crate::storage::MAX_COMPACTION_LEVEL) + 1)
        .flat_map(|(level, files)| check_level(level as u8, files))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    fn f(min: u64, max: u64) -> FileInfo {
        FileInfo {
            level: 0,
            min_txid: Txid(min),
            max_txid: Txid(max),
            size: 1,
            created_at: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_contiguous_level_is_fine_and_each_fault_is_named() {
        assert!(check_level(0, &[f(1, 3), f(4, 4), f(5, 9)]).is_empty());
        assert!(check_level(0, &[]).is_empty());
        let gap = check_level(1, &[f(1, 3), f(6, 9)]);
        assert_eq!(gap.len(), 1);
        assert_eq!(gap[0].kind, ProblemKind::Gap);
        assert!(
            gap[0].to_string().contains("expected 0000000000000004"),
            "{}",
            gap[0]
        );
        let overlap = check_level(0, &[f(1, 5), f(4, 9)]);
        assert_eq!(overlap[0].kind, ProblemKind::Overlap);
        let unsorted = check_level(0, &[f(4, 9), f(1, 3)]);
        assert_eq!(unsorted[0].kind, ProblemKind::Unsorted);
        // Two writers: the same TXIDs written twice.
        let twice = check_level(0, &[f(1, 5), f(6, 9), f(6, 10)]);
        assert_eq!(twice.len(), 1);
        assert_eq!(twice[0].kind, ProblemKind::Overlap);
    }

    #[test]
    fn a_whole_database_file_is_not_an_overlap() {
        // A new generation: the whole database at TXID 12 after files up to 10.
        // Listed by MinTXID, as every backend lists.
        assert!(check_level(0, &[f(1, 5), f(1, 12), f(6, 10), f(13, 13)]).is_empty());
    }

    #[test]
    fn snapshots_are_not_checked() {
        let mut levels = vec![Vec::new(); 10];
        levels[9] = vec![f(1, 5), f(1, 9)];
        levels[2] = vec![f(1, 5), f(7, 9)];
        let found = check_levels(&levels);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].level, 2);
    }
}
