//! A database's configuration (`dbs:` entries): the path, the meta directory, the
//! capture and checkpoint settings, and its replica.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::{RawDb, RawReplica, non_empty};
use super::*;

/// One replicated database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbConfig {
    /// The database file (`~` expanded; absolute when loaded from a file).
    pub path: PathBuf,
    /// Local directory of pending L0 files (`meta-path`, default
    /// `<dir>/.<file>-litestream`).
    pub meta_path: PathBuf,
    /// How often the WAL is checked for new commits.
    pub monitor_interval: Duration,
    /// Time-based PASSIVE checkpoints; `None` when set to 0 (off).
    pub checkpoint_interval: Option<Duration>,
    /// SQLite busy timeout of Tideline's connections.
    pub busy_timeout: Duration,
    /// WAL pages that trigger a PASSIVE checkpoint.
    pub min_checkpoint_page_count: u32,
    /// WAL pages that trigger a TRUNCATE checkpoint.
    pub truncate_page_n: u32,
    /// The most WAL bytes one sync reads (cut at a commit boundary).
    pub max_sync_wal_bytes: u64,
    /// Restore the database from its replica before replicating if it does not exist.
    pub restore_if_db_not_exists: bool,
    /// This database's `snapshot:` section as written (see [`SnapshotOverride`]).
    pub snapshot: SnapshotOverride,
    /// The replica; `None` when the config names none (replicating then fails with
    /// [`DbConfig::require_replica`]'s error).
    pub replica: Option<ReplicaConfig>,
}

impl DbConfig {
    /// A database at `path` with every default and no replica.
    pub fn new(path: impl Into<PathBuf>) -> DbConfig {
        let path = path.into();
        DbConfig {
            meta_path: meta_path_for(&path),
            path,
            monitor_interval: DEFAULT_MONITOR_INTERVAL,
            checkpoint_interval: Some(DEFAULT_CHECKPOINT_INTERVAL),
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            min_checkpoint_page_count: DEFAULT_MIN_CHECKPOINT_PAGE_COUNT,
            truncate_page_n: DEFAULT_TRUNCATE_PAGE_N,
            max_sync_wal_bytes: DEFAULT_MAX_SYNC_WAL_BYTES,
            restore_if_db_not_exists: false,
            snapshot: SnapshotOverride::default(),
            replica: None,
        }
    }

    /// The replica, or Litestream's error for a database without one.
    pub fn require_replica(&self) -> Result<&ReplicaConfig, ConfigError> {
        self.replica.as_ref().ok_or_else(|| {
            ConfigError::invalid(
                format!("database {}", self.path.display()),
                "must specify replica for database",
                "add a replica: section with url: s3://bucket/path or path: /backup/dir",
            )
        })
    }
}

/// Litestream's meta directory of a database: `<dir>/.<file>-litestream`.
pub fn meta_path_for(db: &Path) -> PathBuf {
    let name = db
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let meta = format!(".{name}-litestream");
    match db.parent() {
        Some(dir) => dir.join(meta),
        None => PathBuf::from(meta),
    }
}

pub(crate) fn db_name(db: &RawDb, index: usize) -> String {
    non_empty(&db.path)
        .or_else(|| non_empty(&db.dir))
        .unwrap_or_else(|| format!("dbs[{index}]"))
}

pub(crate) fn build_db(
    db: &RawDb,
    i: usize,
    global: &RawReplica,
    env: Env<'_>,
    cwd: Option<&Path>,
    warnings: &mut Vec<String>,
) -> Result<DbConfig, ConfigError> {
    let key = format!("dbs[{i}]");
    let path = single_db_path(db, &key, warnings)?;
    let stripped = path
        .strip_prefix("sqlite3://")
        .or_else(|| path.strip_prefix("sqlite://"))
        .unwrap_or(&path);
    let db_path = resolve_path(stripped, &format!("{key}.path"), env, cwd)?;
    let mut config = DbConfig::new(db_path);
    if let Some(meta) = non_empty(&db.meta_path) {
        config.meta_path = resolve_path(&meta, &format!("{key}.meta-path"), env, cwd)?;
    }
    apply_db_settings(&mut config, db, &key)?;
    let (raw_replica, replica_key) = db_replica(db, &key, warnings)?;
    if let Some(raw_replica) = raw_replica {
        config.replica = Some(replica::build(
            raw_replica,
            global,
            &replica_key,
            env,
            cwd,
            warnings,
        )?);
    }
    Ok(config)
}

/// The `path:` of a database entry, refusing what only directories of databases have
/// (`watch:`, `meta-dir:`) and warning about `pattern:` and `recursive:`.
pub(crate) fn single_db_path(
    db: &RawDb,
    key: &str,
    warnings: &mut Vec<String>,
) -> Result<String, ConfigError> {
    let path = non_empty(&db.path);
    if path.is_some() && non_empty(&db.dir).is_some() {
        return Err(ConfigError::invalid(
            key,
            "cannot specify both 'path' and 'dir'",
            "use path: for one database (dir: is for directories of databases)",
        ));
    }
    if db.watch == Some(true) {
        return Err(ConfigError::invalid(
            format!("{key}.watch"),
            "'watch' can only be enabled with a directory",
            "replace path: with dir: and pattern: to follow the databases of a folder, or \
             remove watch:",
        ));
    }
    let Some(path) = path else {
        return Err(ConfigError::invalid(
            format!("{key}.path"),
            "missing; each database needs a path",
            "add path: /path/to/app.db to this entry",
        ));
    };
    if non_empty(&db.meta_dir).is_some() {
        return Err(ConfigError::invalid(
            format!("{key}.meta-dir"),
            "'meta-dir' can only be used with a directory (dir:)",
            "use meta-path: to move the metadata directory of a single database",
        ));
    }
    for (name, set) in [
        ("pattern", non_empty(&db.pattern).is_some()),
        ("recursive", db.recursive.is_some()),
    ] {
        if set {
            warnings.push(format!("{key}.{name}: only used with dir:, ignored"));
        }
    }
    Ok(path)
}

/// The per-database settings: intervals, checkpoint thresholds, sizes and the snapshot
/// override.
pub(crate) fn apply_db_settings(
    config: &mut DbConfig,
    db: &RawDb,
    key: &str,
) -> Result<(), ConfigError> {
    if let Some(d) = db.monitor_interval {
        config.monitor_interval = d.0;
    }
    if let Some(d) = db.checkpoint_interval {
        config.checkpoint_interval = (!d.0.is_zero()).then_some(d.0);
    }
    if let Some(d) = db.busy_timeout {
        config.busy_timeout = d.0;
    }
    if let Some(n) = db.min_checkpoint_page_count {
        config.min_checkpoint_page_count = n;
    }
    if let Some(n) = db.truncate_page_n {
        config.truncate_page_n = n;
    }
    if let Some(n) = db.max_sync_wal_bytes {
        if n.0 == 0 {
            return Err(ConfigError::invalid(
                format!("{key}.max-sync-wal-bytes"),
                "must be greater than 0",
                "remove the key for the default (64MiB), or give a size such as \"16MiB\"",
            ));
        }
        config.max_sync_wal_bytes = n.0;
    }
    config.restore_if_db_not_exists = db.restore_if_db_not_exists.unwrap_or(false);
    if let Some(s) = db.snapshot {
        config.snapshot = SnapshotOverride {
            interval: s.interval.map(|d| d.0),
            retention: s.retention.map(|d| d.0),
        };
    }
    Ok(())
}

/// The database's replica section and its config key: `replica:`, or a deprecated
/// one-entry `replicas:` list (with a warning); never both, never several.
pub(crate) fn db_replica<'a>(
    db: &'a RawDb,
    key: &str,
    warnings: &mut Vec<String>,
) -> Result<(Option<&'a RawReplica>, String), ConfigError> {
    let replicas = db.replicas.as_deref().unwrap_or_default();
    match (&db.replica, replicas) {
        (Some(_), [_, ..]) => Err(ConfigError::invalid(
            key,
            "cannot specify 'replica' and 'replicas' on a database",
            "keep only replica: (a single mapping)",
        )),
        (_, [_, _, ..]) => Err(ConfigError::invalid(
            format!("{key}.replicas"),
            "multiple replicas on a single database are no longer supported",
            "keep one replica and write it as replica: (a single mapping); Litestream \
             0.5 and Tideline replicate each database to exactly one place",
        )),
        (None, [only]) => {
            warnings.push(format!(
                "{key}.replicas: deprecated; write the replica as replica: (a single mapping)"
            ));
            Ok((Some(only), format!("{key}.replicas[0]")))
        }
        (replica, _) => Ok((replica.as_ref(), format!("{key}.replica"))),
    }
}
