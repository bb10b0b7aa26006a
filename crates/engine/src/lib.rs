//! # tideline-engine
//!
//! The replication engine shared by the `tideline` command and the desktop app. It is
//! being built up module by module; today it holds:
//!
//! * [`wal`] — a pure reader of SQLite write-ahead logs: header, frames, salts, the
//!   cumulative checksum chain, commit boundaries, the newest version of each page.
//!
//! The design map (capture, ship, compact, retain, restore) is `shared/design.md`.

#![deny(missing_docs)]

pub mod wal;
