//! Wake-ups on change: one file-system watcher for the whole process, on the folders
//! of the databases replicated, that wakes a database's task when its `-wal` or its
//! file may hold news, and never on opens or reads (least of all its own).
//!
//! One watcher, not one per database: each has a kernel instance and a thread, and
//! Linux allows 128 inotify instances per user by default, so a fleet of databases
//! would run out and fall back to polling. Databases in one folder share one watch.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use tokio::sync::mpsc;

/// A database's registration with the process's watcher; dropping it unregisters
/// (and stops watching the folder once no database there is left).
pub(super) struct WalWatcher {
    dir: PathBuf,
    id: u64,
}

impl WalWatcher {
    /// `None` if the platform gives no events (polling takes over then).
    pub(super) fn new(db: &Path, wake: mpsc::Sender<()>) -> Option<WalWatcher> {
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
        let hub = hub()?;
        let id = hub.next_id.fetch_add(1, Ordering::Relaxed);
        hub.subscribe(&dir, Sub { id, watched, wake })
            .then_some(WalWatcher { dir, id })
    }
}

impl Drop for WalWatcher {
    fn drop(&mut self) {
        if let Some(hub) = hub() {
            hub.unsubscribe(&self.dir, self.id);
        }
    }
}

/// One database's interest in its folder's events.
struct Sub {
    id: u64,
    watched: WatchedPaths,
    wake: mpsc::Sender<()>,
}

impl Sub {
    fn tell(&self) {
        // A full channel already holds a wake-up: coalesce.
        let _ = self.wake.try_send(());
    }
}

type Subs = Arc<Mutex<HashMap<PathBuf, Vec<Sub>>>>;

/// The process's watcher and who listens to which folder.
struct Hub {
    /// Held while a folder is (un)watched, so that watching and unwatching one folder
    /// happen in the order the map changed. Never held by the event callback.
    watcher: Mutex<notify::RecommendedWatcher>,
    subs: Subs,
    next_id: AtomicU64,
}

fn hub() -> Option<&'static Hub> {
    static HUB: OnceLock<Option<Hub>> = OnceLock::new();
    HUB.get_or_init(|| {
        let subs: Subs = Arc::default();
        let seen = Arc::clone(&subs);
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let subs = seen.lock().unwrap_or_else(PoisonError::into_inner);
            match res {
                // The kernel's queue overflowed, or the watcher failed: events were
                // lost, so any database may have changed.
                Ok(ev) if ev.need_rescan() => subs.values().flatten().for_each(Sub::tell),
                Err(_) => subs.values().flatten().for_each(Sub::tell),
                Ok(ev) => {
                    for path in &ev.paths {
                        let dirs = [Some(path.as_path()), path.parent()];
                        for dir in dirs.into_iter().flatten() {
                            for sub in subs.get(dir).into_iter().flatten() {
                                if sub.watched.wakes(&ev) {
                                    sub.tell();
                                }
                            }
                        }
                    }
                }
            }
        })
        .ok()?;
        Some(Hub {
            watcher: Mutex::new(watcher),
            subs,
            next_id: AtomicU64::new(0),
        })
    })
    .as_ref()
}

impl Hub {
    /// False if the folder cannot be watched.
    fn subscribe(&self, dir: &Path, sub: Sub) -> bool {
        use notify::Watcher;
        let mut watcher = self.watcher.lock().unwrap_or_else(PoisonError::into_inner);
        let first = {
            let mut subs = self.subs.lock().unwrap_or_else(PoisonError::into_inner);
            let list = subs.entry(dir.to_owned()).or_default();
            list.push(sub);
            list.len() == 1
        };
        if first
            && watcher
                .watch(dir, notify::RecursiveMode::NonRecursive)
                .is_err()
        {
            self.subs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(dir);
            return false;
        }
        true
    }

    fn unsubscribe(&self, dir: &Path, id: u64) {
        use notify::Watcher;
        let mut watcher = self.watcher.lock().unwrap_or_else(PoisonError::into_inner);
        let last = {
            let mut subs = self.subs.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(list) = subs.get_mut(dir) else {
                return;
            };
            list.retain(|s| s.id != id);
            let empty = list.is_empty();
            if empty {
                subs.remove(dir);
            }
            empty
        };
        if last {
            let _ = watcher.unwatch(dir);
        }
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
