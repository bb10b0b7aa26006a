//! Directories of databases (`dir:` entries): finding the SQLite databases one stands
//! for, and following them as they are created and removed (`watch: true`) with one
//! file-system watcher per entry, not a re-scan.
//!
//! A file counts when its name matches the entry's pattern, it is not a SQLite side
//! file (`-wal`, `-shm`, `-journal`), and its first 16 bytes are SQLite's header, as
//! in Litestream 0.5.17. An empty file (a database an application is about to write)
//! is picked up by the event of its first write.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::config::{Config, DbConfig, DirConfig};
use crate::error::{Error, Result};

/// SQLite's file header.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// How long file events are gathered before they are acted on: an application
/// creating a database writes it in several steps (Litestream's 250 ms).
pub(crate) const DEBOUNCE: Duration = Duration::from_millis(250);

/// Events kept for the directory monitor before it is told to re-scan instead.
const EVENT_QUEUE: usize = 4096;

/// True if `path` is a SQLite database (starts with SQLite's header).
pub fn is_sqlite_database(path: &Path) -> bool {
    let mut header = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .is_ok_and(|()| &header == SQLITE_HEADER)
}

/// The databases under `dir` (sorted by path): every file the entry matches that is a
/// SQLite database, in sub-folders too with `recursive`.
pub fn find_databases(dir: &DirConfig) -> Result<Vec<PathBuf>> {
    let mut found = BTreeSet::new();
    let mut folders = vec![dir.dir.clone()];
    while let Some(folder) = folders.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(e) => e,
            Err(source) if folder == dir.dir => {
                return Err(Error::DirectoryUnreadable {
                    dir: dir.dir.clone(),
                    source,
                });
            }
            // A sub-folder removed while walking: nothing to find there.
            Err(_) => continue,
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if dir.recursive {
                    folders.push(path);
                }
            } else if dir.matches(&path) && is_sqlite_database(&path) {
                found.insert(path);
            }
        }
    }
    Ok(found.into_iter().collect())
}

/// Every database `config` stands for: its `path:` entries, then each `dir:` entry's
/// databases as found now. A `dir:` entry without `watch:` that finds none is an
/// error, as in Litestream (with `watch:` they may come later).
pub fn databases_of(config: &Config) -> Result<Vec<DbConfig>> {
    let mut dbs = config.dbs.clone();
    for dir in &config.dirs {
        let found = find_databases(dir)?;
        if found.is_empty() && !dir.watch {
            return Err(Error::NoDatabasesInDirectory {
                dir: dir.dir.clone(),
                pattern: dir.pattern.clone(),
            });
        }
        for path in found {
            if !dbs.iter().any(|d| d.path == path) {
                dbs.push(dir.entry(&path)?);
            }
        }
    }
    Ok(dbs)
}

/// What a directory's events may mean for one path: look again whether it is a
/// database to replicate, or stop replicating what was under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// Created, written or renamed into place: maybe a new database.
    Appeared(PathBuf),
    /// Removed or renamed away: the database there, or every database under a
    /// removed folder, is gone.
    Vanished(PathBuf),
    /// Events were lost: look at the whole directory again.
    Rescan,
}

/// Follows one `dir:` entry's folder (and sub-folders, with `recursive`), sending what
/// changed. Dropping it stops the watch.
pub(crate) struct DirWatcher {
    _watcher: notify::RecommendedWatcher,
}

impl DirWatcher {
    /// Watches `dir.dir`; changes go to `tx` (a full queue becomes a re-scan).
    pub(crate) fn new(dir: &DirConfig, tx: mpsc::Sender<Change>) -> Result<DirWatcher> {
        use notify::Watcher;
        let root = dir.dir.clone();
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            for change in changes(res) {
                if tx.try_send(change).is_err() {
                    // Full: the monitor will look at everything again.
                    let _ = tx.try_send(Change::Rescan);
                    return;
                }
            }
        })
        .map_err(|e| watch_error(&root, e))?;
        let mode = if dir.recursive {
            notify::RecursiveMode::Recursive
        } else {
            notify::RecursiveMode::NonRecursive
        };
        watcher
            .watch(&dir.dir, mode)
            .map_err(|e| watch_error(&dir.dir, e))?;
        Ok(DirWatcher { _watcher: watcher })
    }

    /// The capacity of the queue to give [`DirWatcher::new`].
    pub(crate) fn queue() -> (mpsc::Sender<Change>, mpsc::Receiver<Change>) {
        mpsc::channel(EVENT_QUEUE)
    }
}

fn watch_error(dir: &Path, e: notify::Error) -> Error {
    let source = match e.kind {
        notify::ErrorKind::Io(io) => io,
        notify::ErrorKind::PathNotFound => std::io::ErrorKind::NotFound.into(),
        other => std::io::Error::other(format!("{other:?}")),
    };
    Error::DirectoryUnreadable {
        dir: dir.to_owned(),
        source,
    }
}

/// The changes one watcher callback reports. Opens, reads and metadata changes say
/// nothing; SQLite's side files never are databases.
fn changes(res: notify::Result<notify::Event>) -> Vec<Change> {
    use notify::EventKind;
    use notify::event::{ModifyKind, RenameMode};
    let ev = match res {
        Ok(ev) if !ev.need_rescan() => ev,
        _ => return vec![Change::Rescan],
    };
    let side = |p: &Path| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with("-wal") || n.ends_with("-shm") || n.ends_with("-journal"))
    };
    let paths = ev.paths.iter().filter(|p| !side(p));
    match ev.kind {
        EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
            paths.map(|p| Change::Vanished(p.clone())).collect()
        }
        // Both paths of a rename: the first went away, the second came.
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
            let mut out = Vec::new();
            let mut it = ev.paths.iter();
            if let Some(from) = it.next() {
                out.push(Change::Vanished(from.clone()));
            }
            out.extend(it.filter(|p| !side(p)).map(|p| Change::Appeared(p.clone())));
            out
        }
        EventKind::Modify(ModifyKind::Name(_)) => paths
            .flat_map(|p| [Change::Vanished(p.clone()), Change::Appeared(p.clone())])
            .collect(),
        EventKind::Create(_)
        | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any)
        | EventKind::Access(notify::event::AccessKind::Close(notify::event::AccessMode::Write))
        | EventKind::Any
        | EventKind::Other => paths.map(|p| Change::Appeared(p.clone())).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::EventKind;
    use notify::event::{
        AccessKind, AccessMode, CreateKind, Flag, ModifyKind, RemoveKind, RenameMode,
    };

    fn on(kind: EventKind, paths: &[&str]) -> notify::Result<notify::Event> {
        let mut ev = notify::Event::new(kind);
        for p in paths {
            ev = ev.add_path(PathBuf::from(p));
        }
        Ok(ev)
    }

    #[test]
    fn events_become_changes() {
        let app = || PathBuf::from("/d/app.db");
        assert_eq!(
            changes(on(EventKind::Create(CreateKind::File), &["/d/app.db"])),
            vec![Change::Appeared(app())]
        );
        assert_eq!(
            changes(on(EventKind::Remove(RemoveKind::File), &["/d/app.db"])),
            vec![Change::Vanished(app())]
        );
        assert_eq!(
            changes(on(
                EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
                &["/d/app.db.tmp", "/d/app.db"]
            )),
            vec![
                Change::Vanished("/d/app.db.tmp".into()),
                Change::Appeared(app())
            ]
        );
        // Side files and reads say nothing.
        assert!(changes(on(EventKind::Create(CreateKind::File), &["/d/app.db-wal"])).is_empty());
        assert!(changes(on(EventKind::Access(AccessKind::Read), &["/d/app.db"])).is_empty());
        assert!(
            changes(on(
                EventKind::Access(AccessKind::Close(AccessMode::Read)),
                &["/d/app.db"]
            ))
            .is_empty()
        );
        // Lost events: look at everything.
        let lost = Ok(notify::Event::new(EventKind::Other).set_flag(Flag::Rescan));
        assert_eq!(changes(lost), vec![Change::Rescan]);
        assert_eq!(
            changes(Err(notify::Error::generic("x"))),
            vec![Change::Rescan]
        );
    }
}
