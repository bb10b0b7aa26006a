//! NATS JetStream object-store replicas (`type: nats`, `nats://HOST[:PORT]/BUCKET`):
//! the keys and URL form of Litestream 0.5's `nats` client.
//!
//! As in Litestream, the server is given only by the URL's host (no URL: the NATS
//! default, `127.0.0.1:4222`), the URL's path is the object-store bucket (else
//! `bucket:`), there is no path inside the bucket, and user and password in the URL are
//! dropped (with a warning here: `username:` and `password:` carry them). One way to log
//! in is used, in Litestream's order: `jwt` + `seed`, `creds`, `nkey`, `username` +
//! `password`, `token`. Where Litestream silently ignores half a credential (a `jwt`
//! without its `seed`, a `username` without a `password`), Tideline refuses it at load.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::ConfigError;
use super::raw::{RawReplica, non_empty};
use super::replica::url_error;
use super::{Env, Sensitive, resolve_path, url};

/// The key a replica URL given on the command line is built under.
const COMMAND_LINE_KEY: &str = "url";

/// The server when the URL names none (NATS's default URL).
pub const DEFAULT_NATS_SERVER: &str = "127.0.0.1:4222";
/// `reconnect-wait`'s default (Litestream's).
pub const DEFAULT_NATS_RECONNECT_WAIT: Duration = Duration::from_secs(2);
/// `timeout`'s default (Litestream's): how long connecting may take.
pub const DEFAULT_NATS_TIMEOUT: Duration = Duration::from_secs(10);

/// A NATS replica: objects `ltx/<level>/<min>-<max>.ltx` in object-store `bucket`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsReplicaConfig {
    /// `host` or `host:port` of the server (port 4222 when absent).
    pub server: String,
    /// The object-store bucket; it must exist (Litestream never creates one).
    pub bucket: String,
    /// How to log in.
    pub auth: NatsAuth,
    /// `tls`: require TLS.
    pub tls: bool,
    /// `root-cas`: the PEM file of the CAs to trust instead of the system's.
    pub root_ca: Option<PathBuf>,
    /// `client-cert` and `client-key`, for mutual TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// `max-reconnects` (default -1, unlimited): reconnection attempts before giving
    /// up; `None` for unlimited. Tideline connects again at the next request anyway.
    pub max_reconnects: Option<usize>,
    /// `reconnect-wait` (default 2s): the pause between reconnection attempts.
    pub reconnect_wait: Duration,
    /// `timeout` (default 10s): how long connecting may take.
    pub timeout: Duration,
}

/// How a NATS replica logs in (Litestream's order, first match wins).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NatsAuth {
    /// No credentials.
    None,
    /// `jwt` and `seed`: a user JWT and the nkey seed that signs the server's nonce.
    Jwt {
        /// The user JWT.
        jwt: Sensitive<String>,
        /// The user's nkey seed (`SU…`).
        seed: Sensitive<String>,
    },
    /// `creds`: a `.creds` file holding a JWT and its seed.
    Creds(PathBuf),
    /// `nkey`: a user nkey seed (`SU…`).
    Nkey(Sensitive<String>),
    /// `username` and `password`.
    UserPassword {
        /// The user.
        username: String,
        /// The password.
        password: Sensitive<String>,
    },
    /// `token`.
    Token(Sensitive<String>),
}

impl NatsAuth {
    /// The config keys that hold these credentials, for an error saying what to check.
    pub fn keys(&self) -> &'static str {
        match self {
            NatsAuth::None => {
                "the credentials (none are set: username + password, token, \
                               jwt + seed, creds or nkey)"
            }
            NatsAuth::Jwt { .. } => "jwt and seed",
            NatsAuth::Creds(_) => "creds",
            NatsAuth::Nkey(_) => "nkey",
            NatsAuth::UserPassword { .. } => "username and password",
            NatsAuth::Token(_) => "token",
        }
    }
}

pub(crate) fn build_nats(
    eff: &RawReplica,
    url: Option<&str>,
    key: &str,
    env: Env,
    cwd: Option<&Path>,
    warnings: &mut Vec<String>,
) -> Result<NatsReplicaConfig, ConfigError> {
    let Location {
        server,
        bucket,
        user_in_url,
    } = server_and_bucket(eff, url, key, warnings)?;
    let path = |raw: &Option<String>, name: &str| -> Result<Option<PathBuf>, ConfigError> {
        match non_empty(raw) {
            Some(p) => resolve_path(&p, &format!("{key}.{name}"), env, cwd).map(Some),
            None => Ok(None),
        }
    };
    let client_cert = match (
        path(&eff.client_cert, "client-cert")?,
        path(&eff.client_key, "client-key")?,
    ) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => {
            return Err(ConfigError::invalid(
                key,
                "client-cert and client-key must both be specified for mutual TLS authentication",
                "set both client-cert: and client-key:, or neither",
            ));
        }
    };
    let roots: Vec<String> = eff.root_cas.clone().unwrap_or_default();
    let roots: Vec<&String> = roots.iter().filter(|r| !r.is_empty()).collect();
    if roots.len() > 1 {
        return Err(ConfigError::invalid(
            format!("{key}.root-cas"),
            "Tideline's NATS client takes one root CA file",
            "concatenate the PEM files into one (cat a.pem b.pem > cas.pem) and list that",
        ));
    }
    let root_ca = match roots.first() {
        Some(r) => Some(resolve_path(r, &format!("{key}.root-cas"), env, cwd)?),
        None => None,
    };
    Ok(NatsReplicaConfig {
        server,
        bucket,
        auth: match user_in_url {
            Some((username, password)) => NatsAuth::UserPassword {
                username,
                password: Sensitive::new(password),
            },
            None => auth(eff, key, env, cwd)?,
        },
        tls: eff.tls.unwrap_or(false),
        root_ca,
        client_cert,
        max_reconnects: max_reconnects(eff.max_reconnects, key)?,
        reconnect_wait: eff
            .reconnect_wait
            .map_or(DEFAULT_NATS_RECONNECT_WAIT, |d| d.0),
        timeout: eff
            .timeout
            .map(|d| d.0)
            .filter(|d| !d.is_zero())
            .unwrap_or(DEFAULT_NATS_TIMEOUT),
    })
}

/// Where a replica is: the server (`host[:port]`), the bucket, and the user and
/// password of a command-line URL.
struct Location {
    server: String,
    bucket: String,
    user_in_url: Option<(String, String)>,
}

/// The server (`host[:port]`) and the bucket, from the URL or `bucket:`.
fn server_and_bucket(
    eff: &RawReplica,
    url: Option<&str>,
    key: &str,
    warnings: &mut Vec<String>,
) -> Result<Location, ConfigError> {
    let mut server = DEFAULT_NATS_SERVER.to_owned();
    let mut bucket = None;
    let mut user_in_url = None;
    if let Some(u) = url {
        let parsed = url::parse(u).map_err(|p| url_error(key, p))?;
        if key == COMMAND_LINE_KEY {
            // A replica URL on the command line (`tideline restore nats://u:p@host/b`)
            // logs in with its user and password, as Litestream's URL form does.
            user_in_url = parsed.user.clone().zip(parsed.password.clone());
        } else if parsed.user.is_some() || parsed.password.is_some() {
            warnings.push(format!(
                "{key}.url: the user and password in a nats URL are ignored (as by \
                 Litestream); set username: and password:"
            ));
        }
        if !parsed.host.is_empty() {
            server = parsed.host;
        }
        bucket = Some(parsed.path.trim_matches('/').to_owned()).filter(|b| !b.is_empty());
    }
    let (bucket, at) = match (bucket, non_empty(&eff.bucket)) {
        (Some(b), _) => (b, format!("{key}.url")),
        (None, Some(b)) => (b, format!("{key}.bucket")),
        (None, None) => {
            return Err(ConfigError::invalid(
                key,
                "bucket required for NATS replica",
                "set url: nats://HOST:PORT/BUCKET (the object-store bucket)",
            ));
        }
    };
    if !bucket
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(ConfigError::invalid(
            at,
            format!("{bucket:?} is not a NATS object-store bucket name"),
            "a bucket name is letters, digits, - and _ (there is no path inside a NATS \
             bucket: url: nats://HOST:PORT/BUCKET)",
        ));
    }
    Ok(Location {
        server,
        bucket,
        user_in_url,
    })
}

/// The credentials, in Litestream's order; half a credential is refused.
fn auth(
    eff: &RawReplica,
    key: &str,
    env: Env,
    cwd: Option<&Path>,
) -> Result<NatsAuth, ConfigError> {
    let (jwt, seed) = (non_empty(&eff.jwt), non_empty(&eff.seed));
    let (user, password) = (non_empty(&eff.username), non_empty(&eff.password));
    let half = |set: &str, missing: &str| {
        ConfigError::invalid(
            key,
            format!("{set} is set without {missing} for NATS replica"),
            format!("set {missing}: too (Litestream would ignore {set} alone)"),
        )
    };
    match (&jwt, &seed) {
        (Some(_), None) => return Err(half("jwt", "seed")),
        (None, Some(_)) => return Err(half("seed", "jwt")),
        _ => {}
    }
    match (&user, &password) {
        (Some(_), None) => return Err(half("username", "password")),
        (None, Some(_)) if non_empty(&eff.token).is_none() => {
            return Err(half("password", "username"));
        }
        _ => {}
    }
    if let (Some(jwt), Some(seed)) = (jwt, seed) {
        return Ok(NatsAuth::Jwt {
            jwt: Sensitive::new(jwt),
            seed: Sensitive::new(seed),
        });
    }
    if let Some(c) = non_empty(&eff.creds) {
        return Ok(NatsAuth::Creds(resolve_path(
            &c,
            &format!("{key}.creds"),
            env,
            cwd,
        )?));
    }
    if let Some(n) = non_empty(&eff.nkey) {
        if !n.starts_with("SU") {
            return Err(ConfigError::invalid(
                format!("{key}.nkey"),
                "nkey is not a user nkey seed (SU…)",
                "give the user's nkey seed, which signs the server's challenge (Litestream \
                 takes a public key here but has nothing to sign with)",
            ));
        }
        return Ok(NatsAuth::Nkey(Sensitive::new(n)));
    }
    if let (Some(username), Some(password)) = (user, password) {
        return Ok(NatsAuth::UserPassword {
            username,
            password: Sensitive::new(password),
        });
    }
    Ok(non_empty(&eff.token).map_or(NatsAuth::None, |t| NatsAuth::Token(Sensitive::new(t))))
}

/// `max-reconnects`: -1 (or below) for unlimited, as in Go's client; 0 (never
/// reconnect) is refused, since Tideline's client always reconnects.
fn max_reconnects(raw: Option<i64>, key: &str) -> Result<Option<usize>, ConfigError> {
    match raw {
        None => Ok(None),
        Some(n) if n < 0 => Ok(None),
        Some(0) => Err(ConfigError::invalid(
            format!("{key}.max-reconnects"),
            "max-reconnects: 0 (never reconnect) is not supported by Tideline",
            "use -1 (unlimited, the default) or a number of attempts",
        )),
        Some(n) => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
    }
}
