//! Whole-system tests, in one binary: the real `tideline` and Litestream 0.5.17 binaries
//! side by side (drop-in use; S3, WebDAV, Azure Blob and SFTP compatibility both ways,
//! takeover included), `/metrics` against Litestream's, and faults (SIGKILL, full disk, another process) with restores as
//! the check.

mod architecture;
mod control;
mod faults;
mod litestream_dir;
mod litestream_dropin;
mod litestream_remote;
mod mcp;
mod metrics;
mod replicator;
mod sigkill;
