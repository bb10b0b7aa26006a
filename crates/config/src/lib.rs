//! Litestream 0.5.17 config files (`litestream.yml`), loaded into typed structs with
//! Litestream's defaults filled in, so `tideline replicate -config litestream.yml` reads
//! the same files `litestream replicate` does.
//!
//! [`Config::load`] reads a file; [`Config::parse`] parses text with a caller-given
//! environment (for tests and the desktop app). As Litestream does, `$VAR` and `${VAR}`
//! are expanded over the whole text before parsing (unset variables become empty; pass
//! `expand_env = false` for `-no-expand-env`). Durations use Go's syntax (`"1s"`,
//! `"500ms"`, `"1m30s"`, `"24h"`), see [`parse_duration`].
//!
//! Differences from Litestream, all on the side of telling the user more:
//!
//! * keys Tideline does not act on are accepted but listed in [`Config::warnings`]:
//!   unknown keys (with a "did you mean" for typos), and Litestream features Tideline
//!   does not have yet (`verify-compaction`);
//! * replica types other than `file`, `s3`, `sftp`, `webdav`, `abs`, `gs`, `nats` and `oss`
//!   are refused with a clear error, and so is a directory (`dir:`) replicated to NATS
//!   (whose bucket has no path: Litestream would write every database into one replica);
//! * a bare number where a duration belongs (`monitor-interval: 5`) is refused instead
//!   of being read as nanoseconds.
//!
//! Secrets (`secret-access-key`, `sse-customer-key`, access keys, session tokens) are
//! held in [`Sensitive`], whose `Debug` and `Display` print `<redacted>`; URLs shown
//! anywhere go through [`redact_url`].
//!
//! # Example
//!
//! ```yaml
//! # Top-level replica settings are defaults for every replica.
//! access-key-id: ${AWS_ACCESS_KEY_ID}
//! secret-access-key: ${AWS_SECRET_ACCESS_KEY}
//! sync-interval: 1s
//!
//! levels:                      # compaction levels L1, L2, L3 (at most 8)
//!   - interval: 30s
//!   - interval: 5m
//!   - interval: 1h
//! snapshot:
//!   interval: 24h              # full snapshot (level 9) cadence
//!   retention: 24h             # how long snapshots are kept
//! l0-retention: 5m
//! l0-retention-check-interval: 15s
//! retention:
//!   enabled: true
//! shutdown-sync-timeout: 30s
//! shutdown-sync-interval: 500ms
//! logging:
//!   level: info                # trace, debug, info, warn, error (env LOG_LEVEL wins)
//!   type: text                 # text, json or pretty
//!   stderr: false
//! exec: /usr/local/bin/myapp -port 8080
//!
//! dbs:
//!   - path: /var/lib/myapp/app.db
//!     monitor-interval: 1s
//!     checkpoint-interval: 1m  # 0 turns time-based checkpoints off
//!     busy-timeout: 1s
//!     min-checkpoint-page-count: 1000
//!     truncate-page-n: 121359
//!     max-sync-wal-bytes: 67108864
//!     replica:
//!       url: s3://my-bucket/app?endpoint=http://127.0.0.1:9000&region=us-east-1
//!
//!   - path: ~/notes.db
//!     replica:
//!       type: file
//!       path: /mnt/backup/notes
//! ```
//!
//! # Keys and defaults
//!
//! | Key | Default | Notes |
//! |---|---|---|
//! | `levels[].interval` | 30s, 5m, 1h | L1..Ln compaction windows; at most 8 levels |
//! | `snapshot.interval` / `.retention` | 24h / 24h | per-DB values allowed but must agree |
//! | `l0-retention` | 5m | 0 keeps L0 files indefinitely |
//! | `l0-retention-check-interval` | 15s | |
//! | `retention.enabled` | true | false: never delete remote files |
//! | `shutdown-sync-timeout` / `-interval` | 30s / 500ms | final upload retries |
//! | `exec` | — | child process run alongside replication |
//! | `logging.level` / `.type` / `.stderr` / `.source` | info / text / false / false | |
//! | `dbs[].path` | required | `~` expanded; `sqlite://` prefix stripped |
//! | `dbs[].meta-path` | `<dir>/.<file>-litestream` | local L0 files |
//! | `dbs[].monitor-interval` | 1s | |
//! | `dbs[].checkpoint-interval` | 1m | 0 = off |
//! | `dbs[].busy-timeout` | 1s | |
//! | `dbs[].min-checkpoint-page-count` | 1000 | |
//! | `dbs[].truncate-page-n` | 121359 | |
//! | `dbs[].max-sync-wal-bytes` | 64 MiB | |
//! | `dbs[].restore-if-db-not-exists` | false | |
//! | `dbs[].dir` + `pattern` | — | a directory of databases instead of `path` (see [`DirConfig`]); `pattern` required |
//! | `dbs[].recursive` / `.watch` | false / false | look in sub-folders / follow databases created and removed while running |
//! | `dbs[].meta-dir` | — | with `dir:` only: meta directories under it (`<meta-dir>/<rel>-litestream`) |
//! | `dbs[].replica` (or one-element `replicas`) | — | see below |
//! | `replica.type` | from the `url` scheme, else `file` | `file`, `s3`, `sftp`, `webdav`, `abs`, `gs`, `nats` or `oss` |
//! | `replica.url` / `.path` | — | `file:///abs/path`, `s3://bucket/path?…` |
//! | `sync-interval` | 1s | |
//! | `max-sync-ltx-files` | — | ignored, with a warning: every pending file is uploaded at each sync |
//! | `auto-recover` | — | ignored, with a warning: not supported yet |
//! | `bucket`, `region`, `endpoint` | — | s3; `user:pass@` in the endpoint is dropped (S3 signs with the keys) |
//! | `account-name` / `account-key` / `sas-token` | env `LITESTREAM_AZURE_ACCOUNT_KEY` / `LITESTREAM_AZURE_SAS_TOKEN` | abs (`bucket` is the container, `endpoint` e.g. Azurite's); a SAS token wins over the key |
//! | `bucket`, `path` (gs) | env `STORAGE_EMULATOR_HOST`, else `GOOGLE_APPLICATION_CREDENTIALS` | gs: no other keys, as in Litestream; an emulator is used without credentials |
//! | `jwt` + `seed`, `creds`, `nkey`, `username` + `password`, `token` | — | nats (`url: nats://host:port/bucket`); the first set wins, in this order; half a pair is refused |
//! | `tls`, `root-cas` (one file), `client-cert` + `client-key` | off | nats |
//! | `max-reconnects` / `reconnect-wait` / `timeout` | -1 (unlimited) / 2s / 10s | nats; `max-reconnects: 0` is refused |
//! | `region` / `endpoint` (oss) | `cn-hangzhou` / `https://oss-<region>.aliyuncs.com` | oss; `access-key-id` + `secret-access-key` both, else env `OSS_ACCESS_KEY_ID` / `OSS_ACCESS_KEY_SECRET` |
//! | `access-key-id` / `secret-access-key` | env `AWS_*`, else `LITESTREAM_*` | s3; `AWS_SESSION_TOKEN` only with keys from `AWS_*` |
//! | `force-path-style` | on with a custom endpoint | s3 |
//! | `skip-verify` | false | s3 |
//! | `sign-payload` / `require-content-md5` | — | s3; ignored, with a warning: the AWS SDK's signing and checksums are used |
//! | `part-size` | 5 MiB | integer bytes or `"10MiB"`, `"8MB"`; grown per file to stay within 10,000 parts |
//! | `concurrency` | 5 (2 for Cloudflare R2) | s3 |
//! | `storage-class`, `sse-kms-key-id`, `sse-customer-algorithm` / `-key` / `-key-path` | — | s3 |
//!
//! Replica keys (from `sync-interval` down) may also be given at the top level, as
//! defaults for every replica.

mod abs;
mod db;
mod dir;
mod duration;
mod env;
mod error;
mod gs;
mod heartbeat;
mod keys;
mod listen;
mod nats;
mod oss;
mod parts;
mod paths;
mod raw;
mod replica;
mod s3;
mod sftp;
mod socket;
mod url;
mod webdav;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_yaml_ng::Value;

pub use abs::AbsReplicaConfig;
pub use db::{DbConfig, meta_path_for};
pub use dir::DirConfig;
pub use duration::{ParseDurationError, deserialize_duration, format_duration, parse_duration};
pub use error::{ConfigError, Origin};
pub use gs::{CREDENTIALS_VAR, EMULATOR_VAR, GsReplicaConfig};
pub use heartbeat::{DEFAULT_HEARTBEAT_INTERVAL, HeartbeatConfig, MIN_HEARTBEAT_INTERVAL};
pub use listen::ListenAddr;
pub use nats::{
    DEFAULT_NATS_RECONNECT_WAIT, DEFAULT_NATS_SERVER, DEFAULT_NATS_TIMEOUT, NatsAuth,
    NatsReplicaConfig,
};
pub use oss::{DEFAULT_OSS_REGION, OssReplicaConfig};
pub use parts::{AbsParts, GsParts, NatsParts, OssParts, S3Parts, SftpParts, WebDavParts};
pub use paths::{absolute_path, default_config_path};
pub use replica::{FileReplicaConfig, ReplicaConfig, ReplicaTarget, S3ReplicaConfig};
pub use s3::{S3Credentials, resolve_s3_credentials};
pub use sftp::{DEFAULT_SFTP_PORT, SftpReplicaConfig};
pub use socket::{DEFAULT_SOCKET_PATH, DEFAULT_SOCKET_PERMISSIONS, SocketConfig};
pub use webdav::WebDavReplicaConfig;

use db::{build_db, db_name};
pub(crate) use paths::resolve_path;
pub use url::looks_like_url as is_url;
pub use url::redact as redact_url;
pub use url::strip_userinfo;

use duration::Interval;
use raw::{RawConfig, RawDb, RawReplica, non_empty};
use tideline_ltx::MAX_COMPACTION_LEVEL;

/// Default compaction intervals of L1, L2 and L3.
pub const DEFAULT_LEVELS: [Duration; 3] = [
    Duration::from_secs(30),
    Duration::from_secs(5 * 60),
    Duration::from_secs(60 * 60),
];
/// Default `snapshot.interval`.
pub const DEFAULT_SNAPSHOT_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);
/// Default `snapshot.retention`.
pub const DEFAULT_SNAPSHOT_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);
/// Default `l0-retention`.
pub const DEFAULT_L0_RETENTION: Duration = Duration::from_secs(5 * 60);
/// Default `l0-retention-check-interval`.
pub const DEFAULT_L0_RETENTION_CHECK_INTERVAL: Duration = Duration::from_secs(15);
/// Default `shutdown-sync-timeout`.
pub const DEFAULT_SHUTDOWN_SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `shutdown-sync-interval`.
pub const DEFAULT_SHUTDOWN_SYNC_INTERVAL: Duration = Duration::from_millis(500);
/// Default `monitor-interval`.
pub const DEFAULT_MONITOR_INTERVAL: Duration = Duration::from_secs(1);
/// Default `checkpoint-interval`.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(60);
/// Default `busy-timeout`.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(1);
/// Default `min-checkpoint-page-count`.
pub const DEFAULT_MIN_CHECKPOINT_PAGE_COUNT: u32 = 1000;
/// Default `truncate-page-n` (about 500 MB of WAL at 4 KiB pages).
pub const DEFAULT_TRUNCATE_PAGE_N: u32 = 121_359;
/// Default `max-sync-wal-bytes`.
pub const DEFAULT_MAX_SYNC_WAL_BYTES: u64 = 64 << 20;
/// Default `sync-interval`.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// Default `max-sync-ltx-files`.
pub const DEFAULT_MAX_SYNC_LTX_FILES: usize = 256;
/// Default S3 `part-size`.
pub const DEFAULT_S3_PART_SIZE: u64 = 5 << 20;
/// Default S3 `concurrency`.
pub const DEFAULT_S3_CONCURRENCY: usize = 5;

/// The environment as config parsing sees it.
pub(crate) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, with `$PID` = this process's id as Litestream defines it.
pub(crate) fn process_env(name: &str) -> Option<String> {
    if name == "PID" {
        return Some(std::process::id().to_string());
    }
    std::env::var(name).ok()
}

/// A secret (key, password): `Debug` and `Display` print `<redacted>`, so formatting a
/// config never leaks one. [`expose`](Self::expose) gives the value to whoever needs it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Sensitive<T>(T);

impl<T> Sensitive<T> {
    /// Wraps a secret.
    pub fn new(value: T) -> Self {
        Sensitive(value)
    }

    /// The secret itself.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the secret.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Sensitive<T> {
    fn from(value: T) -> Self {
        Sensitive(value)
    }
}

impl<T> fmt::Debug for Sensitive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<T> fmt::Display for Sensitive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A whole config file, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The databases to replicate (may be empty, e.g. with `exec`).
    pub dbs: Vec<DbConfig>,
    /// Directories of databases (`dir:` entries), each standing for the databases it
    /// holds (found by the engine).
    pub dirs: Vec<DirConfig>,
    /// Compaction windows of levels 1, 2, … (index 0 is L1); at most 8.
    pub levels: Vec<Duration>,
    /// Snapshot (level 9) cadence and retention, shared by every database.
    pub snapshot: SnapshotConfig,
    /// How long L0 files outlive their compaction into L1; `None` (`l0-retention: 0`)
    /// keeps them indefinitely.
    pub l0_retention: Option<Duration>,
    /// How often L0 retention runs.
    pub l0_retention_check_interval: Duration,
    /// `retention:` section.
    pub retention: RetentionConfig,
    /// How long to keep retrying the final upload at shutdown.
    pub shutdown_sync_timeout: Duration,
    /// Pause between final-upload retries.
    pub shutdown_sync_interval: Duration,
    /// Command run alongside replication; Tideline exits when it does.
    pub exec: Option<String>,
    /// `heartbeat-url` / `heartbeat-interval`: pinged while every database replicates.
    pub heartbeat: Option<HeartbeatConfig>,
    /// `addr:`: where Prometheus metrics are served on `/metrics`.
    pub addr: Option<ListenAddr>,
    /// `mcp-addr:`: where the MCP server (Streamable HTTP) listens.
    pub mcp_addr: Option<ListenAddr>,
    /// `socket:` with `enabled: true`: the control socket.
    pub socket: Option<SocketConfig>,
    /// `validation.interval`: how often each replica's levels are checked for gaps
    /// and overlaps; `None` (the default, as in Litestream): never.
    pub validation_interval: Option<Duration>,
    /// `logging:` section (`LOG_LEVEL` in the environment overrides the level).
    pub logging: LoggingConfig,
    /// The file this config was loaded from.
    pub source: Option<PathBuf>,
    /// Keys that were ignored and other advice, one line each, e.g.
    /// `dbs[0].replica.sync-intervall: unknown key, ignored (did you mean sync-interval?)`.
    pub warnings: Vec<String>,
}

impl Default for Config {
    /// Litestream's defaults and no databases.
    fn default() -> Self {
        Config {
            dbs: Vec::new(),
            dirs: Vec::new(),
            levels: DEFAULT_LEVELS.to_vec(),
            snapshot: SnapshotConfig::default(),
            l0_retention: Some(DEFAULT_L0_RETENTION),
            l0_retention_check_interval: DEFAULT_L0_RETENTION_CHECK_INTERVAL,
            retention: RetentionConfig::default(),
            shutdown_sync_timeout: DEFAULT_SHUTDOWN_SYNC_TIMEOUT,
            shutdown_sync_interval: DEFAULT_SHUTDOWN_SYNC_INTERVAL,
            exec: None,
            heartbeat: None,
            addr: None,
            mcp_addr: None,
            socket: None,
            validation_interval: None,
            logging: LoggingConfig::default(),
            source: None,
            warnings: Vec::new(),
        }
    }
}

/// Snapshot cadence and retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotConfig {
    /// `snapshot.interval`: how often a full snapshot (level 9) is written.
    pub interval: Duration,
    /// `snapshot.retention`: how long snapshots are kept (the newest always is).
    pub retention: Duration,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            interval: DEFAULT_SNAPSHOT_INTERVAL,
            retention: DEFAULT_SNAPSHOT_RETENTION,
        }
    }
}

/// A database's own `snapshot:` section, as written. Litestream applies one snapshot
/// schedule to every database: these values fill [`Config::snapshot`] when the top-level
/// section does not set them, and must agree across databases.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotOverride {
    /// `snapshot.interval` of this database.
    pub interval: Option<Duration>,
    /// `snapshot.retention` of this database.
    pub retention: Option<Duration>,
}

/// `retention:` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionConfig {
    /// `retention.enabled` (default true); false never deletes remote files (bucket
    /// lifecycle rules are expected to).
    pub enabled: bool,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig { enabled: true }
    }
}

/// `logging:` section.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoggingConfig {
    /// `logging.level`, overridden by `LOG_LEVEL`.
    pub level: LogLevel,
    /// `logging.type`.
    pub format: LogFormat,
    /// `logging.stderr`: log to stderr instead of stdout.
    pub stderr: bool,
    /// `logging.source`: add the source location to log records.
    pub source: bool,
}

/// Log verbosity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Everything.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation (default).
    #[default]
    Info,
    /// Problems that were handled.
    Warn,
    /// Failures.
    Error,
}

/// Log record format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `key=value` text (default).
    #[default]
    Text,
    /// One JSON object per record.
    Json,
    /// Human-friendly colored text.
    Pretty,
}

impl Config {
    /// Parses config `text`. `env` answers environment lookups: `$VAR` expansion (when
    /// `expand_env`), `HOME` for `~`, `LOG_LEVEL`, and S3 credentials. Relative paths
    /// stay relative.
    pub fn parse(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
        expand_env: bool,
    ) -> Result<Config, ConfigError> {
        parse_impl(text, env, expand_env, None)
    }

    /// Reads and parses the config file at `path` (`~` expanded) with the process
    /// environment (`$PID` expands to the process id). Relative database and replica
    /// paths are made absolute against the current directory, as Litestream does.
    pub fn load(path: &Path, expand_env: bool) -> Result<Config, ConfigError> {
        let shown = path.to_string_lossy();
        let path = resolve_path(&shown, "-config", &process_env, None)?;
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let cwd = std::env::current_dir().ok();
        let mut config = parse_impl(&text, &process_env, expand_env, cwd.as_deref())
            .map_err(|e| e.with_file(&path))?;
        config.source = Some(path);
        Ok(config)
    }

    /// The database configured at `path`, if any: a `path:` entry, or a database a
    /// `dir:` entry stands for by its place and name (whether the file is a database
    /// is not looked at here).
    pub fn db(&self, path: &Path) -> Option<DbConfig> {
        if let Some(db) = self.dbs.iter().find(|db| db.path == path) {
            return Some(db.clone());
        }
        self.dirs
            .iter()
            .find(|d| d.matches(path))
            .and_then(|d| d.entry(path).ok())
    }
}

fn parse_impl(
    text: &str,
    env: Env<'_>,
    expand_env: bool,
    cwd: Option<&Path>,
) -> Result<Config, ConfigError> {
    let mut warnings = Vec::new();
    let expanded;
    let text = if expand_env {
        expanded = env::expand(text, env, &mut warnings);
        expanded.as_str()
    } else {
        text
    };
    let value: Value =
        serde_yaml_ng::from_str(text).map_err(|e| ConfigError::from_yaml(&e, true))?;
    let (raw, global) = match &value {
        Value::Null => (RawConfig::default(), RawReplica::default()),
        Value::Mapping(_) => {
            keys::check(&value, &mut warnings);
            let typed = |e: serde_yaml_ng::Error| ConfigError::from_yaml(&e, false);
            (
                serde_yaml_ng::from_str::<RawConfig>(text).map_err(typed)?,
                serde_yaml_ng::from_str::<RawReplica>(text).map_err(typed)?,
            )
        }
        _ => {
            return Err(ConfigError::invalid(
                "top level",
                "the config must be a mapping of keys such as dbs: and levels:",
                "start the file with `dbs:` followed by a list of databases",
            ));
        }
    };
    build(raw, &global, env, cwd, warnings)
}

fn build(
    raw: RawConfig,
    global: &RawReplica,
    env: Env<'_>,
    cwd: Option<&Path>,
    mut warnings: Vec<String>,
) -> Result<Config, ConfigError> {
    let levels = build_levels(raw.levels, &mut warnings)?;
    let raw_dbs = raw.dbs.unwrap_or_default();
    let snapshot = build_snapshot(raw.snapshot.unwrap_or_default(), &raw_dbs, &mut warnings)?;
    let (mut dbs, mut dirs) = (Vec::with_capacity(raw_dbs.len()), Vec::new());
    for (i, db) in raw_dbs.iter().enumerate() {
        if non_empty(&db.dir).is_some() && non_empty(&db.path).is_none() {
            dirs.push(dir::build_dir(db, i, global, env, cwd, &mut warnings)?);
        } else {
            dbs.push(build_db(db, i, global, env, cwd, &mut warnings)?);
        }
    }
    let logging = build_logging(raw.logging.unwrap_or_default(), env, &mut warnings)?;
    let heartbeat = heartbeat::build(
        non_empty(&raw.heartbeat_url),
        raw.heartbeat_interval.map(|i| i.0),
        &mut warnings,
    )?;
    Ok(Config {
        dbs,
        dirs,
        levels,
        snapshot,
        l0_retention: match raw.l0_retention {
            None => Some(DEFAULT_L0_RETENTION),
            Some(d) if d.0.is_zero() => None,
            Some(d) => Some(d.0),
        },
        l0_retention_check_interval: raw
            .l0_retention_check_interval
            .map_or(DEFAULT_L0_RETENTION_CHECK_INTERVAL, |d| d.0),
        retention: RetentionConfig {
            enabled: raw.retention.and_then(|r| r.enabled).unwrap_or(true),
        },
        shutdown_sync_timeout: raw
            .shutdown_sync_timeout
            .map_or(DEFAULT_SHUTDOWN_SYNC_TIMEOUT, |d| d.0),
        shutdown_sync_interval: raw
            .shutdown_sync_interval
            .map_or(DEFAULT_SHUTDOWN_SYNC_INTERVAL, |d| d.0),
        exec: non_empty(&raw.exec),
        heartbeat,
        addr: non_empty(&raw.addr)
            .map(|a| listen::parse("addr", &a))
            .transpose()?,
        mcp_addr: non_empty(&raw.mcp_addr)
            .map(|a| listen::parse("mcp-addr", &a))
            .transpose()?,
        validation_interval: raw
            .validation
            .and_then(|v| v.interval)
            .map(|i| i.0)
            .filter(|i| !i.is_zero()),
        socket: {
            let s = raw.socket.unwrap_or_default();
            socket::build(s.enabled, s.path, s.permissions.as_ref(), |p| {
                paths::resolve_path(p, "socket.path", env, cwd)
            })?
        },
        logging,
        source: None,
        warnings,
    })
}

/// The `logging:` section; `LOG_LEVEL` in the environment wins over `level:`.
fn build_logging(
    logging: raw::RawLogging,
    env: Env<'_>,
    warnings: &mut Vec<String>,
) -> Result<LoggingConfig, ConfigError> {
    let level_text = env("LOG_LEVEL")
        .filter(|v| !v.is_empty())
        .or_else(|| non_empty(&logging.level));
    let level = log_level(level_text, warnings);
    let format = match non_empty(&logging.format).as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some("pretty") => LogFormat::Pretty,
        Some(other) => {
            return Err(ConfigError::invalid(
                "logging.type",
                format!("unknown log type {other:?}"),
                "use text, json or pretty",
            ));
        }
    };
    Ok(LoggingConfig {
        level,
        format,
        stderr: logging.stderr.unwrap_or(false),
        source: logging.source.unwrap_or(false),
    })
}

/// A log level name in any case; unknown names warn and mean info.
fn log_level(level_text: Option<String>, warnings: &mut Vec<String>) -> LogLevel {
    match level_text
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("INFO") => LogLevel::Info,
        Some("TRACE") => LogLevel::Trace,
        Some("DEBUG") => LogLevel::Debug,
        Some("WARN" | "WARNING") => LogLevel::Warn,
        Some("ERROR") => LogLevel::Error,
        Some(_) => {
            warnings.push(format!(
                "logging.level: unknown level {:?}, using info (use trace, debug, info, warn \
                 or error)",
                level_text.unwrap_or_default()
            ));
            LogLevel::Info
        }
    }
}

fn build_levels(
    raw: Option<Vec<raw::RawLevel>>,
    warnings: &mut Vec<String>,
) -> Result<Vec<Duration>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_LEVELS.to_vec());
    };
    if raw.len() > MAX_COMPACTION_LEVEL as usize {
        return Err(ConfigError::invalid(
            "levels",
            format!(
                "{} compaction levels configured; at most {MAX_COMPACTION_LEVEL} are allowed \
                 (level 9 holds snapshots)",
                raw.len()
            ),
            "remove levels until 8 or fewer remain",
        ));
    }
    let mut levels = Vec::with_capacity(raw.len());
    for (i, level) in raw.iter().enumerate() {
        let interval = level.interval.ok_or_else(|| {
            ConfigError::invalid(
                format!("levels[{i}].interval"),
                "missing; every compaction level needs an interval",
                "write each level as `- interval: 5m`",
            )
        })?;
        levels.push(interval.0);
    }
    for (i, pair) in levels.windows(2).enumerate() {
        if pair[1] <= pair[0] {
            warnings.push(format!(
                "levels[{}].interval: {} is not longer than levels[{i}].interval ({}); each \
                 level normally compacts a longer window than the level below",
                i + 1,
                format_duration(pair[1]),
                format_duration(pair[0]),
            ));
        }
    }
    if levels.is_empty() {
        warnings.push(
            "levels: empty; no compaction levels will be written, only L0 files and \
             snapshots"
                .to_owned(),
        );
    }
    Ok(levels)
}

/// Litestream's single snapshot schedule: the top-level values, else the databases'
/// (which must agree).
fn build_snapshot(
    top: raw::RawSnapshot,
    dbs: &[RawDb],
    warnings: &mut Vec<String>,
) -> Result<SnapshotConfig, ConfigError> {
    let interval = shared_snapshot_value("interval", top.interval, dbs, |s| s.interval, warnings)?;
    let retention =
        shared_snapshot_value("retention", top.retention, dbs, |s| s.retention, warnings)?;
    Ok(SnapshotConfig {
        interval: interval.unwrap_or(DEFAULT_SNAPSHOT_INTERVAL),
        retention: retention.unwrap_or(DEFAULT_SNAPSHOT_RETENTION),
    })
}

/// One snapshot setting: the top-level value, else the value the databases agree on.
fn shared_snapshot_value(
    field: &str,
    global: Option<Interval>,
    dbs: &[RawDb],
    get: impl Fn(&raw::RawSnapshot) -> Option<Interval>,
    warnings: &mut Vec<String>,
) -> Result<Option<Duration>, ConfigError> {
    let mut first: Option<(usize, Duration)> = None;
    for (i, db) in dbs.iter().enumerate() {
        let Some(value) = db.snapshot.as_ref().and_then(&get).map(|d| d.0) else {
            continue;
        };
        match first {
            Some((j, seen)) if seen != value => {
                return Err(ConfigError::invalid(
                    format!("dbs[{i}].snapshot.{field}"),
                    format!(
                        "conflicting database snapshot {field}s: {} has {}, {} has {}",
                        db_name(&dbs[j], j),
                        format_duration(seen),
                        db_name(db, i),
                        format_duration(value)
                    ),
                    format!(
                        "snapshots follow one schedule for all databases: give every database \
                         the same snapshot.{field}, or set only the top-level snapshot.{field}"
                    ),
                ));
            }
            Some(_) => {}
            None => first = Some((i, value)),
        }
        if let Some(global) = global
            && global.0 != value
        {
            warnings.push(format!(
                "dbs[{i}].snapshot.{field}: {} differs from the top-level snapshot.{field} \
                 ({}), which applies to every database; ignored",
                format_duration(value),
                format_duration(global.0)
            ));
        }
    }
    Ok(global.map(|g| g.0).or(first.map(|(_, d)| d)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example in this module's documentation is a valid, warning-free config.
    #[test]
    fn documented_example_parses() {
        let source = include_str!("lib.rs");
        let yaml: String = source
            .lines()
            .skip_while(|l| *l != "//! ```yaml")
            .skip(1)
            .take_while(|l| *l != "//! ```")
            .map(|l| {
                let l = l.strip_prefix("//!").unwrap_or(l);
                format!("{}\n", l.strip_prefix(' ').unwrap_or(l))
            })
            .collect();
        assert!(yaml.contains("dbs:"), "{yaml}");
        let env = |k: &str| match k {
            "HOME" | "USERPROFILE" => Some("/home/me".to_owned()),
            "AWS_ACCESS_KEY_ID" => Some("AK".to_owned()),
            "AWS_SECRET_ACCESS_KEY" => Some("SK".to_owned()),
            _ => None,
        };
        let config = Config::parse(&yaml, &env, true).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
        assert_eq!(config.dbs.len(), 2);
        assert_eq!(config.levels, DEFAULT_LEVELS.to_vec());
        assert_eq!(config.logging.level, LogLevel::Info);
        let s3 = match &config.dbs[0].replica.as_ref().unwrap().target {
            ReplicaTarget::S3(s3) => s3,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            s3.access_key_id.as_ref().map(|k| k.expose().as_str()),
            Some("AK")
        );
        assert_eq!(config.dbs[1].path, Path::new("/home/me").join("notes.db"));
    }
}
