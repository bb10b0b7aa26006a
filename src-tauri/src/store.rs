//! What the app remembers between runs: its settings and the list of databases, as
//! JSON in the OS config directory (`TIDELINE_CONFIG_DIR` overrides it, so tests start
//! empty). Secrets are never written here.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{AppError, AppResult, ErrorCode};

/// The environment variable that overrides the config directory.
pub const CONFIG_DIR_ENV: &str = "TIDELINE_CONFIG_DIR";
const FILE: &str = "tideline-app.json";

/// App settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Least time between uploads, milliseconds (Litestream's `sync-interval`).
    pub sync_interval_ms: u64,
    /// How often the WAL is checked, milliseconds (`monitor-interval`).
    pub monitor_interval_ms: u64,
    /// Notify when a database stops being backed up.
    pub notifications: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            sync_interval_ms: 1000,
            monitor_interval_ms: 1000,
            notifications: true,
        }
    }
}

/// Where a database is backed up, as the window enters it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Destination {
    /// A folder.
    Folder {
        /// The folder.
        path: String,
    },
    /// S3-compatible storage. Keys are never stored here.
    S3 {
        /// `https://…` for S3-compatible servers; empty for AWS.
        #[serde(default)]
        endpoint: String,
        /// The bucket.
        bucket: String,
        /// Key prefix in the bucket.
        #[serde(default)]
        path: String,
        /// Region; empty to let the client decide.
        #[serde(default)]
        region: String,
    },
}

/// One remembered database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredDb {
    /// The database file.
    pub path: PathBuf,
    /// Its destination.
    pub destination: Destination,
    /// Paused by the user.
    #[serde(default)]
    pub paused: bool,
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stored {
    /// Settings.
    pub settings: Settings,
    /// Databases, in the order added.
    pub databases: Vec<StoredDb>,
}

/// The config directory: `$TIDELINE_CONFIG_DIR`, else the OS one.
pub fn config_dir() -> PathBuf {
    if let Some(d) = std::env::var_os(CONFIG_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    directories::ProjectDirs::from("dev", "tideline", "Tideline")
        .map(|p| p.config_dir().to_owned())
        .unwrap_or_else(|| PathBuf::from(".tideline"))
}

impl Stored {
    /// Loads the file in `dir` (empty when there is none).
    pub fn load(dir: &Path) -> AppResult<Stored> {
        let path = dir.join(FILE);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                AppError::new(
                    ErrorCode::Io,
                    format!("{} is not valid: {e}; fix or delete it", path.display()),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Stored::default()),
            Err(e) => Err(AppError::new(
                ErrorCode::Io,
                format!("read {}: {e}", path.display()),
            )),
        }
    }

    /// Writes the file in `dir` atomically.
    pub fn save(&self, dir: &Path) -> AppResult<()> {
        let io = |what: &str, e: std::io::Error| {
            AppError::new(ErrorCode::Io, format!("{what} {}: {e}", dir.display()))
        };
        std::fs::create_dir_all(dir).map_err(|e| io("create", e))?;
        let tmp = dir.join(format!("{FILE}.tmp"));
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| AppError::new(ErrorCode::Internal, e.to_string()))?;
        std::fs::write(&tmp, json).map_err(|e| io("write in", e))?;
        std::fs::rename(&tmp, dir.join(FILE)).map_err(|e| io("rename in", e))
    }
}
