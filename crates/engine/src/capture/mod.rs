//! Capture: from the application's WAL to L0 LTX files in the meta directory.
//!
//! [`wal`] reads SQLite write-ahead logs (pure: bytes in, frames and commits out);
//! [`database`] holds the read lock on a watched database, captures committed frames
//! into L0 files and keeps the position and the continuity checks; [`checkpoint`]
//! copies the WAL into the database and restarts it; [`meta_dir`] is the meta
//! directory's layout; [`reset`] drops the local state (`tideline reset`). The rest
//! serve those: [`sqlite`] (the header check and our connections), `lock` (one replicator per database), `foreign` (another replicator
//! on the same meta directory) and `ltx_file` (writing L0 files and snapshots).

pub mod checkpoint;
pub mod database;
mod foreign;
mod lock;
mod ltx_file;
pub mod meta_dir;
pub mod reset;
pub mod sqlite;
pub mod wal;

pub use checkpoint::{CheckpointMode, Checkpointed};
pub use database::{Captured, Database, DbOptions, Position, SnapshotReason, wal_path};
pub use foreign::MetaStamp;
pub use meta_dir::{MetaDir, default_meta_dir, list_l0};
pub use reset::{LocalState, Reset, reset_local_state};
pub use sqlite::check_sqlite_header;
