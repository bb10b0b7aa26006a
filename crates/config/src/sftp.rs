//! SFTP replicas (`type: sftp`, `sftp://user[:password]@host[:port]/path`): the keys and
//! URL form of Litestream 0.5's `sftp` client.

use std::path::{Path, PathBuf};

use super::error::ConfigError;
use super::raw::{RawReplica, non_empty};
use super::replica::{UrlParts, pick, refuse_beside_url};
use super::{Env, Sensitive, resolve_path, url};

/// SFTP's port when `host` names none.
pub const DEFAULT_SFTP_PORT: u16 = 22;

/// An SFTP replica: files under `path` on the server, in Litestream's layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SftpReplicaConfig {
    /// `host` or `host:port` (port 22 when absent).
    pub host: String,
    /// The user to log in as (`user`, or the URL's user).
    pub user: String,
    /// `password` (or the URL's password), for password authentication.
    pub password: Option<Sensitive<String>>,
    /// The replica's folder on the server: absolute, or relative to the user's login
    /// folder; empty for the login folder itself.
    pub path: String,
    /// `key-path`: a private key file for public-key authentication, `~` expanded.
    pub key_path: Option<PathBuf>,
    /// `host-key`: the server's public key as an `authorized_keys` line
    /// (`ssh-ed25519 AAAA…`). When absent, the key must be in `~/.ssh/known_hosts`;
    /// Tideline never accepts an unknown host key (Litestream accepts any, with a
    /// warning).
    pub host_key: Option<String>,
    /// `concurrent-writes` (default true): several write requests of one file in
    /// flight, as Litestream's client sends them.
    pub concurrent_writes: bool,
}

impl SftpReplicaConfig {
    /// The host name and port to connect to.
    pub fn host_and_port(&self) -> (String, u16) {
        split_host_port(&self.host)
    }

    /// The folder of level `level` on the server (`<path>/ltx/<level>`), as Go's
    /// `path.Join` writes it.
    pub fn level_dir(&self, level: u8) -> String {
        join_path(&self.path, &format!("ltx/{level}"))
    }
}

/// `host[:port]` (or `[v6]:port`) into its parts, port 22 when absent.
pub(crate) fn split_host_port(host: &str) -> (String, u16) {
    if let Some(rest) = host.strip_prefix('[')
        && let Some((h, after)) = rest.split_once(']')
    {
        let port = after
            .strip_prefix(':')
            .and_then(|p| p.parse().ok())
            .unwrap_or(DEFAULT_SFTP_PORT);
        return (h.to_owned(), port);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => match p.parse() {
            Ok(port) => (h.to_owned(), port),
            Err(_) => (host.to_owned(), DEFAULT_SFTP_PORT),
        },
        _ => (host.to_owned(), DEFAULT_SFTP_PORT),
    }
}

/// `path.Join(base, rest)`: joined with `/` and cleaned; relative stays relative.
pub(crate) fn join_path(base: &str, rest: &str) -> String {
    let joined = if base.is_empty() {
        rest.to_owned()
    } else {
        format!("{base}/{rest}")
    };
    url::clean_path(&joined)
}

pub(crate) fn build_sftp(
    local: &RawReplica,
    eff: &RawReplica,
    url: Option<&str>,
    key: &str,
    env: Env,
    cwd: Option<&Path>,
) -> Result<SftpReplicaConfig, ConfigError> {
    refuse_beside_url(
        url,
        &local.path,
        key,
        "cannot specify url & path for sftp replica",
        "put the folder in the URL (url: sftp://user@host/path), or drop url: and use \
         host: + user: + path:",
    )?;
    refuse_beside_url(
        url,
        &local.host,
        key,
        "cannot specify url & host for sftp replica",
        "put the host in the URL (url: sftp://user@host:port/path), or drop url: and use \
         host: + user: + path:",
    )?;
    let u = UrlParts::of(url, key)?;
    let host = pick(&local.host, &u.host, &eff.host);
    let user = pick(&local.user, &u.user, &eff.user);
    let password = pick(&local.password, &u.password, &eff.password);
    let path = pick(&local.path, &u.path, &eff.path);
    let host = host.ok_or_else(|| {
        ConfigError::invalid(
            key,
            "host required for sftp replica",
            "set host: NAME[:PORT], or url: sftp://user@host[:port]/path",
        )
    })?;
    let user = user.ok_or_else(|| {
        ConfigError::invalid(
            key,
            "user required for sftp replica",
            "set user: NAME, or put it in the URL: sftp://user@host/path",
        )
    })?;
    let key_path = match non_empty(&eff.key_path) {
        Some(p) => Some(resolve_path(&p, &format!("{key}.key-path"), env, cwd)?),
        None => None,
    };
    let host_key = non_empty(&eff.host_key)
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty());
    if let Some(k) = &host_key {
        check_host_key(k, key)?;
    }
    Ok(SftpReplicaConfig {
        host,
        user,
        password: password.map(Sensitive::new),
        path: path.map_or_else(String::new, |p| {
            let p = url::clean_path(&p);
            if p == "." { String::new() } else { p }
        }),
        key_path,
        host_key,
        concurrent_writes: eff.concurrent_writes.unwrap_or(true),
    })
}

/// A `host-key` must look like an `authorized_keys` line: `TYPE BASE64 [comment]`.
fn check_host_key(k: &str, key: &str) -> Result<(), ConfigError> {
    let mut parts = k.split_whitespace();
    let (Some(kind), Some(blob)) = (parts.next(), parts.next()) else {
        return Err(ConfigError::invalid(
            format!("{key}.host-key"),
            "host-key is not a public key line",
            "give the server's key as `ssh-keyscan HOST` prints it without the host name, \
             e.g. host-key: ssh-ed25519 AAAAC3…",
        ));
    };
    let plausible_kind = kind.starts_with("ssh-") || kind.starts_with("ecdsa-");
    let plausible_blob = blob.len() > 16
        && blob
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    if !plausible_kind || !plausible_blob {
        return Err(ConfigError::invalid(
            format!("{key}.host-key"),
            format!("host-key {kind:?} … is not a public key line"),
            "give the server's key as `ssh-keyscan HOST` prints it without the host name, \
             e.g. host-key: ssh-ed25519 AAAAC3…",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port() {
        assert_eq!(split_host_port("nas"), ("nas".into(), 22));
        assert_eq!(split_host_port("nas:2222"), ("nas".into(), 2222));
        assert_eq!(split_host_port("[::1]:2022"), ("::1".into(), 2022));
        assert_eq!(split_host_port("[::1]"), ("::1".into(), 22));
        assert_eq!(split_host_port("::1"), ("::1".into(), 22));
    }

    #[test]
    fn level_dirs_join_as_go_does() {
        assert_eq!(join_path("", "ltx/0"), "ltx/0");
        assert_eq!(join_path("/backups/db/", "ltx/9"), "/backups/db/ltx/9");
        assert_eq!(join_path("backups", "ltx/1"), "backups/ltx/1");
    }
}
