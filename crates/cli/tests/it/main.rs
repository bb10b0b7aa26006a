//! The `tideline` command's tests, in one binary: each module runs the real binary
//! against real databases, folders and an S3 server on 127.0.0.1.

mod commands;
mod common;
mod directory;
mod replicate;
mod reset;
mod restore;
