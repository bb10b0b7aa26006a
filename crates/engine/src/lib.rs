//! # tideline-engine
//!
//! The replication engine shared by the `tideline` command and the desktop app. It is
//! being built up module by module; today it holds:
//!
//! * [`wal`] — a pure reader of SQLite write-ahead logs: header, frames, salts, the
//!   cumulative checksum chain, commit boundaries, the newest version of each page;
//! * [`replica`] — what replicas hold: LTX files by level;
//! * [`restore`] — Litestream's restore plan, and applying it by a streaming merge into
//!   a temporary file that is verified, synced and renamed.
//!
//! The design map (capture, ship, compact, retain, restore) is `shared/design.md`.

#![deny(missing_docs)]

mod error;
pub mod replica;
pub mod restore;
pub mod wal;

pub use error::{Error, Result};
