//! Control of a running replicator from outside (Litestream's control socket commands
//! `start`, `stop`, `register`, `unregister`, `list`, `info`): a [`Control`] handle
//! sends requests to the fleet's loop, which acts on them between its other work and
//! answers each once it is done (a stop answers after the final upload).
//!
//! Reason to change: what can be asked of a running replicator.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tideline_ltx::Txid;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};

/// Requests waiting for the fleet (a burst of scripted registrations fits).
const QUEUE: usize = 256;

/// What a request answers with: Litestream's status words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// `started` / `already_running`, `stopped` / `already_stopped`, `registered` /
    /// `already_registered`, `unregistered` / `already_unregistered`.
    pub status: String,
    /// The database's path as the replicator knows it (absolute).
    pub path: PathBuf,
    /// The replica's newest TXID (after the final upload, for a stop), 0 if none.
    pub txid: u64,
}

/// One database as `list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbSummary {
    /// The database.
    pub path: PathBuf,
    /// `replicating`, or `stopped` (by `tideline stop`; `start` resumes it).
    pub status: String,
    /// When changes last reached the replica, if they did since the start.
    pub last_sync_at: Option<SystemTime>,
    /// The replica's newest TXID, 0 if nothing was shipped since the start.
    pub txid: u64,
}

/// A request to the fleet, with where its answer goes.
#[derive(Debug)]
pub(super) enum Request {
    /// Replicate the database at `path` to `replica_url` (a new, unconfigured one).
    Register {
        path: PathBuf,
        replica_url: String,
        reply: oneshot::Sender<Result<Outcome>>,
    },
    /// Stop replicating `path` (final upload first) and forget it.
    Unregister {
        path: PathBuf,
        reply: oneshot::Sender<Result<Outcome>>,
    },
    /// Resume a stopped database.
    Start {
        path: PathBuf,
        reply: oneshot::Sender<Result<Outcome>>,
    },
    /// Stop replicating `path` (final upload first), keeping it known.
    Stop {
        path: PathBuf,
        reply: oneshot::Sender<Result<Outcome>>,
    },
    /// Every database known.
    List {
        reply: oneshot::Sender<Vec<DbSummary>>,
    },
}

/// The fleet's end of [`control`].
#[derive(Debug)]
pub struct ControlInbox(pub(super) mpsc::Receiver<Request>);

/// A handle on a running replicator (cheap to clone); requests fail with
/// [`Error::ReplicationStopped`] once it has ended.
#[derive(Debug, Clone)]
pub struct Control {
    tx: mpsc::Sender<Request>,
    started_at: SystemTime,
}

/// A control handle and the inbox to give to
/// [`replicate_controlled`](super::replicate_controlled).
pub fn control() -> (Control, ControlInbox) {
    let (tx, rx) = mpsc::channel(QUEUE);
    (
        Control {
            tx,
            started_at: SystemTime::now(),
        },
        ControlInbox(rx),
    )
}

impl Control {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Request) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| Error::ReplicationStopped)?;
        answer.await.map_err(|_| Error::ReplicationStopped)
    }

    /// Starts replicating `path` to `replica_url`.
    pub async fn register(&self, path: &Path, replica_url: &str) -> Result<Outcome> {
        let (path, replica_url) = (path.to_owned(), replica_url.to_owned());
        self.ask(|reply| Request::Register {
            path,
            replica_url,
            reply,
        })
        .await?
    }

    /// Stops replicating `path` after a final upload, and forgets it.
    pub async fn unregister(&self, path: &Path) -> Result<Outcome> {
        let path = path.to_owned();
        self.ask(|reply| Request::Unregister { path, reply })
            .await?
    }

    /// Resumes replicating a stopped database.
    pub async fn start(&self, path: &Path) -> Result<Outcome> {
        let path = path.to_owned();
        self.ask(|reply| Request::Start { path, reply }).await?
    }

    /// Stops replicating `path` after a final upload; `start` resumes it.
    pub async fn stop(&self, path: &Path) -> Result<Outcome> {
        let path = path.to_owned();
        self.ask(|reply| Request::Stop { path, reply }).await?
    }

    /// Every database the replicator knows, by path.
    pub async fn list(&self) -> Result<Vec<DbSummary>> {
        self.ask(|reply| Request::List { reply }).await
    }

    /// When the handle was made (the replicator's start).
    pub fn started_at(&self) -> SystemTime {
        self.started_at
    }
}

/// The replica position of a database, as its events tell it.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Shipped {
    pub(super) txid: Option<Txid>,
    pub(super) at: Option<SystemTime>,
}
