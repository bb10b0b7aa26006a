//! Putting a restored database at its output path without ever mixing old and new
//! files. This is the one home of the overwrite policy: `tideline restore`,
//! `restore-if-db-not-exists` and the app's restores (as a copy, in place, undo) all
//! go through [`stage`] / [`stage_file`] and [`Staged::install`].
//!
//! The order, and why it is crash-safe:
//!
//! 1. Refuse what the policy refuses ([`check_output`]) before any work.
//! 2. Write the database to `<out>.tmp` and fsync it; every input's checksum is
//!    verified while it is merged ([`apply`](mod@super::apply)).
//! 3. Run the integrity check asked for on the temporary file, opened `immutable=1`:
//!    SQLite then reads exactly the bytes that will be installed, never a `-wal`
//!    beside them, and creates no `-wal`/`-shm` of its own. On failure the temporary
//!    file is deleted and the output is untouched.
//! 4. Remove the output's stale `-shm`, `-journal` and `-wal` (the WAL last), then
//!    fsync the directory.
//! 5. Rename the temporary file over the output and fsync the directory.
//!
//! A kill at any point leaves one of: the old database with its sidecars (before 4);
//! the old database without some of them (during 4: a database the caller asked to
//! replace loses its uncheckpointed frames, nothing else); the new database alone
//! (after 5). Never the new database beside the old one's WAL, which SQLite would
//! replay into it (Litestream 0.5.17 restores a malformed database that way).

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use super::apply::{Restored, sync_parent, temp_path, write_merged};
use crate::error::{Error, Result};

/// What a restore may do to an existing output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Overwrite {
    /// Refuse a non-empty output and any `-wal`, `-shm` or `-journal` beside it.
    #[default]
    Refuse,
    /// Replace the output; its stale `-wal`, `-shm` and `-journal` are removed after
    /// the new database is verified and before it is renamed in.
    Replace,
}

/// How a restore treats its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RestoreOptions {
    /// What may happen to an existing output.
    pub overwrite: Overwrite,
    /// The check the new database must pass before it is put in place.
    pub check: IntegrityCheck,
}

impl RestoreOptions {
    /// Options with this policy and check.
    pub fn new(overwrite: Overwrite, check: IntegrityCheck) -> Self {
        RestoreOptions { overwrite, check }
    }
}

/// How thoroughly to check a restored database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IntegrityCheck {
    /// No check.
    #[default]
    None,
    /// `PRAGMA quick_check`.
    Quick,
    /// `PRAGMA integrity_check`.
    Full,
}

/// `<db>-shm`, `<db>-journal`, `<db>-wal`: files SQLite would read with, or apply to,
/// whatever database is at `db` — in the order they are removed (the WAL last, so an
/// interrupted removal keeps the old database's frames as long as possible).
pub fn sidecars(db: &Path) -> [PathBuf; 3] {
    ["-shm", "-journal", "-wal"].map(|suffix| {
        let mut s = db.as_os_str().to_owned();
        s.push(suffix);
        PathBuf::from(s)
    })
}

/// Refuses an output the policy does not allow: a directory always; with
/// [`Overwrite::Refuse`], a non-empty file or any sidecar beside it.
pub fn check_output(out: &Path, overwrite: Overwrite) -> Result<()> {
    if out.is_dir() {
        return Err(Error::OutputIsDirectory(out.to_owned()));
    }
    if overwrite == Overwrite::Replace {
        return Ok(());
    }
    if fs::metadata(out).is_ok_and(|m| m.len() > 0) {
        return Err(Error::OutputExists(out.to_owned()));
    }
    if let Some(sidecar) = sidecars(out).into_iter().find(|s| s.exists()) {
        return Err(Error::StaleSidecar(sidecar));
    }
    Ok(())
}

/// A restored database written and verified beside its output, not yet put in
/// place. Dropping it deletes the temporary file and leaves the output untouched.
#[derive(Debug)]
#[must_use = "a staged restore does nothing until it is installed"]
pub struct Staged {
    tmp: PathBuf,
    out: PathBuf,
    overwrite: Overwrite,
    restored: Restored,
    installed: bool,
}

impl Staged {
    /// What was restored.
    pub fn restored(&self) -> Restored {
        self.restored
    }

    /// The verified temporary file (`<out>.tmp`).
    pub fn temp_path(&self) -> &Path {
        &self.tmp
    }

    /// The output it will replace.
    pub fn output(&self) -> &Path {
        &self.out
    }

    /// Puts the database in place: removes the output's stale sidecars (fsyncing the
    /// directory), then renames the temporary file over the output (fsyncing again).
    /// On an error the temporary file is deleted; the output is the old database,
    /// with or without its sidecars, never the new one beside the old WAL.
    pub fn install(mut self) -> Result<Restored> {
        // Checked again: under `Refuse`, something may have appeared since staging.
        check_output(&self.out, self.overwrite)?;
        for sidecar in sidecars(&self.out) {
            match fs::remove_file(&sidecar) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(Error::Io {
                        op: "remove the old database's sidecar (the old database was left in place)",
                        path: sidecar,
                        source,
                    });
                }
            }
        }
        // The removals must be durable before the new file can appear beside them.
        sync_parent(&self.out)?;
        fs::rename(&self.tmp, &self.out)
            .map_err(Error::io("rename restored database to", &self.out))?;
        self.installed = true;
        sync_parent(&self.out)?;
        Ok(self.restored)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.installed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Merges `inputs` (`(name, reader)` pairs, in plan order) into `<out>.tmp`, verifying
/// every checksum, and runs the check of `opts` on it. Nothing at `out` is touched;
/// [`Staged::install`] puts it in place.
pub fn stage<R: Read>(
    inputs: Vec<(String, R)>,
    out: &Path,
    opts: RestoreOptions,
) -> Result<Staged> {
    prepare(out, opts.overwrite)?;
    let tmp = temp_path(out);
    let restored = match write_merged(inputs, &tmp) {
        Ok(r) => r,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    finish_stage(tmp, out, restored, opts)
}

/// Stages a copy of an existing database file `src` (a safety copy, to undo a
/// restore) the same way as [`stage`]. The result's TXID is 0: a plain database file
/// records none. A non-empty `-wal` beside `src` is refused ([`Error::SourceHasWal`]):
/// the file alone would not hold its last changes.
pub fn stage_file(src: &Path, out: &Path, opts: RestoreOptions) -> Result<Staged> {
    let src_wal = sidecars(src)[2].clone();
    if fs::metadata(&src_wal).is_ok_and(|m| m.len() > 0) {
        return Err(Error::SourceHasWal(src_wal));
    }
    prepare(out, opts.overwrite)?;
    let tmp = temp_path(out);
    let copied = fs::copy(src, &tmp)
        .map_err(Error::io("copy", src))
        .and_then(|bytes| {
            File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(Error::io("fsync", &tmp))?;
            Ok(bytes)
        });
    let bytes = match copied {
        Ok(b) => b,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let page_size = read_page_size(&tmp).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })?;
    // A plain database file records no TXID.
    let restored = Restored {
        txid: tideline_ltx::Txid(0),
        page_size,
        pages: u32::try_from(bytes / u64::from(page_size.max(1))).unwrap_or(u32::MAX),
        bytes,
    };
    finish_stage(tmp, out, restored, opts)
}

fn prepare(out: &Path, overwrite: Overwrite) -> Result<()> {
    check_output(out, overwrite)?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(Error::io("create the output directory", dir))?;
    }
    Ok(())
}

fn finish_stage(
    tmp: PathBuf,
    out: &Path,
    restored: Restored,
    opts: RestoreOptions,
) -> Result<Staged> {
    let staged = Staged {
        tmp,
        out: out.to_owned(),
        overwrite: opts.overwrite,
        restored,
        installed: false,
    };
    // On failure `staged` drops here, deleting the temporary file.
    integrity(&staged.tmp, opts.check, out)?;
    Ok(staged)
}

/// The page size a database file's header gives.
fn read_page_size(db: &Path) -> Result<u32> {
    let mut h = [0u8; 100];
    File::open(db)
        .and_then(|mut f| f.read_exact(&mut h))
        .map_err(|_| Error::NotSqlite(db.to_owned()))?;
    if &h[..16] != b"SQLite format 3\0" {
        return Err(Error::NotSqlite(db.to_owned()));
    }
    let ps = u32::from(u16::from_be_bytes([h[16], h[17]]));
    Ok(if ps == 1 { 65_536 } else { ps })
}

/// Runs SQLite's integrity check on the database file `db` alone: it is opened
/// read-only and `immutable=1`, so no `-wal` beside it is read and no sidecar is
/// created. Changes nothing; says what is wrong on failure.
pub fn check_integrity(db: &Path, mode: IntegrityCheck) -> Result<()> {
    integrity(db, mode, db)
}

fn integrity(db: &Path, mode: IntegrityCheck, report_as: &Path) -> Result<()> {
    let pragma = match mode {
        IntegrityCheck::None => return Ok(()),
        IntegrityCheck::Quick => "quick_check",
        IntegrityCheck::Full => "integrity_check",
    };
    let sqlite = |source| Error::Sqlite {
        path: db.to_owned(),
        source,
    };
    let verdict: String = {
        let conn = rusqlite::Connection::open_with_flags(
            immutable_uri(db),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                | rusqlite::OpenFlags::SQLITE_OPEN_URI
                | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sqlite)?;
        // A database too damaged to check ("malformed") fails the check too.
        conn.query_row(&format!("PRAGMA {pragma}"), [], |r| r.get(0))
            .unwrap_or_else(|e| e.to_string())
    };
    if verdict == "ok" {
        return Ok(());
    }
    Err(Error::IntegrityCheck {
        mode: pragma,
        detail: verdict,
        path: report_as.to_owned(),
    })
}

/// `file:<absolute path, percent-encoded>?immutable=1`. Windows paths become
/// `file:/C:/…`, which SQLite's Windows VFS reads as the drive path.
fn immutable_uri(path: &Path) -> String {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut uri = String::from("file:");
    let bytes = abs.as_os_str().as_encoded_bytes();
    if bytes.first() != Some(&b'/') {
        uri.push('/');
    }
    for &b in bytes {
        let b = if cfg!(windows) && b == b'\\' { b'/' } else { b };
        if b.is_ascii_alphanumeric() || b"-._~/:".contains(&b) {
            uri.push(char::from(b));
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str("?immutable=1");
    uri
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_escape_what_sqlite_would_parse() {
        let uri = immutable_uri(Path::new("/a b/x?y#z%.db"));
        assert_eq!(uri, "file:/a%20b/x%3Fy%23z%25.db?immutable=1");
    }
}
