//! The maintenance side of a database's task: compaction, snapshots and retention in
//! a loop of their own, fed by what the upload side reports, so that a long
//! compaction or snapshot upload delays neither capture nor upload.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use tokio::sync::{Notify, mpsc, watch};

use super::capture::Capturer;
use super::retry::Retry;
use crate::clock::Clock;
use crate::error::Result;
use crate::events::Stage;
use crate::levels::scheduler::Maintainer;

/// Snapshots of a database that capture runs on beside maintenance: the files are
/// stamped with the moment the database lock was had, not the maintenance tick's
/// `now`, which is older by the wait for a capture under way; its commits are in the
/// files, and a point-in-time restore before them must not pick the files.
///
/// A snapshot first captures what is committed into L0 files, as capture does; the
/// upload side is told (`kick`), since capture then finds nothing new and would not
/// tell it, and those commits would wait for the next one to reach the replica (or,
/// on a database gone quiet, never reach it).
pub(super) struct LiveSnapshots {
    pub(super) db: Arc<Mutex<super::slot::DbSlot>>,
    pub(super) clock: Clock,
    pub(super) kick: Arc<Notify>,
}

impl crate::levels::snapshot::SnapshotSource for LiveSnapshots {
    fn take_snapshot(
        &self,
        dst: &Path,
        now: SystemTime,
    ) -> Result<Option<crate::levels::snapshot::SnapshotTaken>> {
        let mut slot = self.db.lock().unwrap_or_else(PoisonError::into_inner);
        let was_away = slot.is_closed();
        let taken = slot.get().and_then(|db| {
            crate::levels::snapshot::snapshot_locked(db, dst, now.max(self.clock.now()))
        });
        // A put-away database opened for the snapshot goes back (the snapshot captured
        // everything committed first).
        if was_away && taken.is_ok() {
            slot.close_again();
        }
        drop(slot);
        // Whatever came of the snapshot itself: L0 files it captured before failing
        // are on disk too. A look with nothing new costs a local listing.
        self.kick.notify_one();
        taken
    }
}

/// What the upload side tells the maintainer.
#[derive(Debug)]
pub(super) enum MaintMsg {
    /// A file reached the replica (keeps its cached listing true).
    Written(crate::storage::FileInfo),
    /// The replica was found changed: list it afresh.
    Invalidate,
    /// The replica was matched: maintenance may write to it.
    Reconciled,
}

impl MaintMsg {
    pub(super) fn apply(self, m: &mut Maintainer) {
        match self {
            MaintMsg::Written(info) => m.note_written(info),
            MaintMsg::Invalidate => m.invalidate(),
            MaintMsg::Reconciled => {}
        }
    }
}

/// Compaction, snapshots and retention, in a loop of their own beside capture and
/// upload, so that a long compaction or snapshot upload delays neither, and a failing
/// one backs off alone. Nothing is written before the replica was matched (a missing
/// destination must not be written by them either). Returns the maintainer at `stop`.
pub(super) async fn maintain(
    mut m: Maintainer,
    mut rx: mpsc::UnboundedReceiver<MaintMsg>,
    reconciled: Arc<AtomicBool>,
    mut stop: watch::Receiver<bool>,
    report: &Capturer,
) -> Maintainer {
    let mut retry = Retry::default();
    loop {
        if *stop.borrow() {
            break;
        }
        // Until the replica is matched, only messages (one says it is) and the stop.
        let at = if reconciled.load(Ordering::Relaxed) {
            Some(retry.at.unwrap_or_else(|| {
                let in_ = m
                    .due_at()
                    .and_then(|t| t.duration_since(report.clock.now()).ok())
                    .unwrap_or_default();
                tokio::time::Instant::now() + in_
            }))
        } else {
            None
        };
        tokio::select! {
            _ = stop.changed() => break,
            msg = rx.recv() => {
                match msg {
                    Some(msg) => msg.apply(&mut m),
                    None => break,
                }
                continue;
            }
            _ = sleep_until_some(at) => {}
        }
        while let Ok(msg) = rx.try_recv() {
            msg.apply(&mut m);
        }
        let now = report.clock.now();
        if reconciled.load(Ordering::Relaxed) && retry.ready() && (retry.failing() || m.is_due(now))
        {
            let ticked = tokio::select! {
                _ = stop.changed() => break,
                r = m.tick(now) => r,
            };
            match ticked {
                Ok(()) => report.succeeded(Stage::Maintain, &mut retry),
                Err(e) => report.failed(Stage::Maintain, &e, &mut retry),
            }
        }
    }
    // Uploads made at the very end still reach the cached listing.
    while let Ok(msg) = rx.try_recv() {
        msg.apply(&mut m);
    }
    m
}

/// Sleeps until `at`, or forever without one.
pub(super) async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::capture::{Database, DbOptions, list_l0};
    use crate::levels::snapshot::SnapshotSource;

    /// A snapshot that captured commits capture had not seen yet tells the upload side:
    /// capture then finds nothing new and would not.
    #[tokio::test]
    async fn a_snapshot_that_captured_commits_wakes_the_upload_side() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        let app = rusqlite::Connection::open(&path).unwrap();
        app.pragma_update(None, "journal_mode", "wal").unwrap();
        app.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
            .unwrap();
        let mut db = Database::open(&path, DbOptions::default()).unwrap();
        db.sync_to_end(SystemTime::now()).unwrap();
        let l0 = db.l0_dir().to_owned();
        let before = list_l0(&l0).unwrap().len();
        app.execute("INSERT INTO t VALUES (2)", []).unwrap();

        let kick = Arc::new(Notify::new());
        let source = LiveSnapshots {
            db: Arc::new(Mutex::new(super::super::slot::DbSlot::new(
                db,
                DbOptions::default(),
            ))),
            clock: Clock::system(),
            kick: Arc::clone(&kick),
        };
        let taken = source
            .take_snapshot(&dir.path().join("snap.tmp"), SystemTime::now())
            .unwrap()
            .expect("a snapshot");
        assert_eq!(
            taken.captured.len(),
            1,
            "the commit was captured by the snapshot"
        );
        assert_eq!(list_l0(&l0).unwrap().len(), before + 1);
        tokio::time::timeout(Duration::from_secs(1), kick.notified())
            .await
            .expect("the upload side was told");
    }
}
