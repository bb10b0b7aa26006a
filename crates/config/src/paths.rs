//! Paths as users write them: `~` expanded, relative paths made absolute, and the
//! default config file's location.

use std::path::{Path, PathBuf};

use super::*;

/// The config file used without `-config`: `$LITESTREAM_CONFIG`, else
/// `/etc/litestream.yml` (`C:\Litestream\litestream.yml` on Windows).
pub fn default_config_path(env: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    match env("LITESTREAM_CONFIG").filter(|v| !v.is_empty()) {
        Some(path) => PathBuf::from(path),
        None if cfg!(windows) => PathBuf::from(r"C:\Litestream\litestream.yml"),
        None => PathBuf::from("/etc/litestream.yml"),
    }
}

/// A path as a user typed it on the command line (relative, `~/…`) made absolute the
/// way config paths are: `~` expanded from the environment, then against the current
/// directory.
pub fn absolute_path(raw: &str) -> Result<PathBuf, ConfigError> {
    let cwd = std::env::current_dir().map_err(|e| {
        ConfigError::invalid(
            raw,
            format!("cannot read the current directory: {e}"),
            "give an absolute path",
        )
    })?;
    let path = resolve_path(raw, raw, &process_env, Some(&cwd))?;
    // Drops `.` components and doubled separators, so the path compares equal to the
    // same path written plainly.
    Ok(std::path::absolute(&path).unwrap_or(path))
}

/// Expands a leading `~` with `HOME` (`USERPROFILE` on Windows) and makes relative
/// paths absolute against `cwd` when given.
pub(crate) fn resolve_path(
    raw: &str,
    key: &str,
    env: Env<'_>,
    cwd: Option<&Path>,
) -> Result<PathBuf, ConfigError> {
    let home_relative =
        raw == "~" || raw.starts_with("~/") || (cfg!(windows) && raw.starts_with("~\\"));
    let path = if home_relative {
        let home_var = if cfg!(windows) { "USERPROFILE" } else { "HOME" };
        let home = env(home_var)
            .or_else(|| env("HOME"))
            .filter(|h| !h.is_empty())
            .ok_or_else(|| {
                ConfigError::invalid(
                    key,
                    format!("cannot expand ~ in {raw:?}: {home_var} is not set"),
                    "write the path out in full, or set the home directory variable",
                )
            })?;
        let rest = raw[1..].trim_start_matches(['/', '\\']);
        if rest.is_empty() {
            PathBuf::from(home)
        } else {
            Path::new(&home).join(rest)
        }
    } else {
        PathBuf::from(raw)
    };
    Ok(match cwd {
        Some(cwd) if path.is_relative() => cwd.join(path),
        _ => path,
    })
}
