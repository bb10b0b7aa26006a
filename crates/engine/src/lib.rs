//! # tideline-engine
//!
//! The replication engine shared by the `tideline` command and the desktop app:
//!
//! * [`wal`] — a pure reader of SQLite write-ahead logs: header, frames, salts, the
//!   cumulative checksum chain, commit boundaries, the newest version of each page;
//! * [`db`] — a watched database: read lock, capture of committed WAL frames into L0
//!   files, position, continuity checks and low-stall checkpoints;
//! * [`replica`] — what replicas hold: LTX files by level, the client trait and its
//!   folder, S3 (cached listings, request counts, errors named for what to fix) and
//!   in-memory backends;
//! * [`replicate`] — continuous replication: wake on change, capture, ship, checkpoint,
//!   graceful shutdown;
//! * [`config`] — Litestream-compatible config files and replica URLs, defaults applied;
//! * [`compaction`], [`snapshot`], [`retention`] — compaction levels on wall-clock
//!   windows, level-9 snapshots from the live database, and what may be deleted, as
//!   pure rules plus the IO that carries them out; [`maintenance`] schedules them per
//!   database over a cached listing;
//! * [`restore`] — Litestream's restore plan, and applying it by a streaming merge into
//!   a temporary file that is verified, synced and renamed;
//! * [`durable`] — small state files written atomically and durably (temp, fsync,
//!   rename, fsync of the directory), for the engine and the app's settings;
//! * [`time`] — RFC 3339 timestamps (restore targets, S3 object metadata);
//! * [`service`] — a long-running replication service controlled at run time (add,
//!   remove, pause, resume, sync now, status per database), for the desktop app.
//!
//! The design map (capture, ship, compact, retain, restore) is `shared/design.md`.

#![deny(missing_docs)]

pub mod capture;
pub use tideline_config as config;
mod blocking;
pub mod clock;
mod error;
pub mod events;
mod failpoint;
pub mod levels;
pub mod replicate;
pub mod restore;
pub mod service;
pub mod storage;
pub mod time;

// The facade: what the `tideline` command and the desktop app use, and nothing else
// (tests/tests/it/facade.rs checks that the front ends stay on it). The modules above
// are the engine's components, public for the engine's own tests and benchmarks.

pub use clock::Clock;
pub use error::{Error, ErrorCode, ErrorReport, Result};
pub use events::{Event, EventSink, Stage};
pub use replicate::{ReplicateSettings, RequestReport, replicate, replicate_to};
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
