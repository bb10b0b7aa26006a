//! Azure Blob Storage replicas (`type: abs`, `abs://[account@]container/path`): the keys
//! and URL form of Litestream 0.5's `abs` client.
//!
//! Credentials are found as Litestream finds them: `sas-token`, else
//! `LITESTREAM_AZURE_SAS_TOKEN`; `account-key`, else `LITESTREAM_AZURE_ACCOUNT_KEY`. A SAS
//! token wins over an account key. Litestream falls back to Azure's default credential
//! chain (managed identity, the Azure CLI…) when neither is set; Tideline has no such
//! chain, so that is a config error naming the keys to set.

use super::error::ConfigError;
use super::raw::{RawReplica, non_empty};
use super::replica::url_error;
use super::{Env, Sensitive, url};

/// An Azure Blob Storage replica: blobs `<path>/ltx/<level>/<min>-<max>.ltx` in
/// container `bucket`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbsReplicaConfig {
    /// `account-name` (or the URL's user): the storage account, which names the
    /// default endpoint and signs Shared Key requests.
    pub account_name: Option<String>,
    /// `account-key`, else `LITESTREAM_AZURE_ACCOUNT_KEY`: the account's base64 key,
    /// for Shared Key authentication.
    pub account_key: Option<Sensitive<String>>,
    /// `sas-token`, else `LITESTREAM_AZURE_SAS_TOKEN`, without a leading `?`: appended to
    /// every request's query instead of signing it. Wins over `account_key`.
    pub sas_token: Option<Sensitive<String>>,
    /// The container (`bucket`, or the URL's host).
    pub bucket: String,
    /// The blob name prefix, `/`-separated, without leading or trailing slashes; empty
    /// for the container's root.
    pub path: String,
    /// `endpoint`, without a trailing slash (Azurite:
    /// `http://127.0.0.1:10000/devstoreaccount1`); `None` for
    /// `https://<account>.blob.core.windows.net`.
    pub endpoint: Option<String>,
}

impl AbsReplicaConfig {
    /// The account's blob service URL, without a trailing slash.
    pub fn endpoint_url(&self) -> String {
        match &self.endpoint {
            Some(e) => e.clone(),
            None => format!(
                "https://{}.blob.core.windows.net",
                self.account_name.as_deref().unwrap_or_default()
            ),
        }
    }

    /// The blob name prefix of level `level`: `<path>/ltx/<level>`, as Litestream's
    /// `LTXLevelDir` writes it.
    pub fn level_dir(&self, level: u8) -> String {
        if self.path.is_empty() {
            format!("ltx/{level}")
        } else {
            format!("{}/ltx/{level}", self.path)
        }
    }
}

pub(crate) fn build_abs(
    local: &RawReplica,
    eff: &RawReplica,
    url: Option<&str>,
    key: &str,
    env: Env,
) -> Result<AbsReplicaConfig, ConfigError> {
    if url.is_some() && non_empty(&local.path).is_some() {
        return Err(ConfigError::invalid(
            key,
            "cannot specify url & path for abs replica",
            "put the path in the URL (url: abs://account@container/path), or drop url: and \
             use bucket: + path:",
        ));
    }
    if url.is_some() && non_empty(&local.bucket).is_some() {
        return Err(ConfigError::invalid(
            key,
            "cannot specify url & bucket for abs replica",
            "put the container in the URL (url: abs://account@container/path), or drop url: \
             and use bucket: + path:",
        ));
    }
    let mut account_name = non_empty(&eff.account_name);
    let mut bucket = non_empty(&eff.bucket);
    let mut path = non_empty(&eff.path);
    if let Some(u) = url {
        let parsed = url::parse(u).map_err(|p| url_error(key, p))?;
        account_name = account_name.or(parsed.user.filter(|u| !u.is_empty()));
        bucket = bucket.or(Some(parsed.host).filter(|h| !h.is_empty()));
        path = path.or(Some(parsed.path).filter(|p| !p.is_empty()));
    }
    let bucket = bucket.ok_or_else(|| {
        ConfigError::invalid(
            key,
            "bucket required for abs replica",
            "set bucket: CONTAINER (and path:), or url: abs://account@container/path",
        )
    })?;
    if !valid_container(&bucket) {
        let at = if non_empty(&eff.bucket).is_some() {
            format!("{key}.bucket")
        } else {
            format!("{key}.url")
        };
        return Err(ConfigError::invalid(
            at,
            format!("{bucket:?} is not a valid Azure Blob Storage container name"),
            "a container name is 3 to 63 lowercase letters, digits and single hyphens, \
             starting and ending with a letter or digit (or $root, $web, $logs)",
        ));
    }
    let endpoint = match non_empty(&eff.endpoint) {
        Some(e) => Some(check_endpoint(&e, key)?),
        None => None,
    };
    if endpoint.is_none() && account_name.is_none() {
        return Err(ConfigError::invalid(
            key,
            "account name is required when endpoint is not specified",
            "set account-name: ACCOUNT (or url: abs://account@container/path), or endpoint: \
             for an emulator such as Azurite",
        ));
    }
    let (account_key, sas_token) = credentials(eff, account_name.is_some(), key, env)?;
    let path = path
        .map(|p| url::clean_path(&p).trim_matches('/').to_owned())
        .filter(|p| p != ".")
        .unwrap_or_default();
    Ok(AbsReplicaConfig {
        account_name,
        account_key: account_key.map(Sensitive::new),
        sas_token: sas_token.map(Sensitive::new),
        bucket,
        path,
        endpoint,
    })
}

/// The account key and the SAS token, from the config or else the environment; at
/// least one must be usable (a key needs the account name).
fn credentials(
    eff: &RawReplica,
    has_account: bool,
    key: &str,
    env: Env,
) -> Result<(Option<String>, Option<String>), ConfigError> {
    let get = |n: &str| env(n).filter(|v| !v.is_empty());
    let sas_token = non_empty(&eff.sas_token)
        .or_else(|| get("LITESTREAM_AZURE_SAS_TOKEN"))
        .map(|t| t.trim_start_matches('?').to_owned())
        .filter(|t| !t.is_empty());
    let account_key = non_empty(&eff.account_key).or_else(|| get("LITESTREAM_AZURE_ACCOUNT_KEY"));
    if sas_token.is_none() && (account_key.is_none() || !has_account) {
        let problem = if account_key.is_some() {
            "account-key needs account-name for abs replica"
        } else {
            "no credentials for abs replica (Tideline does not support Azure's default \
             credential chain: managed identity, Azure CLI)"
        };
        return Err(ConfigError::invalid(
            key,
            problem,
            "set account-name: + account-key: (or LITESTREAM_AZURE_ACCOUNT_KEY), or \
             sas-token: (or LITESTREAM_AZURE_SAS_TOKEN)",
        ));
    }
    Ok((account_key, sas_token))
}

/// Azure's container naming rules: Azure refuses any other name with `400
/// OutOfRangeInput` or `InvalidResourceName`, which is better said at load.
fn valid_container(name: &str) -> bool {
    if matches!(name, "$root" | "$web" | "$logs") {
        return true;
    }
    let b = name.as_bytes();
    (3..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
        && !name.contains("--")
}

/// `endpoint` as an `http(s)://` URL without credentials, query or trailing slash.
fn check_endpoint(e: &str, key: &str) -> Result<String, ConfigError> {
    let lower = e.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(ConfigError::invalid(
            format!("{key}.endpoint"),
            format!("endpoint {:?} is not an http(s) URL", url::redact(e)),
            "write it as https://ACCOUNT.blob.core.windows.net, or for Azurite \
             http://127.0.0.1:10000/devstoreaccount1",
        ));
    }
    if e.contains('?') {
        return Err(ConfigError::invalid(
            format!("{key}.endpoint"),
            "endpoint has a query part",
            "put a SAS token in sas-token:, not in the endpoint",
        ));
    }
    Ok(url::strip_userinfo(e).trim_end_matches('/').to_owned())
}
