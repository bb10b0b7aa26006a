//! # tideline-engine
//!
//! The replication engine shared by the `tideline` command and the desktop app. The
//! modules follow the data (`docs/architecture.md` has the whole tree and its rules):
//!
//! * [`capture`] — the watched database: a pure WAL reader, the read lock, capture of
//!   committed frames into L0 files in the meta directory, position and continuity
//!   checks, low-stall checkpoints;
//! * [`storage`] — replicas: the client trait, listings by level, the folder, S3 and
//!   in-memory backends, durable small files;
//! * [`levels`] — compaction on wall-clock windows, level-9 snapshots and retention as
//!   pure rules, and the scheduler that carries them out over a cached listing;
//! * [`restore`] — Litestream's restore plan, the streaming merge into a verified
//!   temporary file, the one output policy (overwrite, sidecars, integrity check),
//!   restore points;
//! * [`replicate`](mod@replicate) — one task per database: wake on change, capture, ship, maintain,
//!   reconcile with the replica, graceful shutdown; the fleet of them (directories,
//!   control requests) and the control socket;
//! * [`service`] — replication controlled at run time (add, remove, pause, resume, sync
//!   now, status, in-place restore) for the desktop app;
//! * [`metrics`] — Prometheus metrics with Litestream's names, served on `addr:`;
//! * [`events`], [`clock`], [`time`], [`Error`] — the vocabulary every part shares:
//!   what happened, the time passed in, RFC 3339 timestamps, errors with stable codes;
//! * [`config`] — the `tideline-config` crate: Litestream-compatible configuration.
//!
//! The front ends use only the items re-exported at the top of this crate (the
//! facade); the modules are public for the engine's own tests and benchmarks.

#![deny(missing_docs)]

pub mod capture;
pub use tideline_config as config;
mod blocking;
pub mod clock;
mod error;
pub mod events;
mod failpoint;
pub mod levels;
pub mod metrics;
pub mod replicate;
pub mod restore;
mod serve;
pub mod service;
pub mod storage;
pub mod time;

// The facade: what the `tideline` command and the desktop app use, and nothing else
// (tests/tests/it/architecture.rs checks that the front ends stay on it). The modules above
// are the engine's components, public for the engine's own tests and benchmarks.

pub use capture::{LocalState, Reset, reset_local_state};
pub use clock::Clock;
pub use error::{Error, ErrorCode, ErrorReport, Result};
pub use events::{Event, EventSink, Stage};
pub use metrics::{MetricsServer, serve as serve_metrics};
pub use replicate::control::{Control, ControlInbox, DbSummary, Outcome, control};
pub use replicate::directory::{databases_of, find_databases, is_sqlite_database};
#[cfg(unix)]
pub use replicate::socket::{
    ControlClient, ControlOutcome, ControlServer, DaemonInfo, ListedDb, serve_control,
};
pub use replicate::{
    ReplicateSettings, RequestReport, replicate, replicate_controlled, replicate_dirs, replicate_to,
};
pub use restore::{
    IntegrityCheck, Overwrite, PlanError, RestoreOptions, Restored, Target, check_output,
    list_levels_for, plan, restore_plan_to, restore_to, sidecars,
};
pub use service::status::{DatabaseReport, Summary};
pub use service::{
    DbStatus, InPlaceRestore, PointKind, RestorePhase, RestorePoint, Service, ServiceError,
    StatusSink, SyncState, check_folder_writable, inspect, inspect_database, probe_replica,
    restore_copy, restore_points, restored_copy_path,
};
pub use storage::durable::write_atomic;
pub use storage::{
    FileInfo, ReplicaClient, ReplicaError, S3Failure, SNAPSHOT_LEVEL, list_levels, newest_txid,
    open_client,
};
pub use time::{format_rfc3339, parse_rfc3339};
