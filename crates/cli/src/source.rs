//! Turning the `DB_PATH` or `REPLICA_URL` argument of `restore` and `ltx` into a replica
//! client, as Litestream does: a URL (`scheme://…`) names the replica directly; anything
//! else is a database path looked up in the config file, whose replica is used.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Result, bail};
use tideline_engine::config::{Config, DbConfig, ReplicaConfig};
use tideline_engine::{ReplicaClient, open_client};

use crate::config::{ConfigArgs, find_db, is_url};
use crate::logging;

/// A resolved replica.
#[derive(Debug)]
pub struct Source {
    /// The client.
    pub client: Arc<dyn ReplicaClient>,
    /// The replica as shown to the user (never with credentials).
    pub replica: String,
    /// The database, when the argument was a database path from the config.
    pub db: Option<DbConfig>,
}

/// Resolves `arg`, loading the config when `arg` is a database path, and starts
/// logging (with the config's settings when one was read). Config warnings are logged.
pub fn resolve(arg: &str, config_args: &ConfigArgs) -> Result<Source> {
    if is_url(arg) {
        if config_args.config.is_some() {
            bail!(
                "cannot use -config with a replica URL: the URL already names the replica; \
                 drop -config, or give the database path from the config instead of the URL"
            );
        }
        logging::init(None, None);
        let replica = ReplicaConfig::from_url(arg)?;
        return from_replica(&replica, None);
    }
    let config = load_config(config_args)?;
    let db = find_db(&config, arg)?;
    let replica = db.require_replica()?.clone();
    from_replica(&replica, Some(db))
}

/// Loads the config, starts logging with its settings and logs its warnings.
pub fn load_config(config_args: &ConfigArgs) -> Result<Config> {
    let config = config_args.load()?;
    logging::init(Some(&config.logging), None);
    log_warnings(&config);
    Ok(config)
}

/// Logs what the config loader ignored or advises, one line each.
pub fn log_warnings(config: &Config) {
    for warning in &config.warnings {
        tracing::warn!("config: {warning}");
    }
}

fn from_replica(replica: &ReplicaConfig, db: Option<DbConfig>) -> Result<Source> {
    let client = open_client(replica)?;
    Ok(Source {
        replica: client.describe(),
        client,
        db,
    })
}

impl Source {
    /// Where a restore writes: `-o`, else the database's own path.
    pub fn output(&self, flag: Option<PathBuf>) -> Result<PathBuf> {
        match (flag, &self.db) {
            (Some(out), _) => Ok(out),
            (None, Some(db)) => Ok(db.path.clone()),
            (None, None) => bail!(
                "restoring from a replica URL needs an output path: add -o /path/to/restored.db"
            ),
        }
    }
}
