//! Log output: `tracing` records written to stderr, as text or JSON.
//!
//! The level is, from strongest to weakest: `-log-level`, the `LOG_LEVEL` environment
//! variable, the config's `logging.level`, then `info` — Litestream's order. (The
//! engine's config loader already lets `LOG_LEVEL` override the file.) The format is the
//! config's `logging.type`. Logs always go to stderr so that stdout carries only a
//! command's own output (tables, `-json`), which scripts parse.

use std::io::IsTerminal;

use tideline_engine::config::{LogFormat, LogLevel, LoggingConfig};
use tracing::Level;

/// Parses a level name as Litestream accepts it (any case; `warning` too).
pub fn parse_level(s: &str) -> Result<LogLevel, String> {
    match s.to_ascii_lowercase().as_str() {
        "trace" => Ok(LogLevel::Trace),
        "debug" => Ok(LogLevel::Debug),
        "info" => Ok(LogLevel::Info),
        "warn" | "warning" => Ok(LogLevel::Warn),
        "error" => Ok(LogLevel::Error),
        _ => Err(format!(
            "unknown log level {s:?}; use trace, debug, info, warn or error"
        )),
    }
}

/// Starts logging. `config` is the loaded config's `logging:` section (its level
/// already reflects `LOG_LEVEL`); without a config, `LOG_LEVEL` is read here.
/// `flag` is `-log-level`, which wins over both.
pub fn init(config: Option<&LoggingConfig>, flag: Option<LogLevel>) {
    let level = flag
        .or_else(|| config.map(|c| c.level))
        .or_else(env_level)
        .unwrap_or_default();
    let format = config.map(|c| c.format).unwrap_or_default();
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(to_tracing(level))
        .with_target(false);
    // A second call (tests, or a command that initialises twice) keeps the first
    // subscriber, which is harmless.
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.pretty().try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
}

/// `LOG_LEVEL`, when set to a known level.
fn env_level() -> Option<LogLevel> {
    std::env::var("LOG_LEVEL")
        .ok()
        .filter(|v| !v.is_empty())
        .and_then(|v| parse_level(&v).ok())
}

fn to_tracing(level: LogLevel) -> Level {
    match level {
        LogLevel::Trace => Level::TRACE,
        LogLevel::Debug => Level::DEBUG,
        LogLevel::Info => Level::INFO,
        LogLevel::Warn => Level::WARN,
        LogLevel::Error => Level::ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_in_any_case() {
        assert_eq!(parse_level("DEBUG"), Ok(LogLevel::Debug));
        assert_eq!(parse_level("Warning"), Ok(LogLevel::Warn));
        assert_eq!(parse_level("error"), Ok(LogLevel::Error));
        assert!(parse_level("loud").unwrap_err().contains("trace, debug"));
    }
}
