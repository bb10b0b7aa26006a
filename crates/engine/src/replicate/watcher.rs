//! Wake-ups on change: a file-system watcher on the database's directory that wakes
//! the task when the `-wal` or the database may hold news, and never on opens or
//! reads (least of all its own).

use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

/// Watches the database's directory and sends a wake-up when the `-wal` or the database
/// file may hold news. Armed once for the task's life: re-arming costs two syscalls
/// and leaves a window in which a change goes unseen.
pub(super) struct WalWatcher {
    _watcher: notify::RecommendedWatcher,
}

impl WalWatcher {
    /// `None` if the platform gives no events (polling takes over then).
    pub(super) fn new(db: &Path, wake: mpsc::Sender<()>) -> Option<WalWatcher> {
        use notify::Watcher;
        let dir = db
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned();
        let watched = WatchedPaths {
            wal: crate::capture::wal_path(db),
            db: db.to_owned(),
            dir: dir.clone(),
        };
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            // An error from the watcher may mean lost events: look, to be safe.
            if res.as_ref().map_or(true, |ev| watched.wakes(ev)) {
                // A full channel already holds a wake-up: coalesce.
                let _ = wake.try_send(());
            }
        })
        .ok()?;
        watcher
            .watch(&dir, notify::RecursiveMode::NonRecursive)
            .ok()?;
        Some(WalWatcher { _watcher: watcher })
    }
}

/// The paths whose events can wake a database's task.
struct WatchedPaths {
    wal: PathBuf,
    db: PathBuf,
    dir: PathBuf,
}

impl WatchedPaths {
    /// True for an event that can mean new frames or a replaced file: data written,
    /// a file created, removed or renamed, a writer's close. Never an open, a read or
    /// a close after reading: the replicator's own look at the `-wal` causes those,
    /// and waking on them made an idle replicator poll itself at a kilohertz. Nor a
    /// metadata change (permissions, times), which carries no frames.
    fn wakes(&self, ev: &notify::Event) -> bool {
        use notify::EventKind;
        use notify::event::{AccessKind, AccessMode, ModifyKind};
        // The kernel's queue overflowed: events were lost, so any file may have changed.
        if ev.need_rescan() {
            return true;
        }
        let news = match ev.kind {
            EventKind::Create(_) | EventKind::Remove(_) => true,
            EventKind::Modify(ModifyKind::Metadata(_)) => false,
            EventKind::Modify(_) => true,
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
            EventKind::Access(_) => false,
            EventKind::Any | EventKind::Other => true,
        };
        news && ev
            .paths
            .iter()
            .any(|p| p == &self.wal || p == &self.db || p == &self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::EventKind;
    use notify::event::{
        AccessKind, AccessMode, CreateKind, DataChange, Flag, MetadataKind, ModifyKind, RemoveKind,
        RenameMode,
    };

    fn watched() -> WatchedPaths {
        WatchedPaths {
            wal: PathBuf::from("/d/app.db-wal"),
            db: PathBuf::from("/d/app.db"),
            dir: PathBuf::from("/d"),
        }
    }

    fn on(kind: EventKind, path: &str) -> notify::Event {
        notify::Event::new(kind).add_path(PathBuf::from(path))
    }

    #[test]
    fn opens_reads_and_metadata_never_wake() {
        let w = watched();
        for kind in [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Read),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
            EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)),
        ] {
            assert!(!w.wakes(&on(kind, "/d/app.db-wal")), "{kind:?} on the WAL");
            assert!(!w.wakes(&on(kind, "/d/app.db")), "{kind:?} on the database");
        }
    }

    #[test]
    fn writes_creates_removes_and_renames_of_the_wal_or_database_wake() {
        let w = watched();
        for kind in [
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            EventKind::Modify(ModifyKind::Any),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Modify(ModifyKind::Name(RenameMode::From)),
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Create(CreateKind::File),
            EventKind::Remove(RemoveKind::File),
        ] {
            assert!(w.wakes(&on(kind, "/d/app.db-wal")), "{kind:?} on the WAL");
            assert!(w.wakes(&on(kind, "/d/app.db")), "{kind:?} on the database");
            assert!(!w.wakes(&on(kind, "/d/other.db-wal")), "{kind:?} elsewhere");
            assert!(!w.wakes(&on(kind, "/d/app.db-shm")), "{kind:?} on the -shm");
        }
        assert!(w.wakes(&on(EventKind::Remove(RemoveKind::Folder), "/d")));
    }

    #[test]
    fn lost_events_wake() {
        let ev = notify::Event::new(EventKind::Other).set_flag(Flag::Rescan);
        assert!(watched().wakes(&ev));
    }
}
