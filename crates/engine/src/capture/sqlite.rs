//! How capture talks to SQLite: the file header check, our connections' settings,
//! and the statements of Litestream's locking scheme (`_litestream_seq`,
//! `_litestream_lock`) that the read lock and checkpoints are built on.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use crate::error::{Error, Result};

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Checks that `path` is an SQLite database: its header starts with SQLite's magic,
/// or it is empty (a database SQLite has not initialised yet).
/// [`Error::DatabaseMissing`] if there is no such file, [`Error::NotSqlite`] if it is
/// something else.
pub fn check_sqlite_header(path: &Path) -> Result<()> {
    let mut f = File::open(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            Error::DatabaseMissing(path.to_owned())
        } else {
            Error::Io {
                op: "open",
                path: path.to_owned(),
                source,
            }
        }
    })?;
    let mut magic = [0u8; 16];
    match f.read_exact(&mut magic) {
        Ok(()) if &magic == SQLITE_MAGIC => Ok(()),
        // An empty file is a database SQLite has not initialised yet.
        Err(e)
            if e.kind() == io::ErrorKind::UnexpectedEof
                && f.metadata().is_ok_and(|m| m.len() == 0) =>
        {
            Ok(())
        }
        _ => Err(Error::NotSqlite(path.to_owned())),
    }
}

pub(super) fn sqlite_err(path: &Path) -> impl Fn(rusqlite::Error) -> Error + use<> {
    let path = path.to_owned();
    move |source| Error::Sqlite {
        path: path.clone(),
        source,
    }
}

/// One of our connections to `path`.
pub(super) fn open_connection(path: &Path, busy_timeout: Duration) -> Result<Connection> {
    let c = Connection::open(path).map_err(sqlite_err(path))?;
    c.busy_timeout(busy_timeout).map_err(sqlite_err(path))?;
    // Our own commits (bookkeeping writes) must never checkpoint on their own.
    c.pragma_update(None, "wal_autocheckpoint", 0)
        .map_err(sqlite_err(path))?;
    Ok(c)
}

/// Litestream's bookkeeping tables: writes to `_litestream_seq` start or restart the
/// WAL on our terms; reading it starts our read transaction.
pub(super) fn create_bookkeeping(c: &Connection) -> rusqlite::Result<()> {
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS _litestream_seq (id INTEGER PRIMARY KEY, seq INTEGER);
         CREATE TABLE IF NOT EXISTS _litestream_lock (id INTEGER);",
    )
}

pub(super) fn begin_read(c: &Connection) -> rusqlite::Result<()> {
    c.execute_batch("BEGIN")?;
    c.query_row("SELECT COUNT(1) FROM _litestream_seq", [], |_| Ok(()))
}

pub(super) fn end_read(c: &Connection) -> rusqlite::Result<()> {
    c.execute_batch("COMMIT")
}

pub(super) fn bump_seq(c: &Connection) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO _litestream_seq (id, seq) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET seq = seq + 1",
        [],
    )
    .map(|_| ())
}

pub(super) fn ensure_wal_mode(c: &Connection, path: &Path) -> Result<()> {
    let mode: String = c
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(sqlite_err(path))?;
    if mode.eq_ignore_ascii_case("wal") {
        return Ok(());
    }
    // Litestream converts the database too; replication needs the WAL.
    let now: String = c
        .query_row("PRAGMA journal_mode=wal", [], |r| r.get(0))
        .map_err(|e| Error::NotWal {
            path: path.to_owned(),
            mode: mode.clone(),
            detail: e.to_string(),
        })?;
    if !now.eq_ignore_ascii_case("wal") {
        return Err(Error::NotWal {
            path: path.to_owned(),
            mode,
            detail: format!("SQLite kept journal_mode={now}"),
        });
    }
    Ok(())
}

/// Keeps SQLite from deleting the WAL when our connections close last, which would
/// force a full-database L0 on the next start.
pub(super) fn persist_wal(c: &Connection) {
    // Best effort: without it replication stays correct, only restarts cost more.
    let mut on = 1;
    let _ = c.file_control(
        rusqlite::DEFAULT_NAME,
        rusqlite::FileControl::PersistWal(&mut on),
    );
}
