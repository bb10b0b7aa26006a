//! Errors as the window sees them: `{code, message}` with a fixed set of codes, so the
//! UI decides what to show by the code and never parses the message.

use serde::Serialize;
use tideline_engine::Error;
use tideline_engine::service::ServiceError;

pub use tideline_engine::ErrorCode;

/// Codes only the app has (none of the engine's errors can be these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AppCode {
    /// No OS keychain is available for secrets.
    KeychainUnavailable,
}

/// Every error code the UI can receive: the engine's, or the app's own; serialized as
/// the bare snake_case name either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Code {
    /// An engine error (database, destination, restore, …).
    Engine(ErrorCode),
    /// An app error (keychain).
    App(AppCode),
}

impl From<ErrorCode> for Code {
    fn from(c: ErrorCode) -> Code {
        Code::Engine(c)
    }
}

impl From<AppCode> for Code {
    fn from(c: AppCode) -> Code {
        Code::App(c)
    }
}

impl PartialEq<ErrorCode> for Code {
    fn eq(&self, other: &ErrorCode) -> bool {
        *self == Code::Engine(*other)
    }
}

/// An error for the window and the tray.
#[derive(Debug, Clone, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct AppError {
    /// What kind of error it is.
    pub code: Code,
    /// What went wrong, in words, for people.
    pub message: String,
}

impl AppError {
    /// An error with a code and a message.
    pub fn new(code: impl Into<Code>, message: impl Into<String>) -> AppError {
        AppError {
            code: code.into(),
            message: message.into(),
        }
    }
}

impl From<Error> for AppError {
    fn from(e: Error) -> AppError {
        AppError::new(e.code(), e.to_string())
    }
}

impl From<ServiceError> for AppError {
    fn from(e: ServiceError) -> AppError {
        AppError::new(e.code(), e.to_string())
    }
}

/// Result of a command.
pub type AppResult<T> = Result<T, AppError>;
