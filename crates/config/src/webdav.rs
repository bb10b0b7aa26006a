//! WebDAV replicas (`type: webdav` with `webdav-url`, or
//! `webdav[s]://user[:password]@host[:port]/path`): the keys and URL form of
//! Litestream 0.5's `webdav` client.

use super::error::ConfigError;
use super::raw::RawReplica;
use super::replica::{UrlParts, pick, refuse_beside_url, url_error};
use super::{Sensitive, url};

/// A WebDAV replica: files under `<url>/<path>/ltx/<level>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebDavReplicaConfig {
    /// The server's base URL, `http://` or `https://` (`webdav-url`, or the scheme and
    /// host of a `webdav://` / `webdavs://` URL); without user-info or a trailing slash.
    pub url: String,
    /// The replica's folder below `url`, `/`-separated, without leading or trailing
    /// slashes; empty for `url` itself.
    pub path: String,
    /// `webdav-username` (or the URL's user), for HTTP basic authentication.
    pub username: Option<String>,
    /// `webdav-password` (or the URL's password).
    pub password: Option<Sensitive<String>>,
}

impl WebDavReplicaConfig {
    /// The folder of level `level` below `url`: `<path>/ltx/<level>`.
    pub fn level_dir(&self, level: u8) -> String {
        if self.path.is_empty() {
            format!("ltx/{level}")
        } else {
            format!("{}/ltx/{level}", self.path)
        }
    }
}

pub(crate) fn build_webdav(
    local: &RawReplica,
    eff: &RawReplica,
    url: Option<&str>,
    key: &str,
) -> Result<WebDavReplicaConfig, ConfigError> {
    refuse_beside_url(
        url,
        &local.path,
        key,
        "cannot specify url & path for webdav replica",
        "put the folder in the URL (url: webdavs://host/path), or drop url: and use \
         webdav-url: + path:",
    )?;
    refuse_beside_url(
        url,
        &local.webdav_url,
        key,
        "cannot specify url & webdav-url for webdav replica",
        "keep one of them: url: webdavs://host/path, or webdav-url: https://host + path:",
    )?;
    let u = UrlParts::of(url, key)?;
    let scheme = if u.scheme == "webdavs" {
        "https"
    } else {
        "http"
    };
    let url_base = u.host.as_ref().map(|h| format!("{scheme}://{h}"));
    let base = pick(&local.webdav_url, &url_base, &eff.webdav_url);
    let mut username = pick(&local.webdav_username, &u.user, &eff.webdav_username);
    let mut password = pick(&local.webdav_password, &u.password, &eff.webdav_password);
    let path = pick(&local.path, &u.path, &eff.path);
    let base = base.ok_or_else(|| {
        ConfigError::invalid(
            key,
            "webdav-url required for webdav replica",
            "set webdav-url: https://host[/base] (and path:), or url: webdavs://host/path",
        )
    })?;
    let lower = base.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(ConfigError::invalid(
            format!("{key}.webdav-url"),
            format!("webdav-url {:?} is not an http(s) URL", url::redact(&base)),
            "write it as https://host[:port][/base] (or http:// on a trusted network)",
        ));
    }
    let parsed = url::parse(&base).map_err(|p| url_error(key, p))?;
    if parsed.host.is_empty() {
        return Err(ConfigError::invalid(
            format!("{key}.webdav-url"),
            "webdav-url has no host",
            "write it as https://host[:port][/base]",
        ));
    }
    // Credentials in webdav-url itself are taken as Litestream's HTTP client takes them.
    username = username.or(parsed.user.filter(|u| !u.is_empty()));
    password = password.or(parsed.password.filter(|p| !p.is_empty()));
    let base = url::strip_userinfo(&base).trim_end_matches('/').to_owned();
    let path = path
        .map(|p| url::clean_path(&p).trim_matches('/').to_owned())
        .filter(|p| p != ".")
        .unwrap_or_default();
    Ok(WebDavReplicaConfig {
        url: base,
        path,
        username,
        password: password.map(Sensitive::new),
    })
}
