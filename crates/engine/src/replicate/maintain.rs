//! The maintenance side of a database's task: compaction, snapshots and retention in
//! a loop of their own, fed by what the upload side reports, so that a long
//! compaction or snapshot upload delays neither capture nor upload.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use tokio::sync::{mpsc, watch};

use super::capture::Capturer;
use super::retry::Retry;
use crate::capture::Database;
use crate::clock::Clock;
use crate::error::Result;
use crate::events::Stage;
use crate::levels::scheduler::Maintainer;

/// Snapshots of a database that capture runs on beside maintenance: the files are
/// stamped with the moment the database lock was had, not the maintenance tick's
/// `now`, which is older by the wait for a capture under way; its commits are in the
/// files, and a point-in-time restore before them must not pick the files.
pub(super) struct LiveSnapshots(pub(super) Arc<Mutex<Database>>, pub(super) Clock);

impl crate::levels::snapshot::SnapshotSource for LiveSnapshots {
    fn take_snapshot(
        &self,
        dst: &Path,
        now: SystemTime,
    ) -> Result<Option<crate::levels::snapshot::SnapshotTaken>> {
        let mut db = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        crate::levels::snapshot::snapshot_locked(&mut db, dst, now.max(self.1.now()))
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
