//! What can be wrong with a config file or a replica URL: what, where, and how to fix it.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Where in the config a problem is: the file (when one was loaded) and, when the YAML
/// parser knows it, the line and column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// The config file, when the text came from one.
    pub file: Option<PathBuf>,
    /// 1-based line, when known.
    pub line: Option<u32>,
    /// 1-based column, when known.
    pub column: Option<u32>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => {
                write!(f, "{}:{line}:{}", file.display(), self.column.unwrap_or(1))
            }
            (Some(file), None) => write!(f, "{}", file.display()),
            (None, Some(line)) => {
                write!(f, "config line {line} column {}", self.column.unwrap_or(1))
            }
            (None, None) => f.write_str("config"),
        }
    }
}

/// A config file or replica URL Tideline cannot use.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("{}", read_message(path, source))]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The text is not valid YAML.
    #[error("{origin}: invalid YAML: {message}; {fix}")]
    Syntax {
        /// Where.
        origin: Origin,
        /// The parser's complaint.
        message: String,
        /// How to fix it.
        fix: String,
    },
    /// A value has the wrong type or form (a bad duration, a string where a number
    /// belongs, …). The message starts with the key path.
    #[error("{origin}: {message}")]
    Value {
        /// Where (line and column of the value).
        origin: Origin,
        /// The key path and what is wrong with its value, and how to write it.
        message: String,
    },
    /// Values are individually fine but the configuration is not usable.
    #[error("{origin}: {key}: {problem}; {fix}")]
    Invalid {
        /// Where (the file).
        origin: Origin,
        /// The key path, e.g. `dbs[0].replica.bucket`.
        key: String,
        /// What is wrong.
        problem: String,
        /// How to fix it.
        fix: String,
    },
    /// A replica URL given on the command line cannot be used.
    #[error("replica URL {url}: {problem}; {fix}")]
    ReplicaUrl {
        /// The URL, with any user:password part redacted.
        url: String,
        /// What is wrong.
        problem: String,
        /// How to fix it.
        fix: String,
    },
}

fn read_message(path: &Path, source: &io::Error) -> String {
    if source.kind() == io::ErrorKind::NotFound {
        format!(
            "config file {} not found; pass -config PATH or set LITESTREAM_CONFIG to the \
             file to use",
            path.display()
        )
    } else {
        format!(
            "cannot read config file {}: {source}; check that it exists and is readable",
            path.display()
        )
    }
}

impl ConfigError {
    /// The origin of the problem, for errors located in a config.
    pub fn origin(&self) -> Option<&Origin> {
        match self {
            ConfigError::Syntax { origin, .. }
            | ConfigError::Value { origin, .. }
            | ConfigError::Invalid { origin, .. } => Some(origin),
            ConfigError::Read { .. } | ConfigError::ReplicaUrl { .. } => None,
        }
    }

    /// Records the file the config came from.
    pub(crate) fn with_file(mut self, path: &Path) -> Self {
        match &mut self {
            ConfigError::Syntax { origin, .. }
            | ConfigError::Value { origin, .. }
            | ConfigError::Invalid { origin, .. } => origin.file = Some(path.to_owned()),
            ConfigError::Read { .. } | ConfigError::ReplicaUrl { .. } => {}
        }
        self
    }

    /// An unusable configuration: the key, what is wrong with it, and how to fix it.
    pub fn invalid(
        key: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid {
            origin: Origin::default(),
            key: key.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    /// Converts a serde_yaml_ng error; `syntax` when it came from reading the YAML
    /// itself rather than from typing its values.
    pub(crate) fn from_yaml(err: &serde_yaml_ng::Error, syntax: bool) -> Self {
        let mut message = err.to_string();
        let mut origin = Origin::default();
        if let Some(loc) = err.location() {
            origin.line = u32::try_from(loc.line()).ok();
            origin.column = u32::try_from(loc.column()).ok();
            // The location is shown by the origin; drop serde's copy of it.
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            message = message.replacen(&suffix, "", 1);
        }
        if syntax {
            let fix = if message.contains("duplicate entry") {
                "remove or rename one of the duplicate keys"
            } else if message.contains("more than one document") {
                "keep a single YAML document (remove the --- separators)"
            } else {
                "check the indentation (spaces, not tabs) and quote values that contain \
                 \": \" or start with a special character"
            };
            ConfigError::Syntax {
                origin,
                message,
                fix: fix.to_owned(),
            }
        } else {
            ConfigError::Value { origin, message }
        }
    }
}

/// A URL problem before it is placed (config key or command line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UrlProblem {
    pub problem: String,
    pub fix: String,
}

impl UrlProblem {
    pub(crate) fn new(problem: impl Into<String>, fix: impl Into<String>) -> Self {
        UrlProblem {
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}
