//! Replica configs: from a `replica:` section (with the top-level defaults) or from a
//! replica URL, resolved as Litestream resolves them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::abs::{AbsReplicaConfig, build_abs};
use super::error::{ConfigError, UrlProblem};
use super::gs::{GsReplicaConfig, build_gs};
use super::nats::{NatsReplicaConfig, build_nats};
use super::oss::{OssReplicaConfig, build_oss};
use super::raw::{RawReplica, age_is_set, non_empty};
use super::s3::build_s3;
use super::sftp::{SftpReplicaConfig, build_sftp};
use super::url::{self};
use super::webdav::{WebDavReplicaConfig, build_webdav};
use super::{
    DEFAULT_MAX_SYNC_LTX_FILES, DEFAULT_SYNC_INTERVAL, Env, Sensitive, keys, resolve_path,
};

/// S3's smallest multipart part (except the last).
pub(crate) const MIN_PART_SIZE: u64 = 5 << 20;
/// S3's largest multipart part.
pub(crate) const MAX_PART_SIZE: u64 = 5 << 30;
/// Litestream's concurrency for Cloudflare R2, which throttles parallel uploads.
pub(crate) const R2_CONCURRENCY: usize = 2;

pub(crate) const SUPPORTED: &str = "supported: file, s3, sftp, webdav, abs, gs, nats, oss";

/// Where and how one database is replicated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaConfig {
    /// The destination.
    pub target: ReplicaTarget,
    /// `sync-interval`: the least time between uploads (default 1s).
    pub sync_interval: Duration,
    /// `max-sync-ltx-files` as Litestream reads it (default 256; `None` for 0, no
    /// limit). Kept so a config round-trips; replication does not act on it, and
    /// setting it gets a warning.
    pub max_sync_ltx_files: Option<usize>,
    /// `auto-recover` as Litestream reads it (default off). Not acted on; setting it
    /// gets a warning.
    pub auto_recover: bool,
}

/// A replica destination.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplicaTarget {
    /// A folder (`type: file`, `file:///abs/path`).
    File(FileReplicaConfig),
    /// An S3 or S3-compatible bucket (`type: s3`, `s3://bucket/path`).
    S3(Box<S3ReplicaConfig>),
    /// A folder on an SFTP server (`type: sftp`, `sftp://user@host/path`).
    Sftp(Box<SftpReplicaConfig>),
    /// A folder on a WebDAV server (`type: webdav`, `webdavs://host/path`).
    WebDav(Box<WebDavReplicaConfig>),
    /// An Azure Blob Storage container (`type: abs`, `abs://account@container/path`).
    Abs(Box<AbsReplicaConfig>),
    /// A Google Cloud Storage bucket (`type: gs`, `gs://bucket/path`).
    Gs(Box<GsReplicaConfig>),
    /// A NATS JetStream object-store bucket (`type: nats`, `nats://host:port/bucket`).
    Nats(Box<NatsReplicaConfig>),
    /// An Alibaba Cloud OSS bucket (`type: oss`, `oss://bucket/path`).
    Oss(Box<OssReplicaConfig>),
}

impl ReplicaTarget {
    /// The type, as Litestream's `type:` names it (`file`, `s3`, `sftp`, `webdav`,
    /// `abs`, `gs`, `nats`, `oss`).
    pub fn kind(&self) -> &'static str {
        match self {
            ReplicaTarget::File(_) => "file",
            ReplicaTarget::S3(_) => "s3",
            ReplicaTarget::Sftp(_) => "sftp",
            ReplicaTarget::WebDav(_) => "webdav",
            ReplicaTarget::Abs(_) => "abs",
            ReplicaTarget::Gs(_) => "gs",
            ReplicaTarget::Nats(_) => "nats",
            ReplicaTarget::Oss(_) => "oss",
        }
    }

    /// The same destination one level down: `rel` (slash-separated) appended to the
    /// folder, the bucket's path or the server's folder, as Litestream does for each
    /// database of a directory (`dir:`). A NATS bucket has no path and is unchanged
    /// (the config refuses a directory with a NATS replica).
    pub fn joined(&self, rel: &str) -> ReplicaTarget {
        fn join(base: &str, rel: &str) -> String {
            let base = base.trim_end_matches('/');
            if base.is_empty() {
                rel.to_owned()
            } else {
                format!("{base}/{rel}")
            }
        }
        let mut t = self.clone();
        match &mut t {
            ReplicaTarget::File(c) => c.path = c.path.join(rel),
            ReplicaTarget::S3(c) => c.path = join(&c.path, rel),
            ReplicaTarget::Sftp(c) => c.path = join(&c.path, rel),
            ReplicaTarget::WebDav(c) => c.path = join(&c.path, rel),
            ReplicaTarget::Abs(c) => c.path = join(&c.path, rel),
            ReplicaTarget::Gs(c) => c.path = join(&c.path, rel),
            ReplicaTarget::Nats(_) => {}
            ReplicaTarget::Oss(c) => c.path = join(&c.path, rel),
        }
        t
    }
}

impl fmt::Display for ReplicaTarget {
    /// A description without credentials: the folder, `s3://bucket/path`,
    /// `sftp://user@host/path`, the WebDAV folder's URL, or
    /// `abs://account@container/path` (with the endpoint when one is set), or
    /// `gs://bucket/path` (with the emulator when one is used).
    /// `nats://host:port/bucket`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplicaTarget::File(c) => write!(f, "{}", c.path.display()),
            ReplicaTarget::S3(c) if c.path.is_empty() => write!(f, "s3://{}", c.bucket),
            ReplicaTarget::S3(c) => write!(f, "s3://{}/{}", c.bucket, c.path),
            ReplicaTarget::Sftp(c) if c.path.starts_with('/') => {
                write!(f, "sftp://{}@{}{}", c.user, c.host, c.path)
            }
            ReplicaTarget::Sftp(c) if c.path.is_empty() => {
                write!(f, "sftp://{}@{} (login folder)", c.user, c.host)
            }
            ReplicaTarget::Sftp(c) => {
                write!(f, "sftp://{}@{} (folder {})", c.user, c.host, c.path)
            }
            ReplicaTarget::WebDav(c) if c.path.is_empty() => write!(f, "{}/", c.url),
            ReplicaTarget::WebDav(c) => write!(f, "{}/{}/", c.url, c.path),
            ReplicaTarget::Abs(c) => {
                f.write_str("abs://")?;
                if let Some(account) = &c.account_name {
                    write!(f, "{account}@")?;
                }
                f.write_str(&c.bucket)?;
                if !c.path.is_empty() {
                    write!(f, "/{}", c.path)?;
                }
                match &c.endpoint {
                    Some(e) => write!(f, " (endpoint {e})"),
                    None => Ok(()),
                }
            }
            ReplicaTarget::Gs(c) => {
                write!(f, "gs://{}", c.bucket)?;
                if !c.path.is_empty() {
                    write!(f, "/{}", c.path)?;
                }
                match &c.emulator {
                    Some(e) => write!(f, " (emulator {e})"),
                    None => Ok(()),
                }
            }
            ReplicaTarget::Nats(c) => write!(f, "nats://{}/{}", c.server, c.bucket),
            ReplicaTarget::Oss(c) => {
                write!(f, "oss://{}", c.bucket)?;
                if !c.path.is_empty() {
                    write!(f, "/{}", c.path)?;
                }
                match &c.endpoint {
                    Some(e) => write!(f, " (endpoint {e})"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// A folder replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReplicaConfig {
    /// The replica's root folder (`ltx/<level>/…` goes below it), `~` expanded.
    pub path: PathBuf,
}

/// An S3 replica, with Litestream's defaults and provider adjustments applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3ReplicaConfig {
    /// The bucket (or access-point ARN).
    pub bucket: String,
    /// Key prefix inside the bucket; empty for the bucket root.
    pub path: String,
    /// `region`; `None` lets the client look it up (or use us-east-1).
    pub region: Option<String>,
    /// `endpoint` for S3-compatible servers, always with a scheme; `None` for AWS.
    pub endpoint: Option<String>,
    /// Access key: `access-key-id`, else `AWS_ACCESS_KEY_ID`, else
    /// `LITESTREAM_ACCESS_KEY_ID`; `None` leaves it to the standard AWS chain.
    pub access_key_id: Option<Sensitive<String>>,
    /// Secret key, found like [`access_key_id`](Self::access_key_id).
    pub secret_access_key: Option<Sensitive<String>>,
    /// `AWS_SESSION_TOKEN`, only when the keys themselves came from `AWS_ACCESS_KEY_ID`
    /// and `AWS_SECRET_ACCESS_KEY`: a token belongs to the temporary keys it was issued
    /// with, and sent with other keys it makes every request fail (`InvalidToken`).
    pub session_token: Option<Sensitive<String>>,
    /// Path-style addressing (`bucket` in the path, not the host name). Default: on
    /// when an endpoint is set, and for B2, Filebase, MinIO-like hosts and Supabase.
    pub force_path_style: bool,
    /// Skip TLS certificate verification (`skip-verify`).
    pub skip_verify: bool,
    /// `sign-payload` as Litestream reads it (default true). Not acted on (the AWS
    /// SDK's signing is used); setting it gets a warning.
    pub sign_payload: bool,
    /// `require-content-md5` as Litestream reads it (default true; false for Tigris).
    /// Not acted on (the AWS SDK's checksums are used); setting it gets a warning.
    pub require_content_md5: bool,
    /// Multipart part size in bytes (`part-size`, default 5 MiB).
    pub part_size: u64,
    /// Parallel part uploads (`concurrency`, default 5; 2 for Cloudflare R2).
    pub concurrency: usize,
    /// `storage-class` for uploads.
    pub storage_class: Option<String>,
    /// SSE-C algorithm: `AES256` unless set, when a customer key is given.
    pub sse_customer_algorithm: Option<String>,
    /// SSE-C key (`sse-customer-key`).
    pub sse_customer_key: Option<Sensitive<String>>,
    /// File holding the SSE-C key (`sse-customer-key-path`); read when the client is
    /// created, and preferred over `sse-customer-key`.
    pub sse_customer_key_path: Option<PathBuf>,
    /// SSE-KMS key id (`sse-kms-key-id`).
    pub sse_kms_key_id: Option<String>,
}

impl ReplicaConfig {
    /// A replica from a URL as `tideline replicate DB_PATH REPLICA_URL` and
    /// `tideline restore REPLICA_URL` take it: `file:///abs/path`, a plain path
    /// (relative paths are resolved against the current directory), or
    /// `s3://bucket/path?endpoint=…&region=…&forcePathStyle=true&skipVerify=true`.
    /// S3 credentials come from the environment (`AWS_*`, else `LITESTREAM_*`).
    pub fn from_url(url: &str) -> Result<ReplicaConfig, ConfigError> {
        let cwd = std::env::current_dir().ok();
        from_url_impl(url, &super::process_env, cwd.as_deref())
    }

    /// [`from_url`](Self::from_url) with the environment given by `env` and relative
    /// paths left relative.
    pub fn from_url_with_env(
        url: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ReplicaConfig, ConfigError> {
        from_url_impl(url, env, None)
    }
}

pub(crate) fn from_url_impl(
    url: &str,
    env: Env,
    cwd: Option<&Path>,
) -> Result<ReplicaConfig, ConfigError> {
    let shown = url::redact(url);
    let as_url_error = |e: ConfigError| match e {
        ConfigError::Invalid { problem, fix, .. } => ConfigError::ReplicaUrl {
            url: shown.clone(),
            problem,
            fix,
        },
        other => other,
    };
    if url.trim().is_empty() {
        return Err(ConfigError::ReplicaUrl {
            url: shown,
            problem: "empty".into(),
            fix: "give file:///abs/path, a folder path, or s3://bucket/path".into(),
        });
    }
    let raw = RawReplica {
        url: Some(url.to_owned()),
        ..RawReplica::default()
    };
    let mut warnings = Vec::new();
    let replica = build(&raw, &RawReplica::default(), "url", env, cwd, &mut warnings)
        .map_err(as_url_error)?;
    // On the command line there is no place for warnings: a query parameter Tideline
    // does not know is an error there.
    if let Some(w) = warnings.into_iter().next() {
        let problem = w.split_once(": ").map_or(w.as_str(), |(_, p)| p).to_owned();
        return Err(ConfigError::ReplicaUrl {
            url: shown,
            problem,
            fix: "remove it, or use a config file".into(),
        });
    }
    Ok(replica)
}

/// The scheme of a replica `url:` value, if it has one.
pub(crate) fn scheme_of(url: &str) -> Option<String> {
    if url::looks_like_url(url)
        || url
            .get(..5)
            .is_some_and(|p| p.eq_ignore_ascii_case("file:"))
    {
        url.split(':').next().map(str::to_ascii_lowercase)
    } else {
        None
    }
}

/// Builds the replica at config key `key` (`dbs[0].replica`) from its own section and
/// the top-level defaults.
pub(crate) fn build(
    local: &RawReplica,
    global: &RawReplica,
    key: &str,
    env: Env,
    cwd: Option<&Path>,
    warnings: &mut Vec<String>,
) -> Result<ReplicaConfig, ConfigError> {
    let eff = local.with_defaults(global);
    check_no_age(local, &eff, key)?;
    check_path_is_not_url(local, key)?;
    let url = non_empty(&local.url);
    let (kind, scheme) = replica_kind(url.as_deref(), &eff, key, warnings);
    let target = match kind.as_str() {
        "file" => ReplicaTarget::File(build_file(local, url.as_deref(), key, env, cwd)?),
        "s3" => ReplicaTarget::S3(Box::new(build_s3(
            local,
            &eff,
            url.as_deref(),
            key,
            env,
            warnings,
        )?)),
        "sftp" => ReplicaTarget::Sftp(Box::new(build_sftp(
            local,
            &eff,
            url.as_deref(),
            key,
            env,
            cwd,
        )?)),
        "webdav" => {
            ReplicaTarget::WebDav(Box::new(build_webdav(local, &eff, url.as_deref(), key)?))
        }
        "abs" => ReplicaTarget::Abs(Box::new(build_abs(local, &eff, url.as_deref(), key, env)?)),
        "gs" => ReplicaTarget::Gs(Box::new(build_gs(local, &eff, url.as_deref(), key, env)?)),
        "nats" => ReplicaTarget::Nats(Box::new(build_nats(
            &eff,
            url.as_deref(),
            key,
            env,
            cwd,
            warnings,
        )?)),
        "oss" => ReplicaTarget::Oss(Box::new(build_oss(local, &eff, url.as_deref(), key, env)?)),
        other => return Err(unsupported_kind(other, scheme.is_some(), key)),
    };
    Ok(ReplicaConfig {
        target,
        sync_interval: eff.sync_interval.map_or(DEFAULT_SYNC_INTERVAL, |i| i.0),
        max_sync_ltx_files: max_sync_ltx_files(eff.max_sync_ltx_files),
        auto_recover: eff.auto_recover.unwrap_or(false),
    })
}

/// Refuses an `age:` section (locally or in the top-level defaults).
pub(crate) fn check_no_age(
    local: &RawReplica,
    eff: &RawReplica,
    key: &str,
) -> Result<(), ConfigError> {
    if !age_is_set(&eff.age) {
        return Ok(());
    }
    let age_key = if age_is_set(&local.age) {
        format!("{key}.age")
    } else {
        "age".to_owned()
    };
    Err(ConfigError::invalid(
        age_key,
        "age encryption is not currently supported (Litestream 0.5 removed it, issue #790)",
        "remove the age section; for encryption at rest use S3 server-side encryption \
         (sse-kms-key-id or sse-customer-key), or stay on Litestream v0.3.x",
    ))
}

/// Refuses a URL in `path:` (it belongs in `url:`).
pub(crate) fn check_path_is_not_url(local: &RawReplica, key: &str) -> Result<(), ConfigError> {
    match non_empty(&local.path) {
        Some(path) if url::looks_like_url(&path) => Err(ConfigError::invalid(
            format!("{key}.path"),
            format!("replica path cannot be a URL ({})", url::redact(&path)),
            "use the url: key for URLs, or give a plain path",
        )),
        _ => Ok(()),
    }
}

/// The replica type and the URL scheme it came from, if any: the scheme names the type
/// (webdavs is webdav over TLS), overriding `type:` with a warning; the default is file.
pub(crate) fn replica_kind(
    url: Option<&str>,
    eff: &RawReplica,
    key: &str,
    warnings: &mut Vec<String>,
) -> (String, Option<String>) {
    let scheme = url.and_then(scheme_of).map(|s| {
        if s == "webdavs" {
            "webdav".to_owned()
        } else {
            s
        }
    });
    let kind = match (&scheme, &eff.kind) {
        (Some(scheme), Some(kind)) => {
            if scheme != kind {
                warnings.push(format!(
                    "{key}.type: {kind:?} ignored; the url scheme makes this a {scheme} replica"
                ));
            }
            scheme.clone()
        }
        (Some(scheme), None) => scheme.clone(),
        (None, Some(kind)) => kind.clone(),
        (None, None) => "file".to_owned(),
    };
    (kind, scheme)
}

/// The error for a replica type neither tool has: an unknown URL scheme, or an unknown
/// `type:` (with a "did you mean").
pub(crate) fn unsupported_kind(kind: &str, from_scheme: bool, key: &str) -> ConfigError {
    let kind_key = if from_scheme {
        format!("{key}.url")
    } else {
        format!("{key}.type")
    };
    match kind {
        other if from_scheme => ConfigError::invalid(
            kind_key,
            format!("unknown replica URL scheme {other:?}"),
            format!(
                "write file:///abs/path for a folder, or a replica URL such as s3://bucket/path; {SUPPORTED}"
            ),
        ),
        other => {
            let hint = match keys::suggest(
                other,
                &["file", "s3", "sftp", "webdav", "abs", "gs", "nats", "oss"],
            ) {
                Some(s) => format!("did you mean type: {s}? {SUPPORTED}"),
                None => SUPPORTED.to_owned(),
            };
            ConfigError::invalid(kind_key, format!("unknown replica type {other:?}"), hint)
        }
    }
}

/// `max-sync-ltx-files` as Litestream reads it: 256 by default, 0 for no limit.
pub(crate) fn max_sync_ltx_files(raw: Option<u64>) -> Option<usize> {
    match raw {
        None => Some(DEFAULT_MAX_SYNC_LTX_FILES),
        Some(0) => None,
        Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
    }
}

/// The parts of a replica URL that keys may also give (SFTP, WebDAV), decoded; empty
/// parts are absent.
#[derive(Debug, Default)]
pub(crate) struct UrlParts {
    pub scheme: String,
    pub host: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub path: Option<String>,
}

impl UrlParts {
    /// The parts of `url`, if there is one.
    pub(crate) fn of(url: Option<&str>, key: &str) -> Result<UrlParts, ConfigError> {
        let Some(u) = url else {
            return Ok(UrlParts::default());
        };
        let p = url::parse(u).map_err(|p| url_error(key, p))?;
        let given = |s: Option<String>| s.filter(|s| !s.is_empty());
        Ok(UrlParts {
            scheme: p.scheme,
            host: given(Some(p.host)),
            user: given(p.user),
            password: given(p.password),
            path: given(Some(p.path)),
        })
    }
}

/// One setting of a URL-addressed replica: the replica's own key beats the URL's part,
/// which beats a top-level default (Litestream lets the default beat the URL, which
/// nobody means).
pub(crate) fn pick(
    local: &Option<String>,
    in_url: &Option<String>,
    global: &Option<String>,
) -> Option<String> {
    non_empty(local)
        .or_else(|| in_url.clone())
        .or_else(|| non_empty(global))
}

/// Refuses key `what` on a replica that also has a `url:`, as Litestream does.
pub(crate) fn refuse_beside_url(
    url: Option<&str>,
    value: &Option<String>,
    key: &str,
    problem: &str,
    fix: &str,
) -> Result<(), ConfigError> {
    if url.is_some() && non_empty(value).is_some() {
        return Err(ConfigError::invalid(key, problem, fix));
    }
    Ok(())
}

pub(crate) fn url_error(key: &str, p: UrlProblem) -> ConfigError {
    ConfigError::invalid(format!("{key}.url"), p.problem, p.fix)
}

pub(crate) fn build_file(
    local: &RawReplica,
    url: Option<&str>,
    key: &str,
    env: Env,
    cwd: Option<&Path>,
) -> Result<FileReplicaConfig, ConfigError> {
    if url.is_some() && non_empty(&local.path).is_some() {
        return Err(ConfigError::invalid(
            key,
            "cannot specify url & path for file replica",
            "keep one of them: url: file:///abs/path or path: /abs/path",
        ));
    }
    let path = match url {
        Some(u) if scheme_of(u).is_some() => {
            let parsed = url::parse(u).map_err(|p| url_error(key, p))?;
            if !parsed.host.is_empty() && !parsed.host.eq_ignore_ascii_case("localhost") {
                return Err(url_error(
                    key,
                    UrlProblem::new(
                        format!("file URL has a host ({:?})", parsed.host),
                        "write three slashes before an absolute path: file:///abs/path",
                    ),
                ));
            }
            let path = url::clean_path(&parsed.path);
            // file:///C:/backups → C:/backups on Windows.
            if cfg!(windows) && path.len() > 2 && path.as_bytes()[2] == b':' {
                path[1..].to_owned()
            } else {
                path
            }
        }
        Some(plain) => plain.to_owned(),
        None => non_empty(&local.path).ok_or_else(|| {
            ConfigError::invalid(
                key,
                "file replica path required",
                "set path: /abs/dir (or url: file:///abs/dir), or url: s3://bucket/path \
                 for S3",
            )
        })?,
    };
    let path_key = if url.is_some() {
        format!("{key}.url")
    } else {
        format!("{key}.path")
    };
    Ok(FileReplicaConfig {
        path: resolve_path(&path, &path_key, env, cwd)?,
    })
}
