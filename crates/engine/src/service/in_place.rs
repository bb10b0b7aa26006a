//! Restores the app starts: a verified copy beside the database, and the in-place
//! restore (and its undo) that stops replication, makes sure no other program has the
//! database open, keeps a safety copy and puts the restored database in its place.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::ServiceError;
use super::inspect::open_by_other_processes;
use crate::error::Error;
use crate::restore::{
    IntegrityCheck, Overwrite, RestoreOptions, Restored, Target, check_output, restore_plan_to,
    stage_file, stage_plan,
};
use crate::storage::ReplicaClient;

/// What an in-place restore puts over the database.
pub(super) enum Source {
    Replica(Target),
    File(PathBuf),
}

/// What an in-place restore (or its undo) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InPlaceRestore {
    /// What was restored (TXID 0 for an undo: a plain file records none).
    pub restored: Restored,
    /// The copy of the database as it was before: the restore point to undo with.
    pub safety_copy: PathBuf,
}

/// The in-place steps, with replication stopped.
pub(super) async fn replace_stopped(
    path: &Path,
    client: Arc<dyn ReplicaClient>,
    source: Source,
    now: SystemTime,
) -> Result<InPlaceRestore, ServiceError> {
    let safety = free_sibling_path(path, "before-restore", now);
    let (db, copy) = (path.to_owned(), safety.clone());
    let hold = crate::blocking::blocking("safety copy", move || {
        let hold = ExclusiveHold::take(&db)?;
        hold.copy_to(&copy)?;
        Ok::<_, ServiceError>(hold)
    })
    .await?;
    let opts = RestoreOptions::new(Overwrite::Replace, IntegrityCheck::Full);
    let staged = match source {
        Source::Replica(target) => {
            match crate::restore::plan_restore(client.as_ref(), target).await {
                Ok(files) => stage_plan(client, files, path, opts).await,
                Err(e) => Err(e),
            }
        }
        Source::File(src) => {
            let db = path.to_owned();
            crate::blocking::blocking("restore", move || stage_file(&src, &db, opts)).await
        }
    };
    let db = path.to_owned();
    let installed = crate::blocking::blocking("restore", move || {
        let staged = staged?;
        // Released just before the rename: on Windows a file open elsewhere cannot be
        // replaced, and closing a WAL database's last connection deletes `<db>-wal`
        // by name, which must happen before the new database can have one. Closing
        // also checkpoints, so the old database loses no frames to the removal.
        hold.release()?;
        let others = open_by_other_processes(&db);
        if !others.is_empty() {
            return Err(in_use(&db, others));
        }
        Ok(staged.install()?)
    })
    .await;
    match installed {
        Ok(restored) => Ok(InPlaceRestore {
            restored,
            safety_copy: safety,
        }),
        Err(e) => {
            // The database was not replaced, so its copy is not needed.
            let _ = std::fs::remove_file(&safety);
            Err(e)
        }
    }
}

/// A connection holding SQLite's exclusive lock on a database: while it lives no
/// other connection, in any process, can read or write it.
///
/// Taking it is the portable "is another program using this database" check. In
/// WAL mode every SQLite connection keeps a SHARED lock on the database file from
/// its first read until it closes (that is how SQLite itself decides whether it is
/// the last connection when closing), so the EXCLUSIVE lock that `locking_mode=EXCLUSIVE`
/// takes on first access is refused while any other connection exists — through
/// the VFS's own locks: POSIX advisory locks on Linux and macOS, `LockFileEx` on
/// Windows, which a probe of our own could get subtly wrong. Busy timeout 0: a
/// refusal is immediate. A database in rollback-journal mode is seen only while
/// another connection is inside a transaction (idle ones hold no lock there), and
/// programs that open the file without SQLite hold no lock at all; on Linux
/// `open_by_other_processes` covers both, and names the processes.
#[derive(Debug)]
pub struct ExclusiveHold {
    conn: rusqlite::Connection,
    path: PathBuf,
}

impl ExclusiveHold {
    /// Takes the lock, or says who is in the way ([`ServiceError::InUse`]).
    pub fn take(db: &Path) -> Result<ExclusiveHold, ServiceError> {
        let sqlite = |source| Error::Sqlite {
            path: db.to_owned(),
            source,
        };
        let conn = rusqlite::Connection::open_with_flags(
            db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sqlite)?;
        conn.busy_timeout(Duration::ZERO).map_err(sqlite)?;
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
            .map_err(sqlite)?;
        match conn.execute_batch("BEGIN EXCLUSIVE; COMMIT") {
            Ok(()) => Ok(ExclusiveHold {
                conn,
                path: db.to_owned(),
            }),
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                ) =>
            {
                Err(in_use(db, open_by_other_processes(db)))
            }
            Err(e) => Err(sqlite(e).into()),
        }
    }

    /// Writes a compact copy of the database (its WAL included) to `out`.
    pub(crate) fn copy_to(&self, out: &Path) -> Result<(), Error> {
        self.conn
            .execute("VACUUM INTO ?1", [out.to_string_lossy()])
            .map_err(|source| Error::Sqlite {
                path: self.path.clone(),
                source,
            })?;
        Ok(())
    }

    /// Closes the connection, releasing the lock (and, in WAL mode, checkpointing
    /// and removing `<db>-wal`, as SQLite's last connection does).
    pub fn release(self) -> Result<(), Error> {
        let path = self.path;
        self.conn
            .close()
            .map_err(|(_, source)| Error::Sqlite { path, source })
    }
}

pub(super) fn in_use(path: &Path, pids: Vec<u32>) -> ServiceError {
    ServiceError::InUse {
        path: path.to_owned(),
        pids,
    }
}

/// ` (process 12, 34)`, or nothing when the processes are unknown.
pub(super) fn pid_list(pids: &[u32]) -> String {
    if pids.is_empty() {
        return String::new();
    }
    let list: Vec<String> = pids.iter().map(u32::to_string).collect();
    format!(" (process {})", list.join(", "))
}

/// Where a restored copy goes by default: next to the database, named
/// `<stem>-restored-<UTC time>.db`, e.g. `app-restored-2026-11-24T15-02-11.db`.
pub fn restored_copy_path(db: &Path, now: SystemTime) -> PathBuf {
    sibling_path(db, "restored", now)
}

pub(super) fn sibling_path(db: &Path, what: &str, now: SystemTime) -> PathBuf {
    let stem = db
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "database".into());
    let ext = db
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    db.with_file_name(format!(
        "{stem}-{what}-{}{ext}",
        crate::time::file_timestamp(now)
    ))
}

/// [`sibling_path`], or with `-2`, `-3`, … appended to the stem when that exists (an
/// undo within the second of its restore would otherwise collide with its safety
/// copy).
pub(super) fn free_sibling_path(db: &Path, what: &str, now: SystemTime) -> PathBuf {
    let first = sibling_path(db, what, now);
    if !first.exists() {
        return first;
    }
    let stem = first
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = first
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    (2u32..)
        .map(|n| first.with_file_name(format!("{stem}-{n}{ext}")))
        .find(|p| !p.exists())
        .expect("some numbered name is free")
}

/// Phases of a restore, for progress reports (serialized as `{"phase": "writing",
/// "files": 3}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum RestorePhase {
    /// Listing the replica and choosing files.
    Planning,
    /// Fetching and merging this many files into the output.
    Writing {
        /// Files in the plan.
        files: usize,
    },
    /// Done and verified with `PRAGMA integrity_check`.
    Verified,
}

/// Restores `target` into a new file `out` (refused if it exists, or if a `-wal`,
/// `-shm` or `-journal` lies beside it: [`Overwrite::Refuse`]), verified with `PRAGMA
/// integrity_check` before it appears; `progress` hears each phase.
pub async fn restore_copy(
    client: Arc<dyn ReplicaClient>,
    target: Target,
    out: &Path,
    progress: impl Fn(RestorePhase) + Send,
) -> Result<Restored, Error> {
    let opts = RestoreOptions::new(Overwrite::Refuse, IntegrityCheck::Full);
    check_output(out, opts.overwrite)?;
    progress(RestorePhase::Planning);
    let files = crate::restore::plan_restore(client.as_ref(), target).await?;
    progress(RestorePhase::Writing { files: files.len() });
    let restored = restore_plan_to(client, files, out, opts).await?;
    progress(RestorePhase::Verified);
    Ok(restored)
}
