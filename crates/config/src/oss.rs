//! Alibaba Cloud OSS replicas (`type: oss`, `oss://bucket[.oss-REGION.aliyuncs.com]/path`):
//! the keys and URL form of Litestream 0.5's `oss` client (Alibaba's OSS Go SDK v2).
//!
//! Keys: `bucket`, `path`, `region` (default `cn-hangzhou`), `endpoint` (default
//! `https://oss-<region>.aliyuncs.com`; a bare host gets `https://`), `access-key-id`
//! and `secret-access-key`. As in Litestream, the keys are used only when both are set;
//! otherwise the environment's `OSS_ACCESS_KEY_ID` / `OSS_ACCESS_KEY_SECRET` are (the
//! SDK's environment provider). A URL host `bucket.oss-REGION[-internal].aliyuncs.com`
//! gives the bucket and the region.

use super::error::ConfigError;
use super::raw::{RawReplica, non_empty};
use super::replica::url_error;
use super::{Env, Sensitive, url};

/// The region Litestream's OSS client uses when none is given.
pub const DEFAULT_OSS_REGION: &str = "cn-hangzhou";

/// An OSS replica: objects `<path>/<level %04x>/<min>-<max>.ltx` in `bucket`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OssReplicaConfig {
    /// The bucket (`bucket`, or the URL's host).
    pub bucket: String,
    /// The key prefix, without leading or trailing slashes; empty for the bucket root.
    pub path: String,
    /// `region` (or from the URL's host), else `cn-hangzhou`: it names the default
    /// endpoint and is part of every request's signature scope.
    pub region: String,
    /// `endpoint`, always with a scheme and without a trailing slash; `None` for
    /// `https://oss-<region>.aliyuncs.com`.
    pub endpoint: Option<String>,
    /// `access-key-id` (with `secret-access-key`), else `OSS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `secret-access-key` (with `access-key-id`), else `OSS_ACCESS_KEY_SECRET`.
    pub access_key_secret: Sensitive<String>,
}

impl OssReplicaConfig {
    /// The service URL requests go to, without a trailing slash.
    pub fn endpoint_url(&self) -> String {
        match &self.endpoint {
            Some(e) => e.clone(),
            None => format!("https://oss-{}.aliyuncs.com", self.region),
        }
    }

    /// The key prefix of level `level`: `<path>/<level %04x>`, as Litestream's
    /// `ltxPath` writes it (a leading `/` when the path is empty, as there).
    pub fn level_dir(&self, level: u8) -> String {
        format!("{}/{level:04x}", self.path)
    }
}

pub(crate) fn build_oss(
    local: &RawReplica,
    eff: &RawReplica,
    url: Option<&str>,
    key: &str,
    env: Env,
) -> Result<OssReplicaConfig, ConfigError> {
    for (given, what) in [(&local.path, "path"), (&local.bucket, "bucket")] {
        if url.is_some() && non_empty(given).is_some() {
            return Err(ConfigError::invalid(
                key,
                format!("cannot specify url & {what} for oss replica"),
                "put the bucket and path in the URL (url: oss://bucket/path), or drop url: \
                 and use bucket: + path:",
            ));
        }
    }
    let mut bucket = non_empty(&eff.bucket);
    let mut path = non_empty(&eff.path);
    let mut region = non_empty(&eff.region);
    if let Some(u) = url {
        let parsed = url::parse(u).map_err(|p| url_error(key, p))?;
        let (host_bucket, host_region) = parse_oss_host(&parsed.host);
        bucket = bucket.or(Some(host_bucket).filter(|h| !h.is_empty()));
        region = region.or(host_region);
        path = path.or(Some(parsed.path).filter(|p| !p.is_empty()));
    }
    let bucket = bucket.ok_or_else(|| {
        ConfigError::invalid(
            key,
            "bucket required for oss replica",
            "set bucket: BUCKET (and path:), or url: oss://bucket/path",
        )
    })?;
    let endpoint = non_empty(&eff.endpoint).map(|e| with_scheme(&e));
    let (access_key_id, access_key_secret) = credentials(eff, key, env)?;
    let path = path
        .map(|p| url::clean_path(&p).trim_matches('/').to_owned())
        .filter(|p| p != ".")
        .unwrap_or_default();
    Ok(OssReplicaConfig {
        bucket,
        path,
        region: region.unwrap_or_else(|| DEFAULT_OSS_REGION.to_owned()),
        endpoint,
        access_key_id,
        access_key_secret: Sensitive::new(access_key_secret),
    })
}

/// Litestream's `ParseHost`: `bucket.oss-REGION-internal.aliyuncs.com`,
/// `bucket.oss-REGION.aliyuncs.com`, or a bare bucket name.
pub(crate) fn parse_oss_host(host: &str) -> (String, Option<String>) {
    let Some(rest) = host.strip_suffix(".aliyuncs.com") else {
        return (host.to_owned(), None);
    };
    let (bucket, service) = match rest.split_once('.') {
        Some((b, s)) => (b, s),
        None => ("", rest),
    };
    match service.strip_prefix("oss-") {
        Some(region) if !region.is_empty() && !region.contains('.') => {
            let region = region.strip_suffix("-internal").unwrap_or(region);
            (bucket.to_owned(), Some(region.to_owned()))
        }
        _ => (host.to_owned(), None),
    }
}

/// An endpoint with `https://` added when it has no scheme (as Litestream does), and
/// without a trailing slash.
fn with_scheme(e: &str) -> String {
    let lower = e.to_ascii_lowercase();
    let e = url::strip_userinfo(e);
    let e = e.trim_end_matches('/');
    if lower.starts_with("http://") || lower.starts_with("https://") {
        e.to_owned()
    } else {
        format!("https://{e}")
    }
}

/// The key pair: both config keys, else both environment variables.
fn credentials(eff: &RawReplica, key: &str, env: Env) -> Result<(String, String), ConfigError> {
    let get = |n: &str| env(n).filter(|v| !v.is_empty());
    let pair = match (
        non_empty(&eff.access_key_id),
        non_empty(&eff.secret_access_key),
    ) {
        (Some(id), Some(secret)) => Some((id, secret)),
        _ => get("OSS_ACCESS_KEY_ID").zip(get("OSS_ACCESS_KEY_SECRET")),
    };
    pair.ok_or_else(|| {
        ConfigError::invalid(
            key,
            "no credentials for oss replica",
            "set access-key-id: + secret-access-key:, or the environment variables \
             OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_name_bucket_and_region_as_litestream_parses_them() {
        let h = |s: &str| parse_oss_host(s);
        assert_eq!(h("mybucket"), ("mybucket".into(), None));
        assert_eq!(
            h("mybucket.oss-cn-shanghai.aliyuncs.com"),
            ("mybucket".into(), Some("cn-shanghai".into()))
        );
        assert_eq!(
            h("mybucket.oss-cn-beijing-internal.aliyuncs.com"),
            ("mybucket".into(), Some("cn-beijing".into()))
        );
        assert_eq!(
            h("oss-us-west-1.aliyuncs.com"),
            (String::new(), Some("us-west-1".into()))
        );
    }

    #[test]
    fn endpoints_get_https_when_they_have_no_scheme() {
        assert_eq!(
            with_scheme("oss-cn-hangzhou.aliyuncs.com"),
            "https://oss-cn-hangzhou.aliyuncs.com"
        );
        assert_eq!(
            with_scheme("http://127.0.0.1:9000/"),
            "http://127.0.0.1:9000"
        );
    }
}
