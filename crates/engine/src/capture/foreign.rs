//! Another replicator on the same meta directory (Litestream on the same database,
//! or a second copy of ours through another path): detected from the L0 files it
//! writes, refused while it goes on, and taken over once it has stopped.

use std::fs;
use std::time::{Duration, SystemTime};

use tideline_ltx::Txid;

use super::database::Database;
use crate::error::{Error, Result};

/// How long another replicator's newest L0 file must be left alone before it is taken
/// to have stopped, and its files become the position.
const FOREIGN_QUIET: Duration = Duration::from_secs(5);

/// The meta directory's newest L0 file at one moment, to compare with later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaStamp(Txid, FileStamp);

impl MetaStamp {
    /// The file's TXID and size.
    pub fn file(&self) -> (Txid, u64) {
        (self.0, self.1.len)
    }
}

/// What tells one file from another under the same name: its inode (where there is
/// one), size and modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileStamp {
    ino: u64,
    len: u64,
    modified: Option<SystemTime>,
}

impl FileStamp {
    pub(super) fn of(m: &fs::Metadata) -> FileStamp {
        #[cfg(unix)]
        let ino = std::os::unix::fs::MetadataExt::ino(m);
        #[cfg(not(unix))]
        let ino = 0;
        FileStamp {
            ino,
            len: m.len(),
            modified: m.modified().ok(),
        }
    }
}

impl Database {
    /// The next TXID is ours to write: a file already there was written by another
    /// program on this meta directory (Litestream on the same database), whose chain
    /// and ours would otherwise mix under the same TXIDs. Refused while that program
    /// goes on writing; once its newest file is [`FOREIGN_QUIET`] old it has stopped,
    /// and its files become the position, as at a takeover (the replicator then
    /// matches them with the replica before uploading: see
    /// [`Database::take_position_reloaded`]).
    pub(super) fn refuse_foreign(&mut self) -> Result<()> {
        let next = self.pos.map_or(Txid::FIRST, |p| p.txid.next());
        let next_path = self.meta.l0_file(next);
        // Or the file we wrote last was replaced (a replicator one step behind us
        // renames its own file over ours).
        let replaced = self.written.get().and_then(|(txid, stamp)| {
            let path = self.meta.l0_file(txid);
            let now = fs::metadata(&path).ok().map(|m| FileStamp::of(&m))?;
            (now != stamp).then_some(path)
        });
        let path = if next_path.exists() {
            next_path
        } else if let Some(p) = replaced {
            p
        } else {
            return Ok(());
        };
        let newest = self.local_l0()?.pop().map(|(_, p)| p);
        let quiet = newest
            .and_then(|p| fs::metadata(p).and_then(|m| m.modified()).ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= FOREIGN_QUIET);
        if quiet {
            self.written.set(None);
            self.pos = self.load_position()?;
            self.force_snapshot = None;
            self.restart_expected = None;
            self.restart_safe = false;
            self.position_reloaded = true;
            return Ok(());
        }
        Err(Error::AnotherReplicator {
            meta: self.meta.path().to_owned(),
            file: path,
        })
    }

    /// How long to watch the meta directory at start before capturing, and what to
    /// compare after: `None` when its newest L0 file is older than [`FOREIGN_QUIET`]
    /// (nobody is writing there), else the wait and that file's stamp. A file that
    /// fresh may be our own last run's (a restart), or another program's at work
    /// (Litestream on the same database): if it changes during the wait, it is the
    /// latter ([`Database::check_meta_quiet`]).
    pub(crate) fn meta_watch(&self) -> Result<Option<(Duration, MetaStamp)>> {
        let Some((txid, path)) = self.local_l0()?.pop() else {
            return Ok(None);
        };
        let Ok(m) = fs::metadata(&path) else {
            return Ok(None);
        };
        let age = m
            .modified()
            .ok()
            .and_then(|t| t.elapsed().ok())
            .unwrap_or(FOREIGN_QUIET);
        Ok(
            (age < FOREIGN_QUIET)
                .then(|| (FOREIGN_QUIET - age, MetaStamp(txid, FileStamp::of(&m)))),
        )
    }

    /// After the wait [`Database::meta_watch`] gave: fails with
    /// [`Error::AnotherReplicator`] if the meta directory's newest L0 file changed.
    pub(crate) fn check_meta_quiet(&self, before: MetaStamp) -> Result<()> {
        let now = self.local_l0()?.pop();
        let changed = match &now {
            Some((txid, path)) => {
                *txid != before.0
                    || fs::metadata(path).map(|m| FileStamp::of(&m)).ok() != Some(before.1)
            }
            None => true,
        };
        if !changed {
            return Ok(());
        }
        Err(Error::AnotherReplicator {
            meta: self.meta.path().to_owned(),
            file: now.map_or_else(|| self.meta.l0_dir(), |(_, p)| p),
        })
    }

    /// True (once) if the position was taken from another replicator's files since
    /// the last call.
    pub fn take_position_reloaded(&mut self) -> bool {
        std::mem::take(&mut self.position_reloaded)
    }
}
