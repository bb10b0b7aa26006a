//! A database's open state, which an idle database of a fleet may put away: its three
//! SQLite connections (with their caches and `-shm` mappings, about 130 KB each), its
//! file handles and its replicator lock go, and come back (as at a restart of
//! Tideline) when the database changes again.
//!
//! What that costs: while put away, no read transaction pins the WAL, so the
//! application's checkpoints may restart it; the first capture after waking then
//! writes the whole database (a snapshot L0), since continuity cannot be proven. So
//! only small databases of a watched directory are put away, after a minute without
//! changes (see [`IdleClose`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::capture::{Database, DbOptions, wal_path};
use crate::error::Result;

/// When a database may be put away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdleClose {
    /// Time without changes after which it is.
    pub after: Duration,
    /// Databases larger than this stay open (a snapshot at each wake-up would cost
    /// more than their connections save).
    pub max_db_bytes: u64,
}

impl IdleClose {
    /// A minute without changes, databases of up to 64 MiB.
    pub const FLEET: IdleClose = IdleClose {
        after: Duration::from_secs(60),
        max_db_bytes: 64 << 20,
    };
}

/// The files' sizes and times when the database was put away: a look that finds them
/// the same needs no reopening (the wake-ups of our own close are such looks).
type Stamp = [Option<(u64, SystemTime)>; 2];

fn stamp(db: &Path) -> Stamp {
    let of = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| (m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)))
    };
    [of(db), of(&wal_path(db))]
}

/// A database, open or put away.
pub(super) struct DbSlot {
    db: Option<Database>,
    path: PathBuf,
    opts: DbOptions,
    stamp: Option<Stamp>,
    /// The rule it was last put away by.
    rule: Option<IdleClose>,
}

impl DbSlot {
    pub(super) fn new(db: Database, opts: DbOptions) -> DbSlot {
        DbSlot {
            path: db.path().to_owned(),
            db: Some(db),
            opts,
            stamp: None,
            rule: None,
        }
    }

    /// The open database, reopened if it was put away.
    pub(super) fn get(&mut self) -> Result<&mut Database> {
        if self.db.is_none() {
            self.db = Some(Database::open(&self.path, self.opts.clone())?);
            self.stamp = None;
        }
        Ok(self.db.as_mut().expect("opened above"))
    }

    /// True while put away.
    pub(super) fn is_closed(&self) -> bool {
        self.db.is_none()
    }

    /// True if put away and nothing changed since.
    pub(super) fn closed_and_unchanged(&self) -> bool {
        self.db.is_none() && self.stamp == Some(stamp(&self.path))
    }

    /// Puts the database away again after it was opened for a moment (a snapshot),
    /// under the rule it was put away by.
    pub(super) fn close_again(&mut self) {
        if let Some(rule) = self.rule {
            self.close_if_small(rule);
        }
    }

    /// Puts the database away if `rule` allows (its file is small enough); true if it
    /// did. The caller has captured everything committed.
    pub(super) fn close_if_small(&mut self, rule: IdleClose) -> bool {
        let small = std::fs::metadata(&self.path).is_ok_and(|m| m.len() <= rule.max_db_bytes);
        if self.db.is_none() || !small {
            return false;
        }
        // Closing may checkpoint (we may be the last connection): the stamp is taken
        // after, so that its own writes do not count as news.
        self.db = None;
        self.stamp = Some(stamp(&self.path));
        self.rule = Some(rule);
        true
    }
}
