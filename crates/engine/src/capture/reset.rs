//! `reset`: drops a database's local replication state, as `litestream reset` does, for
//! recovering from damaged or missing local LTX files. The database file is not
//! touched, nor is the replica.
//!
//! What goes: the meta directory's `ltx/` (the local L0 files, whose newest is the
//! position, and the levels' local copies). Without them, the next replication takes
//! the replica's newest file as the position, and its first capture is the whole
//! database at the TXID after it: a fresh snapshot, which is what Litestream's next
//! sync writes after its reset too. The replica's history stays restorable.
//!
//! The shipped record stays: it is a fact about the replica, not local capture state,
//! and it is what makes a destination that shows nothing (a drive not mounted) count
//! as missing rather than new, after a reset as before.
//!
//! Nothing is removed while a replicator runs on the database: the one-replicator lock
//! is taken first, and its holder named in the refusal.

use std::fs;
use std::path::{Path, PathBuf};

use super::lock::take_lock;
use super::meta_dir::MetaDir;
use crate::error::{Error, Result};

/// The local state of a database that a reset removes (or removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalState {
    /// The meta directory.
    pub meta_dir: PathBuf,
    /// Its `ltx/` directory, removed whole.
    pub ltx_dir: PathBuf,
    /// The files in it, sorted: what a dry run lists.
    pub files: Vec<PathBuf>,
}

/// What [`reset_local_state`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reset {
    /// The meta directory does not exist: nothing to reset.
    NoState {
        /// The meta directory looked for.
        meta_dir: PathBuf,
    },
    /// The state was removed (or, for a dry run, would be).
    Removed(LocalState),
}

/// Resets the local state of the database `db` whose meta directory is `meta` (the
/// configured `meta-path`, or the default beside the database). With `dry_run`, only
/// lists what would go. Refuses while another replicator holds the database.
pub fn reset_local_state(db: &Path, meta: &Path, dry_run: bool) -> Result<Reset> {
    match fs::metadata(db) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::DatabaseMissing(db.to_owned()));
        }
        Err(e) => return Err(Error::io("stat", db)(e)),
    }
    let meta = MetaDir::new(meta);
    if !meta.path().exists() {
        return Ok(Reset::NoState {
            meta_dir: meta.path().to_owned(),
        });
    }
    // Held until the end: no replicator starts on the state while it goes.
    let _locks = take_lock(&meta, db)?;
    let state = local_state(&meta)?;
    if !dry_run {
        remove(&meta)?;
    }
    Ok(Reset::Removed(state))
}

fn local_state(meta: &MetaDir) -> Result<LocalState> {
    let ltx_dir = meta.ltx_dir();
    let mut files = Vec::new();
    walk(&ltx_dir, &mut files)?;
    files.sort();
    Ok(LocalState {
        meta_dir: meta.path().to_owned(),
        ltx_dir,
        files,
    })
}

/// Every file under `dir` (none if it does not exist).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("list", dir)(e)),
    };
    for e in rd {
        let e = e.map_err(Error::io("list", dir))?;
        let path = e.path();
        if e.file_type().map_err(Error::io("stat", &path))?.is_dir() {
            walk(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// Removes `ltx/`. Should that fail half-way, what is left is still matched with the
/// replica at the next start before anything is uploaded.
fn remove(meta: &MetaDir) -> Result<()> {
    let ltx = meta.ltx_dir();
    match fs::remove_dir_all(&ltx) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", &ltx)(e)),
    }
}
