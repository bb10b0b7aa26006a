//! Whole-system tests, in one binary: the real `tideline` and Litestream 0.5.17 binaries
//! side by side (drop-in use, S3 and SFTP compatibility both ways), and faults (SIGKILL, full
//! disk, another process) with restores as the check.

mod architecture;
mod faults;
mod litestream_dropin;
mod litestream_s3;
mod litestream_sftp;
mod sigkill;
