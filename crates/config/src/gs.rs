//! Google Cloud Storage replicas (`type: gs`, `gs://bucket/path`): the keys and URL
//! form of Litestream 0.5's `gs` client, which has only `bucket` and `path` (or the
//! URL); everything else comes from the environment, as Google's client libraries
//! read it:
//!
//! * `STORAGE_EMULATOR_HOST` (`host:port`, or an `http(s)://` URL): requests go to that
//!   emulator, unauthenticated (what Go's storage library does with it);
//! * otherwise `GOOGLE_APPLICATION_CREDENTIALS`, the path of a service-account JSON
//!   key file. Litestream falls back to Google's other default credentials (the
//!   metadata server on GCE, `gcloud auth application-default login`); Tideline has
//!   no such chain, so that is a config error naming the variable to set.

use std::path::PathBuf;

use super::error::ConfigError;
use super::raw::{RawReplica, non_empty};
use super::replica::url_error;
use super::{Env, url};

/// The variable naming the service-account key file.
pub const CREDENTIALS_VAR: &str = "GOOGLE_APPLICATION_CREDENTIALS";
/// The variable naming an emulator to use instead of Google's servers.
pub const EMULATOR_VAR: &str = "STORAGE_EMULATOR_HOST";

/// A Google Cloud Storage replica: objects `<path>/ltx/<level>/<min>-<max>.ltx` in
/// bucket `bucket`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GsReplicaConfig {
    /// The bucket (`bucket`, or the URL's host).
    pub bucket: String,
    /// The object name prefix, `/`-separated, without leading or trailing slashes;
    /// empty for the bucket's root.
    pub path: String,
    /// `GOOGLE_APPLICATION_CREDENTIALS`: the service-account key file (read when the
    /// client is made). Unused with an emulator.
    pub credentials_file: Option<PathBuf>,
    /// `STORAGE_EMULATOR_HOST`, as an origin without a trailing slash
    /// (`http://127.0.0.1:9023`); `None` for Google's servers.
    pub emulator: Option<String>,
}

impl GsReplicaConfig {
    /// The JSON API's origin: the emulator's, else `https://storage.googleapis.com`.
    pub fn origin(&self) -> &str {
        self.emulator
            .as_deref()
            .unwrap_or("https://storage.googleapis.com")
    }

    /// The object name prefix of level `level`: `<path>/ltx/<level>`, as Litestream's
    /// `LTXLevelDir` writes it.
    pub fn level_dir(&self, level: u8) -> String {
        if self.path.is_empty() {
            format!("ltx/{level}")
        } else {
            format!("{}/ltx/{level}", self.path)
        }
    }
}

pub(crate) fn build_gs(
    local: &RawReplica,
    eff: &RawReplica,
    url: Option<&str>,
    key: &str,
    env: Env,
) -> Result<GsReplicaConfig, ConfigError> {
    if url.is_some() && non_empty(&local.path).is_some() {
        return Err(ConfigError::invalid(
            key,
            "cannot specify url & path for gs replica",
            "put the path in the URL (url: gs://bucket/path), or drop url: and use bucket: + path:",
        ));
    }
    if url.is_some() && non_empty(&local.bucket).is_some() {
        return Err(ConfigError::invalid(
            key,
            "cannot specify url & bucket for gs replica",
            "put the bucket in the URL (url: gs://bucket/path), or drop url: and use bucket: + path:",
        ));
    }
    let mut bucket = non_empty(&eff.bucket);
    let mut path = non_empty(&eff.path);
    if let Some(u) = url {
        let parsed = url::parse(u).map_err(|p| url_error(key, p))?;
        bucket = bucket.or(Some(parsed.host).filter(|h| !h.is_empty()));
        path = path.or(Some(parsed.path).filter(|p| !p.is_empty()));
    }
    let bucket = bucket.ok_or_else(|| {
        ConfigError::invalid(
            key,
            "bucket required for gs replica",
            "set bucket: BUCKET (and path:), or url: gs://bucket/path",
        )
    })?;
    if !valid_bucket(&bucket) {
        let at = if non_empty(&eff.bucket).is_some() {
            format!("{key}.bucket")
        } else {
            format!("{key}.url")
        };
        return Err(ConfigError::invalid(
            at,
            format!("{bucket:?} is not a valid Google Cloud Storage bucket name"),
            "a bucket name is 3 to 63 lowercase letters, digits, hyphens, underscores and \
             dots, starting and ending with a letter or digit",
        ));
    }
    let get = |n: &str| env(n).filter(|v| !v.trim().is_empty());
    let emulator = get(EMULATOR_VAR).map(|h| emulator_origin(&h));
    let credentials_file = get(CREDENTIALS_VAR).map(PathBuf::from);
    if emulator.is_none() && credentials_file.is_none() {
        return Err(ConfigError::invalid(
            key,
            "no credentials for gs replica (Tideline does not support Google's other \
             default credentials: the metadata server, gcloud's application-default login)",
            "set GOOGLE_APPLICATION_CREDENTIALS to a service-account JSON key file (or \
             STORAGE_EMULATOR_HOST for an emulator)",
        ));
    }
    let path = path
        .map(|p| url::clean_path(&p).trim_matches('/').to_owned())
        .filter(|p| p != ".")
        .unwrap_or_default();
    Ok(GsReplicaConfig {
        bucket,
        path,
        credentials_file,
        emulator,
    })
}

/// `STORAGE_EMULATOR_HOST` as an origin: `host:port` gets `http://`, as Go's and
/// Python's Google libraries give it; a URL keeps its scheme.
fn emulator_origin(host: &str) -> String {
    let host = host.trim().trim_end_matches('/');
    if host.contains("://") {
        host.to_owned()
    } else {
        format!("http://{host}")
    }
}

/// Google's bucket naming rules (the common form: no dotted names longer than 63).
fn valid_bucket(name: &str) -> bool {
    let b = name.as_bytes();
    let edge = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    (3..=63).contains(&b.len())
        && b.iter()
            .all(|&c| edge(c) || c == b'-' || c == b'_' || c == b'.')
        && edge(b[0])
        && edge(b[b.len() - 1])
        && !name.starts_with("goog")
}
