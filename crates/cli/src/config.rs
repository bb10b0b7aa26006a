//! The `-config` / `-no-expand-env` flags shared by every command that reads a config
//! file, and finding a database in it by the path the user typed.

use std::path::PathBuf;

use anyhow::{Result, bail};
use tideline_engine::config::{Config, DbConfig, default_config_path};

/// Config-file flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// Config file [default: $LITESTREAM_CONFIG, else /etc/litestream.yml]
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Do not expand $VAR / ${VAR} in the config file
    #[arg(long)]
    pub no_expand_env: bool,
}

impl ConfigArgs {
    /// The config file to read: `-config`, else `$LITESTREAM_CONFIG`, else the
    /// platform default.
    pub fn path(&self) -> PathBuf {
        self.config
            .clone()
            .unwrap_or_else(|| default_config_path(&|k| std::env::var(k).ok()))
    }

    /// Loads the config file. The engine's errors already name the file, the key and
    /// the fix, so they are passed on as they are.
    pub fn load(&self) -> Result<Config> {
        Ok(Config::load(&self.path(), !self.no_expand_env)?)
    }
}

/// The database in `config` that `arg` (as typed: relative, `~/…`) names. Config paths
/// are absolute, so `arg` is made absolute the same way; a database reached through
/// another spelling of the same file (a symlink) is found too.
pub fn find_db(config: &Config, arg: &str) -> Result<DbConfig> {
    let path = absolute(arg)?;
    if let Some(db) = config.db(&path) {
        return Ok(db);
    }
    if let Ok(canonical) = path.canonicalize() {
        if let Some(db) = config
            .dbs
            .iter()
            .find(|db| db.path.canonicalize().is_ok_and(|p| p == canonical))
        {
            return Ok(db.clone());
        }
        // A database of a `dir:` entry, reached through a link to it or its folder.
        if let Some(db) = config.dirs.iter().find_map(|d| {
            let rel = canonical.strip_prefix(d.dir.canonicalize().ok()?).ok()?;
            let path = d.dir.join(rel);
            d.matches(&path).then(|| d.entry(&path).ok()).flatten()
        }) {
            return Ok(db);
        }
    }
    let file = config
        .source
        .as_deref()
        .map_or_else(|| "the config".to_owned(), |p| p.display().to_string());
    let mut listed: Vec<String> = config
        .dbs
        .iter()
        .map(|db| db.path.display().to_string())
        .collect();
    listed.extend(
        config
            .dirs
            .iter()
            .map(|d| format!("the databases {} in {}", d.pattern, d.dir.display())),
    );
    let listed = if listed.is_empty() {
        "it lists no databases".to_owned()
    } else {
        format!("it lists {}", listed.join(", "))
    };
    bail!(
        "database {} is not in {file} ({listed}); give a database path from the config, \
         or a replica URL such as file:///backups/db",
        path.display()
    )
}

/// `arg` made absolute as config paths are (`~` expanded, against the current
/// directory).
pub fn absolute(arg: &str) -> Result<PathBuf> {
    Ok(tideline_engine::config::absolute_path(arg)?)
}

pub use tideline_engine::config::is_url;

#[cfg(test)]
mod tests {
    use tideline_engine::config::DbConfig;

    use super::*;

    #[test]
    fn urls_versus_paths() {
        assert!(is_url("file:///backups/db"));
        assert!(is_url("s3://bucket/db"));
        assert!(is_url("s3_x://b"));
        assert!(!is_url("/var/lib/app.db"));
        assert!(!is_url("relative/app.db"));
        assert!(!is_url("://x"));
        assert!(!is_url("a b://x"));
    }

    #[test]
    fn finds_databases_by_relative_or_absolute_path() {
        let cwd = std::env::current_dir().unwrap();
        let mut config = Config::default();
        config.dbs.push(DbConfig::new(cwd.join("data/app.db")));
        assert_eq!(
            find_db(&config, "data/app.db").unwrap().path,
            cwd.join("data/app.db")
        );
        let abs = cwd.join("data/app.db");
        assert!(find_db(&config, abs.to_str().unwrap()).is_ok());
        let err = find_db(&config, "other.db").unwrap_err().to_string();
        assert!(err.contains("other.db") && err.contains("app.db"), "{err}");
        assert!(err.contains("replica URL"), "{err}");
    }
}
