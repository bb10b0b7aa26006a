//! Checks the app makes before it adds a database or a destination, without changing
//! anything: is this a SQLite database and in which journal mode, can the destination
//! be reached or written, which other processes have the database open.

use std::path::{Path, PathBuf};

use tideline_ltx::Txid;

use crate::error::Error;
use crate::storage::ReplicaClient;

/// Checks a replica can be reached by listing it; returns its newest TXID. This is
/// the app's "Test connection".
pub async fn probe_replica(client: &dyn ReplicaClient) -> Result<Option<Txid>, Error> {
    crate::storage::replica_newest_txid(client).await
}

/// Checks that a folder destination can be written: creates it if needed, then
/// writes, syncs and deletes a small probe file in it.
pub fn check_folder_writable(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(Error::io("create backup folder", dir))?;
    let probe = dir.join(".tideline-write-test");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&probe)?;
        std::io::Write::write_all(&mut f, b"tideline")?;
        f.sync_all()
    };
    let written = write().map_err(Error::io("write a test file in", dir));
    let _ = std::fs::remove_file(&probe);
    written
}

/// What [`inspect_database`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbInfo {
    /// Bytes of the database file.
    pub size: u64,
    /// `PRAGMA journal_mode` (`wal`, `delete`, …).
    pub journal_mode: String,
}

impl DbInfo {
    /// True when the database is in WAL mode already.
    pub fn is_wal(&self) -> bool {
        self.journal_mode.eq_ignore_ascii_case("wal")
    }
}

/// Checks that `path` is a SQLite database and reads its journal mode, without
/// changing anything. Replication switches a database to WAL mode when it starts.
pub fn inspect_database(path: &Path) -> Result<DbInfo, Error> {
    // The same check replication makes, so the window never accepts a file the
    // engine then refuses (or the reverse).
    crate::capture::check_sqlite_header(path)?;
    let size = std::fs::metadata(path)
        .map_err(Error::io("stat", path))?
        .len();
    let sqlite = |source| Error::Sqlite {
        path: path.to_owned(),
        source,
    };
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite)?;
    let journal_mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(sqlite)?;
    Ok(DbInfo { size, journal_mode })
}

/// Other processes that have `db` (or its WAL) open, by their `/proc/*/fd` links:
/// an extra on Linux that names them, and that sees programs holding no SQLite lock.
/// Empty where `/proc` does not exist; [`ExclusiveHold`] is the portable check.
pub(crate) fn open_by_other_processes(db: &Path) -> Vec<u32> {
    let me = std::process::id();
    let Ok(db) = std::fs::canonicalize(db) else {
        return Vec::new();
    };
    let wal = crate::capture::wal_path(&db);
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        if fds
            .flatten()
            .filter_map(|fd| std::fs::read_link(fd.path()).ok())
            .any(|target| target == db || target == wal)
        {
            pids.push(pid);
        }
    }
    pids
}

/// [`inspect_database`] off the async threads (it opens the file with SQLite), for
/// callers on an async runtime such as the app's commands.
pub async fn inspect(path: PathBuf) -> Result<DbInfo, Error> {
    crate::blocking::blocking("inspect", move || inspect_database(&path)).await
}
