//! Replica configs: from a `replica:` section (with the top-level defaults) or from a
//! replica URL, resolved as Litestream resolves them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{ConfigError, UrlProblem};
use super::raw::{RawReplica, age_is_set, non_empty};
use super::url::{self, Url};
use super::{
    DEFAULT_MAX_SYNC_LTX_FILES, DEFAULT_S3_CONCURRENCY, DEFAULT_S3_PART_SIZE,
    DEFAULT_SYNC_INTERVAL, Env, Sensitive, keys, resolve_path,
};

/// S3's smallest multipart part (except the last).
const MIN_PART_SIZE: u64 = 5 << 20;
/// S3's largest multipart part.
const MAX_PART_SIZE: u64 = 5 << 30;
/// Litestream's concurrency for Cloudflare R2, which throttles parallel uploads.
const R2_CONCURRENCY: usize = 2;

const SUPPORTED: &str = "supported: file, s3";

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
}

impl ReplicaTarget {
    /// `"file"` or `"s3"`, as Litestream's `type:` names it.
    pub fn kind(&self) -> &'static str {
        match self {
            ReplicaTarget::File(_) => "file",
            ReplicaTarget::S3(_) => "s3",
        }
    }
}

impl fmt::Display for ReplicaTarget {
    /// A description without credentials: the folder, or `s3://bucket/path`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplicaTarget::File(c) => write!(f, "{}", c.path.display()),
            ReplicaTarget::S3(c) if c.path.is_empty() => write!(f, "s3://{}", c.bucket),
            ReplicaTarget::S3(c) => write!(f, "s3://{}/{}", c.bucket, c.path),
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

/// An S3 destination as a form asks for it: what a config file's `type: s3` section
/// would hold. Empty strings count as not given.
#[derive(Debug, Clone, Default)]
pub struct S3Parts {
    /// The bucket.
    pub bucket: String,
    /// The key prefix in the bucket (slashes around it are dropped).
    pub path: String,
    /// A custom endpoint (S3-compatible servers); AWS when empty.
    pub endpoint: String,
    /// The region; found from the bucket when empty.
    pub region: String,
    /// The access key; from the environment (`AWS_*`, else `LITESTREAM_*`) when empty.
    pub access_key_id: String,
    /// The secret key; from the environment when empty.
    pub secret_access_key: Sensitive<String>,
}

impl ReplicaConfig {
    /// An S3 replica from its parts, with exactly the defaults a config file's
    /// section gets (path-style addressing for a custom endpoint, provider quirks,
    /// credentials from the environment when none are given).
    pub fn s3(parts: &S3Parts) -> Result<ReplicaConfig, ConfigError> {
        let given = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let raw = RawReplica {
            kind: Some("s3".to_owned()),
            bucket: given(&parts.bucket),
            path: given(parts.path.trim().trim_matches('/')),
            endpoint: given(&parts.endpoint),
            region: given(&parts.region),
            access_key_id: given(&parts.access_key_id),
            secret_access_key: given(parts.secret_access_key.expose()),
            ..RawReplica::default()
        };
        let mut warnings = Vec::new();
        build(
            &raw,
            &RawReplica::default(),
            "replica",
            &super::process_env,
            None,
            &mut warnings,
        )
    }
}

fn from_url_impl(url: &str, env: Env, cwd: Option<&Path>) -> Result<ReplicaConfig, ConfigError> {
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
fn scheme_of(url: &str) -> Option<String> {
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
fn check_no_age(local: &RawReplica, eff: &RawReplica, key: &str) -> Result<(), ConfigError> {
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
fn check_path_is_not_url(local: &RawReplica, key: &str) -> Result<(), ConfigError> {
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
fn replica_kind(
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

/// The error for a replica type other than file and s3: a Litestream backend Tideline
/// lacks, an unknown URL scheme, or an unknown `type:` (with a "did you mean").
fn unsupported_kind(kind: &str, from_scheme: bool, key: &str) -> ConfigError {
    let kind_key = if from_scheme {
        format!("{key}.url")
    } else {
        format!("{key}.type")
    };
    match kind {
        "gs" | "abs" | "sftp" | "webdav" | "nats" | "oss" => ConfigError::invalid(
            kind_key,
            format!("replica type {kind} is not supported by Tideline yet"),
            SUPPORTED,
        ),
        other if from_scheme => ConfigError::invalid(
            kind_key,
            format!("unknown replica URL scheme {other:?}"),
            "write file:///abs/path for a folder or s3://bucket/path for S3",
        ),
        other => {
            let hint = match keys::suggest(other, &["file", "s3"]) {
                Some(s) => format!("did you mean type: {s}? {SUPPORTED}"),
                None => SUPPORTED.to_owned(),
            };
            ConfigError::invalid(kind_key, format!("unknown replica type {other:?}"), hint)
        }
    }
}

/// `max-sync-ltx-files` as Litestream reads it: 256 by default, 0 for no limit.
fn max_sync_ltx_files(raw: Option<u64>) -> Option<usize> {
    match raw {
        None => Some(DEFAULT_MAX_SYNC_LTX_FILES),
        Some(0) => None,
        Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
    }
}

fn url_error(key: &str, p: UrlProblem) -> ConfigError {
    ConfigError::invalid(format!("{key}.url"), p.problem, p.fix)
}

fn build_file(
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

/// Query parameters of S3 URLs, as Litestream names them.
const S3_QUERY_KEYS: &[&str] = &[
    "endpoint",
    "region",
    "forcePathStyle",
    "skipVerify",
    "signPayload",
    "sign-payload",
    "requireContentMD5",
    "require-content-md5",
    "storageClass",
    "storage-class",
    "partSize",
    "part-size",
    "concurrency",
];

/// What an S3 URL contributes.
#[derive(Default)]
struct S3Url {
    bucket: Option<String>,
    path: String,
    region: Option<String>,
    endpoint: Option<String>,
    force_path_style: bool,
    skip_verify: Option<bool>,
    sign_payload: Option<bool>,
    require_content_md5: Option<bool>,
    storage_class: Option<String>,
    part_size: Option<u64>,
    concurrency: Option<u64>,
}

fn parse_s3_url(u: &Url, warnings: &mut Vec<String>, key: &str) -> Result<S3Url, UrlProblem> {
    let mut out = if u.host.to_ascii_lowercase().starts_with("arn:") {
        s3_access_point_url(u)?
    } else {
        s3_bucket_url(u)
    };
    apply_s3_query(u, &mut out)?;
    warn_unknown_s3_query(u, key, warnings);
    Ok(out)
}

/// `s3://arn:aws:s3:REGION:ACCOUNT:accesspoint/NAME/prefix`: the access point is the
/// bucket.
fn s3_access_point_url(u: &Url) -> Result<S3Url, UrlProblem> {
    let path = u.path.trim_start_matches('/');
    let (name, prefix) = path.split_once('/').unwrap_or((path, ""));
    if name.is_empty() || !u.host.to_ascii_lowercase().ends_with(":accesspoint") {
        return Err(UrlProblem::new(
            "invalid S3 access point ARN",
            "write s3://arn:aws:s3:REGION:ACCOUNT:accesspoint/NAME/PREFIX",
        ));
    }
    Ok(S3Url {
        bucket: Some(format!("{}/{name}", u.host)),
        region: u
            .host
            .split(':')
            .nth(3)
            .filter(|r| !r.is_empty())
            .map(str::to_owned),
        path: url::s3_key_prefix(prefix),
        ..S3Url::default()
    })
}

/// `s3://bucket/prefix`, where the host may also name a provider's endpoint.
fn s3_bucket_url(u: &Url) -> S3Url {
    let host = url::parse_s3_host(&u.host);
    S3Url {
        bucket: host.bucket,
        region: host.region,
        endpoint: host.endpoint,
        force_path_style: host.force_path_style,
        path: url::s3_key_prefix(&u.path),
        ..S3Url::default()
    }
}

/// The first of `names` that is set (non-empty) in the query, with its value.
fn s3_query_param<'u>(u: &'u Url, names: &[&'static str]) -> Option<(&'static str, &'u str)> {
    names
        .iter()
        .find_map(|n| u.query_get(n).filter(|v| !v.is_empty()).map(|v| (*n, v)))
}

/// A boolean query parameter, as Go's `strconv.ParseBool` reads it (plus yes/no).
fn s3_bool_param(u: &Url, names: &[&'static str]) -> Result<Option<bool>, UrlProblem> {
    let Some((name, value)) = s3_query_param(u, names) else {
        return Ok(None);
    };
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "t" | "yes" => Ok(Some(true)),
        "false" | "0" | "f" | "no" => Ok(Some(false)),
        _ => Err(UrlProblem::new(
            format!("query parameter {name}={value:?} is not a boolean"),
            format!("write {name}=true or {name}=false"),
        )),
    }
}

/// A whole-number query parameter; `bytes` also accepts sizes such as `5MiB`.
fn s3_int_param(u: &Url, names: &[&'static str], bytes: bool) -> Result<Option<u64>, UrlProblem> {
    let Some((name, value)) = s3_query_param(u, names) else {
        return Ok(None);
    };
    let parsed = if bytes {
        super::duration::parse_byte_size(value).ok()
    } else {
        value.parse().ok()
    };
    parsed.map(Some).ok_or_else(|| {
        UrlProblem::new(
            format!("query parameter {name}={value:?} is not a whole number"),
            format!("write {name}= followed by digits"),
        )
    })
}

/// Applies the URL's query parameters (endpoint, region, flags, sizes).
fn apply_s3_query(u: &Url, out: &mut S3Url) -> Result<(), UrlProblem> {
    if let Some((_, endpoint)) = s3_query_param(u, &["endpoint"]) {
        out.endpoint = Some(url::ensure_endpoint_scheme(endpoint));
        // Custom endpoints default to path-style unless forcePathStyle=false.
        out.force_path_style = true;
    }
    if let Some((_, region)) = s3_query_param(u, &["region"]) {
        out.region = Some(region.to_owned());
    }
    if let Some(v) = s3_bool_param(u, &["forcePathStyle"])? {
        out.force_path_style = v;
    }
    out.skip_verify = s3_bool_param(u, &["skipVerify"])?;
    out.sign_payload = s3_bool_param(u, &["signPayload", "sign-payload"])?;
    out.require_content_md5 = s3_bool_param(u, &["requireContentMD5", "require-content-md5"])?;
    out.storage_class =
        s3_query_param(u, &["storageClass", "storage-class"]).map(|(_, v)| v.to_owned());
    out.part_size = s3_int_param(u, &["partSize", "part-size"], true)?;
    out.concurrency = s3_int_param(u, &["concurrency"], false)?;
    Ok(())
}

/// Warns about query parameters Litestream does not know (with a "did you mean").
fn warn_unknown_s3_query(u: &Url, key: &str, warnings: &mut Vec<String>) {
    for (name, _) in &u.query {
        if !S3_QUERY_KEYS.contains(&name.as_str()) {
            let hint = keys::suggest(name, S3_QUERY_KEYS)
                .map(|s| format!(" (did you mean {s}?)"))
                .unwrap_or_default();
            warnings.push(format!(
                "{key}.url: unknown query parameter {name:?}, ignored{hint}"
            ));
        }
    }
}

fn build_s3(
    local: &RawReplica,
    eff: &RawReplica,
    url: Option<&str>,
    key: &str,
    env: Env,
    warnings: &mut Vec<String>,
) -> Result<S3ReplicaConfig, ConfigError> {
    check_s3_url_conflicts(local, url, key)?;
    let mut s = S3Settings::from_config(local, eff);
    if let Some(u) = url {
        let parsed = url::parse(u).map_err(|p| url_error(key, p))?;
        let from_url = parse_s3_url(&parsed, warnings, key).map_err(|p| url_error(key, p))?;
        s.merge_url(from_url);
    }
    let bucket = s.bucket.take().ok_or_else(|| {
        ConfigError::invalid(
            key,
            "s3 replica has no bucket",
            "set bucket: NAME (and path: PREFIX), or url: s3://BUCKET/PREFIX",
        )
    })?;
    let provider = Provider::of(s.endpoint.as_deref());
    s.apply_provider_quirks(provider, eff);
    let part_size = s3_part_size(eff.part_size.map(|b| b.0).or(s.part_size), key)?;
    let concurrency = s3_concurrency(eff.concurrency.or(s.concurrency), provider);
    let sse = SseCustomer::from_config(eff, key, env, warnings)?;
    let credentials = resolve_s3_credentials(
        non_empty(&eff.access_key_id),
        non_empty(&eff.secret_access_key),
        env,
    );
    Ok(S3ReplicaConfig {
        bucket,
        path: s.path,
        region: s.region,
        endpoint: s.endpoint.map(|e| url::strip_userinfo(&e)),
        access_key_id: credentials.access_key_id,
        secret_access_key: credentials.secret_access_key,
        session_token: credentials.session_token,
        force_path_style: s.force_path_style,
        skip_verify: s.skip_verify,
        sign_payload: s.sign_payload.unwrap_or(true),
        require_content_md5: s.require_content_md5.unwrap_or(true),
        part_size,
        concurrency,
        storage_class: s.storage_class,
        sse_customer_algorithm: sse.algorithm,
        sse_customer_key: sse.key.map(Sensitive::new),
        sse_customer_key_path: sse.key_path,
        sse_kms_key_id: non_empty(&eff.sse_kms_key_id),
    })
}

/// A URL names the bucket and prefix, so `path:` and `bucket:` cannot be set beside it.
fn check_s3_url_conflicts(
    local: &RawReplica,
    url: Option<&str>,
    key: &str,
) -> Result<(), ConfigError> {
    if url.is_some() && non_empty(&local.path).is_some() {
        return Err(ConfigError::invalid(
            key,
            "cannot specify url & path for s3 replica",
            "put the prefix in the URL (url: s3://bucket/prefix), or drop url: and use \
             bucket: + path:",
        ));
    }
    if url.is_some() && non_empty(&local.bucket).is_some() {
        return Err(ConfigError::invalid(
            key,
            "cannot specify url & bucket for s3 replica",
            "put the bucket in the URL (url: s3://bucket/prefix), or drop url: and use \
             bucket: + path:",
        ));
    }
    Ok(())
}

/// The S3 settings from the config keys and the URL, before provider quirks and
/// defaults.
struct S3Settings {
    bucket: Option<String>,
    path: String,
    region: Option<String>,
    endpoint: Option<String>,
    skip_verify: bool,
    sign_payload: Option<bool>,
    require_content_md5: Option<bool>,
    storage_class: Option<String>,
    force_path_style: bool,
    /// From the URL only; the `part-size` key wins over it.
    part_size: Option<u64>,
    /// From the URL only; the `concurrency` key wins over it.
    concurrency: Option<u64>,
}

impl S3Settings {
    fn from_config(local: &RawReplica, eff: &RawReplica) -> Self {
        let endpoint = non_empty(&eff.endpoint).map(|e| url::ensure_endpoint_scheme(&e));
        S3Settings {
            bucket: non_empty(&eff.bucket),
            path: non_empty(&local.path).unwrap_or_default(),
            region: non_empty(&eff.region),
            skip_verify: eff.skip_verify.unwrap_or(false),
            sign_payload: eff.sign_payload,
            require_content_md5: eff.require_content_md5,
            storage_class: non_empty(&eff.storage_class),
            force_path_style: eff.force_path_style.unwrap_or(endpoint.is_some()),
            endpoint,
            part_size: None,
            concurrency: None,
        }
    }

    /// The URL names the bucket and prefix; other settings in the config win.
    fn merge_url(&mut self, from_url: S3Url) {
        self.bucket = from_url.bucket;
        self.path = from_url.path;
        self.region = self.region.take().or(from_url.region);
        self.endpoint = self.endpoint.take().or(from_url.endpoint);
        self.storage_class = self.storage_class.take().or(from_url.storage_class);
        if !self.force_path_style {
            self.force_path_style = from_url.force_path_style;
        }
        if let Some(v) = from_url.skip_verify {
            self.skip_verify = v;
        }
        self.sign_payload = self.sign_payload.or(from_url.sign_payload);
        self.require_content_md5 = self.require_content_md5.or(from_url.require_content_md5);
        self.part_size = from_url.part_size;
        self.concurrency = from_url.concurrency;
    }

    /// Provider quirks, as Litestream applies them: Tigris does not want Content-MD5,
    /// and Filebase, B2, MinIO and Supabase want path-style unless told otherwise.
    fn apply_provider_quirks(&mut self, p: Provider, eff: &RawReplica) {
        if p.tigris && self.require_content_md5.is_none() {
            self.require_content_md5 = Some(false);
        }
        if eff.force_path_style.is_none() && (p.filebase || p.b2 || p.minio || p.supabase) {
            self.force_path_style = true;
        }
    }
}

/// The S3-compatible provider an endpoint belongs to, as Litestream recognises them.
#[derive(Clone, Copy)]
struct Provider {
    tigris: bool,
    r2: bool,
    b2: bool,
    filebase: bool,
    supabase: bool,
    /// A `host:port` endpoint that is none of the known clouds.
    minio: bool,
}

impl Provider {
    fn of(endpoint: Option<&str>) -> Self {
        let host = endpoint.map(url::endpoint_host).unwrap_or_default();
        let known_cloud = [
            ".amazonaws.com",
            ".digitaloceanspaces.com",
            ".backblazeb2.com",
            ".filebase.com",
            ".scw.cloud",
            ".r2.cloudflarestorage.com",
            "tigris.dev",
            "t3.storage.dev",
        ];
        Provider {
            tigris: host == "fly.storage.tigris.dev" || host == "t3.storage.dev",
            r2: host.ends_with(".r2.cloudflarestorage.com"),
            b2: host.ends_with(".backblazeb2.com"),
            filebase: host == "s3.filebase.com",
            supabase: host.ends_with(".supabase.co") || host.contains(".supabase."),
            minio: host.contains(':') && !known_cloud.iter().any(|c| host.contains(c)),
        }
    }
}

/// The multipart part size: the default for none or 0, else within S3's limits.
fn s3_part_size(raw: Option<u64>, key: &str) -> Result<u64, ConfigError> {
    let part_size_key = format!("{key}.part-size");
    match raw {
        None | Some(0) => Ok(DEFAULT_S3_PART_SIZE),
        Some(n) if n < MIN_PART_SIZE => Err(ConfigError::invalid(
            part_size_key,
            format!("{n} bytes is below S3's minimum part size of 5 MiB"),
            "use at least 5MiB (5242880), or remove the key for the default",
        )),
        Some(n) if n > MAX_PART_SIZE => Err(ConfigError::invalid(
            part_size_key,
            format!("{n} bytes is above S3's maximum part size of 5 GiB"),
            "use at most 5GiB, or remove the key for the default (5MiB)",
        )),
        Some(n) => Ok(n),
    }
}

/// Parallel part uploads: the default for none or 0 (lower for R2, which throttles).
fn s3_concurrency(raw: Option<u64>, provider: Provider) -> usize {
    let default_concurrency = if provider.r2 {
        R2_CONCURRENCY
    } else {
        DEFAULT_S3_CONCURRENCY
    };
    match raw {
        None | Some(0) => default_concurrency,
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
    }
}

/// SSE-C settings: the algorithm defaults to AES256 when a key is set, and is ignored
/// (with a warning) without one.
struct SseCustomer {
    algorithm: Option<String>,
    key: Option<String>,
    key_path: Option<PathBuf>,
}

impl SseCustomer {
    fn from_config(
        eff: &RawReplica,
        key: &str,
        env: Env,
        warnings: &mut Vec<String>,
    ) -> Result<Self, ConfigError> {
        let sse_key = non_empty(&eff.sse_customer_key);
        let key_path = match non_empty(&eff.sse_customer_key_path) {
            Some(p) => Some(resolve_path(
                &p,
                &format!("{key}.sse-customer-key-path"),
                env,
                None,
            )?),
            None => None,
        };
        let algorithm = if sse_key.is_some() || key_path.is_some() {
            Some(non_empty(&eff.sse_customer_algorithm).unwrap_or_else(|| "AES256".to_owned()))
        } else {
            if non_empty(&eff.sse_customer_algorithm).is_some() {
                warnings.push(format!(
                    "{key}.sse-customer-algorithm: has no effect without sse-customer-key or \
                     sse-customer-key-path; ignored"
                ));
            }
            None
        };
        Ok(SseCustomer {
            algorithm,
            key: sse_key,
            key_path,
        })
    }
}

/// Static S3 credentials as a replica uses them; all `None` leaves them to the
/// standard AWS chain (profiles, web identity, instance roles).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Credentials {
    /// The access key id.
    pub access_key_id: Option<Sensitive<String>>,
    /// The secret key.
    pub secret_access_key: Option<Sensitive<String>>,
    /// The session token of temporary keys.
    pub session_token: Option<Sensitive<String>>,
}

/// Where each key comes from, as Litestream finds them: the config's
/// `access-key-id` / `secret-access-key`, else `AWS_ACCESS_KEY_ID` /
/// `AWS_SECRET_ACCESS_KEY`, else `LITESTREAM_ACCESS_KEY_ID` /
/// `LITESTREAM_SECRET_ACCESS_KEY`. `AWS_SESSION_TOKEN` goes only with keys that both
/// came from the `AWS_*` variables, never with keys from the config (or `LITESTREAM_*`):
/// a token of other, temporary keys would make every request fail.
pub fn resolve_s3_credentials(
    config_id: Option<String>,
    config_secret: Option<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> S3Credentials {
    let get = |n: &str| env(n).filter(|v| !v.is_empty());
    let aws_id = get("AWS_ACCESS_KEY_ID");
    let aws_secret = get("AWS_SECRET_ACCESS_KEY");
    let both_from_aws =
        config_id.is_none() && config_secret.is_none() && aws_id.is_some() && aws_secret.is_some();
    let session_token = if both_from_aws {
        get("AWS_SESSION_TOKEN").map(Sensitive::new)
    } else {
        None
    };
    S3Credentials {
        access_key_id: config_id
            .or(aws_id)
            .or_else(|| get("LITESTREAM_ACCESS_KEY_ID"))
            .map(Sensitive::new),
        secret_access_key: config_secret
            .or(aws_secret)
            .or_else(|| get("LITESTREAM_SECRET_ACCESS_KEY"))
            .map(Sensitive::new),
        session_token,
    }
}

#[cfg(test)]
mod credential_tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    fn shown(c: &S3Credentials) -> (Option<&str>, Option<&str>, Option<&str>) {
        (
            c.access_key_id.as_ref().map(|s| s.expose().as_str()),
            c.secret_access_key.as_ref().map(|s| s.expose().as_str()),
            c.session_token.as_ref().map(|s| s.expose().as_str()),
        )
    }

    const AWS: &[(&str, &str)] = &[
        ("AWS_ACCESS_KEY_ID", "ASIAENV"),
        ("AWS_SECRET_ACCESS_KEY", "env-secret"),
        ("AWS_SESSION_TOKEN", "env-token"),
        ("LITESTREAM_ACCESS_KEY_ID", "LSKEY"),
        ("LITESTREAM_SECRET_ACCESS_KEY", "ls-secret"),
    ];

    #[test]
    fn keys_from_the_config_never_take_the_environment_token() {
        let c = resolve_s3_credentials(Some("AKCFG".into()), Some("cfg-secret".into()), &env(AWS));
        assert_eq!(shown(&c), (Some("AKCFG"), Some("cfg-secret"), None));
        // Half from the config is still not the token's key pair.
        let c = resolve_s3_credentials(Some("AKCFG".into()), None, &env(AWS));
        assert_eq!(shown(&c), (Some("AKCFG"), Some("env-secret"), None));
    }

    #[test]
    fn keys_from_aws_variables_keep_their_token() {
        let c = resolve_s3_credentials(None, None, &env(AWS));
        assert_eq!(
            shown(&c),
            (Some("ASIAENV"), Some("env-secret"), Some("env-token"))
        );
    }

    #[test]
    fn litestream_variables_have_no_token() {
        const LS: &[(&str, &str)] = &[
            ("AWS_SESSION_TOKEN", "env-token"),
            ("LITESTREAM_ACCESS_KEY_ID", "LSKEY"),
            ("LITESTREAM_SECRET_ACCESS_KEY", "ls-secret"),
        ];
        let c = resolve_s3_credentials(None, None, &env(LS));
        assert_eq!(shown(&c), (Some("LSKEY"), Some("ls-secret"), None));
        let c = resolve_s3_credentials(None, None, &env(&[]));
        assert_eq!(shown(&c), (None, None, None));
    }
}
