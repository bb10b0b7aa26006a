//! The one-replicator-per-database lock: advisory locks on `tideline.lock` in the
//! meta directory, and the holder's description written into it so that the next
//! replicator's refusal can name who holds it.

use std::fs::{self, File};
use std::path::Path;

use super::meta_dir::MetaDir;
use crate::error::{Error, Result};

/// Takes the one-replicator-per-database locks: an advisory lock on `tideline.lock` in
/// the meta directory, and, when the meta directory is configured elsewhere, one in the
/// default meta directory of the database's *canonical* path too, so that two
/// replicators reaching one database by different meta paths or through a symlink
/// still exclude each other (the app and `tideline replicate` included). The OS
/// releases them when the process ends, however it ends. The holder writes its PID
/// and name into the file, so the refusal can name it. A default meta directory that
/// cannot be created (a read-only folder) only skips the second lock.
pub(super) fn take_lock(meta: &MetaDir, db: &Path) -> Result<Vec<File>> {
    let mut locks = vec![lock_file(&meta.lock_file(), db)?];
    if let Ok(canonical) = fs::canonicalize(db) {
        let shared = MetaDir::default_for(&canonical);
        let same = fs::canonicalize(meta.path()).is_ok_and(|m| m == shared.path());
        if !same && fs::create_dir_all(shared.path()).is_ok() {
            locks.push(lock_file(&shared.lock_file(), db)?);
        }
    }
    Ok(locks)
}

fn lock_file(path: &Path, db: &Path) -> Result<File> {
    use std::io::Write;
    let mut f = File::options()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(Error::io("open lock file", path))?;
    match f.try_lock() {
        Ok(()) => {
            // Who holds it, for the next one's refusal. Best effort: the lock itself
            // is what excludes.
            let _ = f
                .set_len(0)
                .and_then(|()| writeln!(f, "{}", holder_description(std::process::id())));
            Ok(f)
        }
        Err(fs::TryLockError::WouldBlock) => Err(Error::AlreadyReplicating {
            db: db.to_owned(),
            lock: path.to_owned(),
            holder: fs::read_to_string(path)
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty()),
        }),
        Err(fs::TryLockError::Error(e)) => Err(Error::io("lock", path)(e)),
    }
}

/// "process 1234 (tideline replicate)": the PID, and the program and its first argument
/// where the OS shows them (no further arguments: a URL may carry credentials).
fn holder_description(pid: u32) -> String {
    let cmdline = fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|a| !a.is_empty())
                .take(2)
                .enumerate()
                .map(|(i, a)| {
                    let a = String::from_utf8_lossy(a).into_owned();
                    if i == 0 {
                        Path::new(&a)
                            .file_name()
                            .map_or(a.clone(), |n| n.to_string_lossy().into_owned())
                    } else {
                        a
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|c| !c.is_empty());
    match cmdline {
        Some(c) => format!("process {pid} ({c})"),
        None => format!("process {pid}"),
    }
}
