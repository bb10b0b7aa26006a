//! Directories of databases (`dbs[].dir` with `pattern`, `recursive`, `watch` and
//! `meta-dir`): one config entry standing for every SQLite database under a folder,
//! each replicated on its own, laid out as Litestream 0.5.17 lays them out.
//!
//! The config holds the rules only; finding the databases (a directory walk, a look at
//! each file's header, file events) is the engine's. For a database found at
//! `<dir>/<rel>`, [`DirConfig::entry`] gives its configuration:
//!
//! | what | where |
//! |---|---|
//! | the replica | the directory replica's path (or URL path) + `/<rel>`, e.g. `s3://bucket/tenants/a/app.db` |
//! | the meta directory, by default | `<dir>/<rel's folder>/.<file>-litestream`, as for a single database |
//! | with `meta-dir: M` | `M/<rel>-litestream` |
//! | with `meta-path: M` | `M/<rel's folder>/.<file>-litestream` |

use std::path::{Component, Path, PathBuf};

use super::raw::{RawDb, RawReplica, non_empty};
use super::*;

/// One `dbs:` entry with `dir:`: every database under `dir` whose file name matches
/// `pattern`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirConfig {
    /// The folder holding the databases (absolute when loaded from a file).
    pub dir: PathBuf,
    /// A shell pattern matched against each file's name (`*.db`, `tenant-?.sqlite`),
    /// as Go's `filepath.Match` reads it.
    pub pattern: String,
    /// Look in sub-folders too.
    pub recursive: bool,
    /// Follow databases created and removed while replicating.
    pub watch: bool,
    /// Where the meta directories go.
    meta: DirMeta,
    /// Every other setting, shared by each database; `path` is `dir`.
    template: DbConfig,
}

/// Where a directory's databases keep their meta directories.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DirMeta {
    /// Beside each database (`.<file>-litestream`).
    Beside,
    /// `meta-dir: M`: `M/<rel>-litestream`.
    MetaDir(PathBuf),
    /// `meta-path: M`: `M/<rel's folder>/.<file>-litestream`.
    MetaPath(PathBuf),
}

impl DirConfig {
    /// The settings every database of the directory shares (its `path` is the
    /// directory, its replica the directory's replica).
    pub fn template(&self) -> &DbConfig {
        &self.template
    }

    /// Whether `path` is a database this entry stands for by its place and name: under
    /// the directory (directly, unless `recursive`), its file name matching the
    /// pattern, and not a SQLite side file (`-wal`, `-shm`, `-journal`). Whether it is
    /// a SQLite database is for the caller to look.
    pub fn matches(&self, path: &Path) -> bool {
        let Some(rel) = self.relative(path) else {
            return false;
        };
        if !self.recursive && rel.components().count() != 1 {
            return false;
        }
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            return false;
        };
        if ["-wal", "-shm", "-journal"]
            .iter()
            .any(|s| name.ends_with(s))
        {
            return false;
        }
        go_match(&self.pattern, name)
    }

    /// `path` relative to the directory, if it is strictly under it.
    fn relative<'a>(&self, path: &'a Path) -> Option<&'a Path> {
        let rel = path.strip_prefix(&self.dir).ok()?;
        let plain = rel.components().all(|c| matches!(c, Component::Normal(_)));
        (plain && rel.components().next().is_some()).then_some(rel)
    }

    /// The configuration of the database at `path`, found under the directory: its
    /// own meta directory and its own replica path (see the module's table), every
    /// other setting the directory's.
    pub fn entry(&self, path: &Path) -> Result<DbConfig, ConfigError> {
        let rel = self.relative(path).ok_or_else(|| {
            ConfigError::invalid(
                format!("dir {}", self.dir.display()),
                format!("{} is not inside this directory", path.display()),
                "give a database path under the directory",
            )
        })?;
        let rel_slash = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        let mut db = self.template.clone();
        db.path = path.to_owned();
        db.meta_path = match &self.meta {
            DirMeta::Beside => meta_path_for(path),
            DirMeta::MetaDir(base) => {
                let mut name = rel.as_os_str().to_owned();
                name.push("-litestream");
                base.join(name)
            }
            DirMeta::MetaPath(base) => meta_path_for(&base.join(rel)),
        };
        if let Some(replica) = &mut db.replica {
            replica.target = replica.target.joined(&rel_slash);
        }
        Ok(db)
    }
}

/// Go's `filepath.Match` on a file name: `*` any run of characters, `?` one, `[a-z]`
/// and `[^…]` classes, `\` escapes. A malformed pattern matches nothing (the config
/// refuses one at load).
fn go_match(pattern: &str, name: &str) -> bool {
    glob::Pattern::new(&go_to_glob(pattern)).is_ok_and(|p| p.matches(name))
}

/// Go's class negation `[^…]` is `[!…]` in `glob`; a `\x` escape is `[x]`.
fn go_to_glob(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' if !in_class => {
                if let Some(next) = chars.next() {
                    out.push('[');
                    out.push(next);
                    out.push(']');
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('!');
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            c => out.push(c),
        }
    }
    out
}

/// Builds a `dir:` entry (the caller has checked that `dir` is set).
pub(crate) fn build_dir(
    db: &RawDb,
    i: usize,
    global: &RawReplica,
    env: Env<'_>,
    cwd: Option<&Path>,
    warnings: &mut Vec<String>,
) -> Result<DirConfig, ConfigError> {
    let key = format!("dbs[{i}]");
    let dir_text = non_empty(&db.dir).unwrap_or_default();
    let Some(pattern) = non_empty(&db.pattern) else {
        return Err(ConfigError::invalid(
            format!("{key}.pattern"),
            "'pattern' is required when using 'dir'",
            "add pattern: \"*.db\" (or the names your databases have) to this entry",
        ));
    };
    if glob::Pattern::new(&go_to_glob(&pattern)).is_err() {
        return Err(ConfigError::invalid(
            format!("{key}.pattern"),
            format!("{pattern:?} is not a valid file-name pattern"),
            "use * for any run of characters, ? for one, [abc] for a set, e.g. \"*.db\"",
        ));
    }
    let meta = match (non_empty(&db.meta_path), non_empty(&db.meta_dir)) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::invalid(
                &key,
                "cannot specify both 'meta-path' and 'meta-dir'",
                "keep meta-dir: (one meta directory per database is made under it)",
            ));
        }
        (Some(p), None) => {
            DirMeta::MetaPath(resolve_path(&p, &format!("{key}.meta-path"), env, cwd)?)
        }
        (None, Some(d)) => {
            DirMeta::MetaDir(resolve_path(&d, &format!("{key}.meta-dir"), env, cwd)?)
        }
        (None, None) => DirMeta::Beside,
    };
    let dir = resolve_path(&dir_text, &format!("{key}.dir"), env, cwd)?;
    let mut template = DbConfig::new(dir.clone());
    db::apply_db_settings(&mut template, db, &key)?;
    if template.restore_if_db_not_exists {
        warnings.push(format!(
            "{key}.restore-if-db-not-exists: a directory's databases are found by their \
             files, so there is none to restore before they exist; ignored"
        ));
        template.restore_if_db_not_exists = false;
    }
    let (raw_replica, replica_key) = db::db_replica(db, &key, warnings)?;
    if let Some(raw_replica) = raw_replica {
        let replica = replica::build(raw_replica, global, &replica_key, env, cwd, warnings)?;
        if let ReplicaTarget::Nats(_) = replica.target {
            return Err(ConfigError::invalid(
                replica_key,
                "a NATS replica has no path inside its bucket, so every database of the \
                 directory would write into the same replica and overwrite the others",
                "list each database with its own `- path:` entry and a bucket of its own",
            ));
        }
        template.replica = Some(replica);
    }
    Ok(DirConfig {
        dir,
        pattern,
        recursive: db.recursive.unwrap_or(false),
        watch: db.watch.unwrap_or(false),
        meta,
        template,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_patterns() {
        for (p, name, want) in [
            ("*.db", "a.db", true),
            ("*.db", ".hidden.db", true),
            ("*.db", "a.db-wal", false),
            ("tenant-?.sqlite", "tenant-1.sqlite", true),
            ("tenant-?.sqlite", "tenant-12.sqlite", false),
            ("[a-c]*.db", "b1.db", true),
            ("[^a-c]*.db", "b1.db", false),
            ("[^a-c]*.db", "x1.db", true),
            ("\\*.db", "*.db", true),
            ("\\*.db", "a.db", false),
            ("*", "anything", true),
        ] {
            assert_eq!(go_match(p, name), want, "{p} on {name}");
        }
    }
}
