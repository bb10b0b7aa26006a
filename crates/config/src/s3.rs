//! S3 replicas: the `s3://` URL and its query parameters, the S3 settings of a config
//! section, provider quirks (R2, B2, Tigris, …), SSE-C keys and credentials.

use std::path::PathBuf;

use super::error::{ConfigError, UrlProblem};
use super::raw::{RawReplica, non_empty};
use super::replica::*;
use super::url::{self, Url};
use super::*;

/// Query parameters of S3 URLs, as Litestream names them.
pub(crate) const S3_QUERY_KEYS: &[&str] = &[
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
pub(crate) struct S3Url {
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

pub(crate) fn parse_s3_url(
    u: &Url,
    warnings: &mut Vec<String>,
    key: &str,
) -> Result<S3Url, UrlProblem> {
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
pub(crate) fn s3_access_point_url(u: &Url) -> Result<S3Url, UrlProblem> {
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
pub(crate) fn s3_bucket_url(u: &Url) -> S3Url {
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
pub(crate) fn s3_query_param<'u>(
    u: &'u Url,
    names: &[&'static str],
) -> Option<(&'static str, &'u str)> {
    names
        .iter()
        .find_map(|n| u.query_get(n).filter(|v| !v.is_empty()).map(|v| (*n, v)))
}

/// A boolean query parameter, as Go's `strconv.ParseBool` reads it (plus yes/no).
pub(crate) fn s3_bool_param(u: &Url, names: &[&'static str]) -> Result<Option<bool>, UrlProblem> {
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
pub(crate) fn s3_int_param(
    u: &Url,
    names: &[&'static str],
    bytes: bool,
) -> Result<Option<u64>, UrlProblem> {
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
pub(crate) fn apply_s3_query(u: &Url, out: &mut S3Url) -> Result<(), UrlProblem> {
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
pub(crate) fn warn_unknown_s3_query(u: &Url, key: &str, warnings: &mut Vec<String>) {
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

pub(crate) fn build_s3(
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
pub(crate) fn check_s3_url_conflicts(
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
pub(crate) struct S3Settings {
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
pub(crate) struct Provider {
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
pub(crate) fn s3_part_size(raw: Option<u64>, key: &str) -> Result<u64, ConfigError> {
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
pub(crate) fn s3_concurrency(raw: Option<u64>, provider: Provider) -> usize {
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
pub(crate) struct SseCustomer {
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
