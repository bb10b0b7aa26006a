//! Errors as the window sees them: `{code, message}` with a fixed set of codes, so the
//! UI decides what to show by the code and never parses the message.

use serde::Serialize;
use tideline_engine::Error;
use tideline_engine::replica::{ReplicaError, S3Failure};
use tideline_engine::service::ServiceError;

/// Every error code the UI can receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The file does not exist.
    DatabaseMissing,
    /// The file is not a SQLite database.
    NotSqlite,
    /// The database is not in WAL mode and could not be switched.
    NotWal,
    /// The database is already in the list.
    AlreadyAdded,
    /// The database is not in the list.
    NotFound,
    /// The destination could not be read or written.
    DestinationUnavailable,
    /// The S3 endpoint could not be reached (refused, timed out, DNS, TLS).
    DestinationUnreachable,
    /// S3 rejected the keys (wrong key or secret), or none were found.
    WrongCredentials,
    /// The keys work but may not use this bucket or path.
    AccessDenied,
    /// The S3 bucket does not exist.
    NoSuchBucket,
    /// This machine's clock is too far from the S3 server's.
    ClockSkew,
    /// The bucket is in another region than the one set.
    WrongRegion,
    /// This build cannot do it (e.g. an option it does not support).
    Unsupported,
    /// Another process has the database open (or replicates it).
    InUse,
    /// The database is paused.
    Paused,
    /// The restore output exists already.
    OutputExists,
    /// No restore point matches.
    NoRestorePoint,
    /// The restored database failed `PRAGMA integrity_check`.
    IntegrityFailed,
    /// The replica holds corrupt or incomplete files.
    ReplicaCorrupt,
    /// A value from the window is not valid.
    InvalidInput,
    /// No OS keychain is available for secrets.
    KeychainUnavailable,
    /// A local file operation or SQLite failed.
    Io,
    /// Anything else.
    Internal,
}

/// An error for the window.
#[derive(Debug, Clone, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct AppError {
    /// What kind of error it is.
    pub code: ErrorCode,
    /// What went wrong, in words, for people.
    pub message: String,
}

impl AppError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> AppError {
        AppError {
            code,
            message: message.into(),
        }
    }
}

impl From<Error> for AppError {
    fn from(e: Error) -> AppError {
        let code = match &e {
            Error::DatabaseMissing(_) => ErrorCode::DatabaseMissing,
            Error::NotSqlite(_) => ErrorCode::NotSqlite,
            Error::NotWal { .. } => ErrorCode::NotWal,
            Error::AlreadyReplicating { .. } => ErrorCode::InUse,
            Error::Replica(ReplicaError::S3 { failure, .. }) => match failure {
                S3Failure::Unreachable(_) => ErrorCode::DestinationUnreachable,
                S3Failure::WrongCredentials { .. } | S3Failure::NoCredentials(_) => {
                    ErrorCode::WrongCredentials
                }
                S3Failure::AccessDenied => ErrorCode::AccessDenied,
                S3Failure::NoSuchBucket => ErrorCode::NoSuchBucket,
                S3Failure::ClockSkew => ErrorCode::ClockSkew,
                S3Failure::WrongRegion(_) => ErrorCode::WrongRegion,
                _ => ErrorCode::DestinationUnavailable,
            },
            Error::Replica(_)
            | Error::DestinationMissing { .. }
            | Error::ShutdownSyncTimedOut { .. } => ErrorCode::DestinationUnavailable,
            Error::Plan(_) => ErrorCode::NoRestorePoint,
            // A stale sidecar blocks the output as much as an existing file does.
            Error::OutputExists(_) | Error::StaleSidecar(_) => ErrorCode::OutputExists,
            Error::OutputIsDirectory(_) => ErrorCode::InvalidInput,
            Error::SourceHasWal(_) => ErrorCode::InUse,
            Error::IntegrityCheck { .. } => ErrorCode::IntegrityFailed,
            Error::Ltx { .. } | Error::IncompleteRestore(_) | Error::Wal { .. } => {
                ErrorCode::ReplicaCorrupt
            }
            Error::Unsupported(_) => ErrorCode::Unsupported,
            Error::Io { .. } | Error::Sqlite { .. } => ErrorCode::Io,
            _ => ErrorCode::Internal,
        };
        AppError::new(code, e.to_string())
    }
}

impl From<ServiceError> for AppError {
    fn from(e: ServiceError) -> AppError {
        let code = match &e {
            ServiceError::AlreadyAdded(_) => ErrorCode::AlreadyAdded,
            ServiceError::NotFound(_) => ErrorCode::NotFound,
            ServiceError::Paused(_) => ErrorCode::Paused,
            ServiceError::InUse { .. } => ErrorCode::InUse,
            ServiceError::Engine(_) => {
                let ServiceError::Engine(inner) = e else {
                    unreachable!()
                };
                return inner.into();
            }
            _ => ErrorCode::Internal,
        };
        AppError::new(code, e.to_string())
    }
}

/// Result of a command.
pub type AppResult<T> = Result<T, AppError>;
