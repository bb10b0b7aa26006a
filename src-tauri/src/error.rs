//! Errors as the window and the tray see them: the engine's [`ErrorReport`], `{code,
//! message}` with a stable snake_case code, so the UI decides what to show by the code
//! and never parses the message. App-only failures (the keychain) have engine codes
//! too, so there is one list of codes.

pub use tideline_engine::{ErrorCode, ErrorReport as AppError};

/// Result of a command.
pub type AppResult<T> = Result<T, AppError>;
