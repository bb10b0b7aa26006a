//! Levels: what happens to LTX files once they are in the replica.
//!
//! The rules are pure functions of a listing and the time they are given:
//! [`compaction`] (which files of a level merge into the next, on wall-clock windows),
//! [`snapshot`] (when a full level-9 snapshot is due) and [`retention`] (what may be
//! deleted), [`validation`] (whether each level is contiguous). [`scheduler`] carries
//! them out per database over a cached listing.

pub mod compaction;
pub mod retention;
pub mod scheduler;
pub mod snapshot;
pub mod validation;
