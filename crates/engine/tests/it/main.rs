//! The engine's tests, in one binary (one link of the AWS SDK and SQLite instead of one
//! per file): each module is one area, against real SQLite databases and, for S3, a
//! real S3 server on 127.0.0.1 (and WebDAV, Azure Blob Storage, a local OSS server
//! checking OSS Signature V4, a NATS server with JetStream, a Google Cloud Storage
//! emulator and, for SFTP, OpenSSH's `sshd` servers).

mod abs;
mod capture;
mod directory;
mod gs;
mod levels;
mod model;
#[cfg(feature = "nats")]
mod nats;
#[cfg(feature = "oss")]
mod oss;
mod remote_faults;
mod replica_contract;
mod replicate;
mod restore;
mod service;
#[cfg(feature = "sftp")]
mod sftp;
mod wal_sqlite;
mod webdav;
