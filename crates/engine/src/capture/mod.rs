//! Capture: from the application's WAL to L0 LTX files in the meta directory.
//!
//! [`wal`] reads SQLite write-ahead logs (pure: bytes in, frames and commits out);
//! [`database`] holds the read lock on a watched database, captures committed frames
//! into L0 files, keeps the position and the continuity checks, and checkpoints.

pub mod database;
pub mod wal;

pub use database::{
    Captured, Checkpointed, Database, DbOptions, MetaStamp, Position, SnapshotReason,
    default_meta_dir, list_l0, wal_path,
};
