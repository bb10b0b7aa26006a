//! Destinations as a form asks for them (the app's "Where to keep the backup" step):
//! each type's fields, built into a replica config exactly as a config file's
//! `replica:` section with the same keys would be, so that a destination typed into the
//! window and one imported from a Litestream config are validated and defaulted by one
//! set of rules. Empty strings count as not given.

use std::time::Duration;

use super::duration::AnyDuration;
use super::error::ConfigError;
use super::gs::CREDENTIALS_VAR;
use super::raw::RawReplica;
use super::replica::{ReplicaConfig, build};
use super::{Env, Sensitive};

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
        from_section(&RawReplica {
            kind: Some("s3".to_owned()),
            bucket: given(&parts.bucket),
            path: given(parts.path.trim().trim_matches('/')),
            endpoint: given(&parts.endpoint),
            region: given(&parts.region),
            access_key_id: given(&parts.access_key_id),
            secret_access_key: given(parts.secret_access_key.expose()),
            ..RawReplica::default()
        })
    }
}

/// A WebDAV destination as a form asks for it: what a config file's `type: webdav`
/// section would hold. Empty strings count as not given.
#[derive(Debug, Clone, Default)]
pub struct WebDavParts {
    /// The server's base URL (`webdav-url`), `https://…` or `http://…`.
    pub url: String,
    /// The replica's folder below the URL (`path`; slashes around it are dropped).
    pub path: String,
    /// `webdav-username`; none (no authentication) when empty.
    pub username: String,
    /// `webdav-password`; none when empty.
    pub password: Sensitive<String>,
}

/// An SFTP destination as a form asks for it: what a config file's `type: sftp`
/// section would hold. Empty strings count as not given.
#[derive(Debug, Clone, Default)]
pub struct SftpParts {
    /// `host` or `host:port`.
    pub host: String,
    /// `user`.
    pub user: String,
    /// The replica's folder on the server (`path`): absolute, or relative to the
    /// login folder; the login folder itself when empty.
    pub path: String,
    /// `password`; none when empty.
    pub password: Sensitive<String>,
    /// `key-path`, a private key file; none when empty.
    pub key_path: String,
    /// `host-key`, the server's key as an `authorized_keys` line; when empty the key
    /// must be in `~/.ssh/known_hosts`.
    pub host_key: String,
    /// `concurrent-writes`; the config file's default when `None`.
    pub concurrent_writes: Option<bool>,
}

/// `s` trimmed, or `None` when that is empty.
fn given(s: &str) -> Option<String> {
    Some(s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// A secret as typed (spaces are part of it), or `None` when empty.
fn given_secret(s: &Sensitive<String>) -> Option<String> {
    Some(s.expose().clone()).filter(|s| !s.is_empty())
}

/// A replica section built as a config file's is, with the process environment.
fn from_section(raw: &RawReplica) -> Result<ReplicaConfig, ConfigError> {
    from_section_with(raw, &super::process_env)
}

/// [`from_section`] with the environment given by `env`.
fn from_section_with(raw: &RawReplica, env: Env) -> Result<ReplicaConfig, ConfigError> {
    let mut warnings = Vec::new();
    build(
        raw,
        &RawReplica::default(),
        "replica",
        env,
        None,
        &mut warnings,
    )
}

impl ReplicaConfig {
    /// A WebDAV replica from its parts, validated and defaulted exactly as a config
    /// file's `type: webdav` section (credentials in the URL are taken as Litestream
    /// takes them).
    pub fn webdav(parts: &WebDavParts) -> Result<ReplicaConfig, ConfigError> {
        from_section(&RawReplica {
            kind: Some("webdav".to_owned()),
            webdav_url: given(&parts.url),
            path: given(parts.path.trim().trim_matches('/')),
            webdav_username: given(&parts.username),
            webdav_password: given_secret(&parts.password),
            ..RawReplica::default()
        })
    }

    /// An SFTP replica from its parts, validated and defaulted exactly as a config
    /// file's `type: sftp` section (`~` in the key path is expanded; the host key must
    /// look like an `authorized_keys` line).
    pub fn sftp(parts: &SftpParts) -> Result<ReplicaConfig, ConfigError> {
        from_section(&RawReplica {
            kind: Some("sftp".to_owned()),
            host: given(&parts.host),
            user: given(&parts.user),
            path: given(&parts.path),
            password: given_secret(&parts.password),
            key_path: given(&parts.key_path),
            host_key: given(&parts.host_key),
            concurrent_writes: parts.concurrent_writes,
            ..RawReplica::default()
        })
    }
}

/// An Azure Blob Storage destination as a form asks for it: what a config file's
/// `type: abs` section would hold.
#[derive(Debug, Clone, Default)]
pub struct AbsParts {
    /// `account-name`: the storage account.
    pub account_name: String,
    /// The container (`bucket`).
    pub container: String,
    /// The blob name prefix (`path`; slashes around it are dropped).
    pub path: String,
    /// `endpoint`; `https://<account>.blob.core.windows.net` when empty.
    pub endpoint: String,
    /// `account-key`; else `LITESTREAM_AZURE_ACCOUNT_KEY` when empty.
    pub account_key: Sensitive<String>,
    /// `sas-token`; wins over the account key when given.
    pub sas_token: Sensitive<String>,
}

/// A Google Cloud Storage destination as a form asks for it: Litestream's `type: gs`
/// section has only `bucket` and `path`; the key file is what
/// `GOOGLE_APPLICATION_CREDENTIALS` would name.
#[derive(Debug, Clone, Default)]
pub struct GsParts {
    /// The bucket.
    pub bucket: String,
    /// The object name prefix (slashes around it are dropped).
    pub path: String,
    /// The service-account JSON key file; `GOOGLE_APPLICATION_CREDENTIALS` when empty.
    pub credentials_file: String,
}

/// A NATS JetStream object store as a form asks for it: what a config file's
/// `type: nats` section would hold (the server goes into its `url:`).
#[derive(Debug, Clone, Default)]
pub struct NatsParts {
    /// `host` or `host:port` (a leading `nats://` is accepted); NATS's default
    /// `127.0.0.1:4222` when empty.
    pub server: String,
    /// The object-store bucket (it must exist).
    pub bucket: String,
    /// `username` (with `password`).
    pub username: String,
    /// `password`.
    pub password: Sensitive<String>,
    /// `token`.
    pub token: Sensitive<String>,
    /// `creds`: a `.creds` file.
    pub creds: String,
    /// `jwt` (with `seed`).
    pub jwt: Sensitive<String>,
    /// `seed`.
    pub seed: Sensitive<String>,
    /// `nkey`: a user nkey seed.
    pub nkey: Sensitive<String>,
    /// `tls`.
    pub tls: bool,
    /// `root-cas`: one PEM file.
    pub root_ca: String,
    /// `client-cert` (with `client-key`).
    pub client_cert: String,
    /// `client-key`.
    pub client_key: String,
    /// `max-reconnects`; the config file's default (-1, unlimited) when `None`.
    pub max_reconnects: Option<i64>,
    /// `reconnect-wait`; the default when `None`.
    pub reconnect_wait: Option<Duration>,
    /// `timeout`; the default when `None`.
    pub timeout: Option<Duration>,
}

/// An Alibaba Cloud OSS destination as a form asks for it: what a config file's
/// `type: oss` section would hold.
#[derive(Debug, Clone, Default)]
pub struct OssParts {
    /// The bucket.
    pub bucket: String,
    /// The key prefix (slashes around it are dropped).
    pub path: String,
    /// `region`; `cn-hangzhou` when empty.
    pub region: String,
    /// `endpoint`; `https://oss-<region>.aliyuncs.com` when empty.
    pub endpoint: String,
    /// `access-key-id` (with the secret); else `OSS_ACCESS_KEY_ID` when empty.
    pub access_key_id: String,
    /// `secret-access-key`; else `OSS_ACCESS_KEY_SECRET` when empty.
    pub secret_access_key: Sensitive<String>,
}

impl ReplicaConfig {
    /// An Azure Blob Storage replica from its parts, validated and defaulted exactly
    /// as a config file's `type: abs` section.
    pub fn abs(parts: &AbsParts) -> Result<ReplicaConfig, ConfigError> {
        from_section(&RawReplica {
            kind: Some("abs".to_owned()),
            account_name: given(&parts.account_name),
            bucket: given(&parts.container),
            path: given(parts.path.trim().trim_matches('/')),
            endpoint: given(&parts.endpoint),
            account_key: given_secret(&parts.account_key),
            sas_token: given_secret(&parts.sas_token),
            ..RawReplica::default()
        })
    }

    /// A Google Cloud Storage replica from its parts, validated exactly as a config
    /// file's `type: gs` section with `GOOGLE_APPLICATION_CREDENTIALS` set to the key
    /// file (when one is given); `STORAGE_EMULATOR_HOST` is read as there.
    pub fn gs(parts: &GsParts) -> Result<ReplicaConfig, ConfigError> {
        let file = given(&parts.credentials_file);
        let env = |name: &str| match &file {
            Some(f) if name == CREDENTIALS_VAR => Some(f.clone()),
            _ => super::process_env(name),
        };
        from_section_with(
            &RawReplica {
                kind: Some("gs".to_owned()),
                bucket: given(&parts.bucket),
                path: given(parts.path.trim().trim_matches('/')),
                ..RawReplica::default()
            },
            &env,
        )
    }

    /// A NATS replica from its parts, validated and defaulted exactly as a config
    /// file's `type: nats` section with `url: nats://SERVER` and `bucket:`.
    pub fn nats(parts: &NatsParts) -> Result<ReplicaConfig, ConfigError> {
        let server = parts.server.trim();
        let server = server
            .strip_prefix("nats://")
            .unwrap_or(server)
            .trim_end_matches('/');
        if server.contains(['/', '@', '?']) || server.contains(char::is_whitespace) {
            return Err(ConfigError::invalid(
                "replica.url",
                format!("{server:?} is not a NATS server address"),
                "give the host and an optional port (nats.example.com:4222); the bucket \
                 and the credentials have their own fields",
            ));
        }
        from_section(&RawReplica {
            kind: Some("nats".to_owned()),
            url: given(server).map(|s| format!("nats://{s}")),
            bucket: given(&parts.bucket),
            username: given(&parts.username),
            password: given_secret(&parts.password),
            token: given_secret(&parts.token),
            creds: given(&parts.creds),
            jwt: given_secret(&parts.jwt),
            seed: given_secret(&parts.seed),
            nkey: given_secret(&parts.nkey),
            tls: Some(parts.tls),
            root_cas: given(&parts.root_ca).map(|p| vec![p]),
            client_cert: given(&parts.client_cert),
            client_key: given(&parts.client_key),
            max_reconnects: parts.max_reconnects,
            reconnect_wait: parts.reconnect_wait.map(AnyDuration),
            timeout: parts.timeout.map(AnyDuration),
            ..RawReplica::default()
        })
    }

    /// An OSS replica from its parts, validated and defaulted exactly as a config
    /// file's `type: oss` section.
    pub fn oss(parts: &OssParts) -> Result<ReplicaConfig, ConfigError> {
        from_section(&RawReplica {
            kind: Some("oss".to_owned()),
            bucket: given(&parts.bucket),
            path: given(parts.path.trim().trim_matches('/')),
            region: given(&parts.region),
            endpoint: given(&parts.endpoint),
            access_key_id: given(&parts.access_key_id),
            secret_access_key: given_secret(&parts.secret_access_key),
            ..RawReplica::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    /// The replica a config file's section builds, with `env` as the environment.
    fn section(yml: &str, env: &dyn Fn(&str) -> Option<String>) -> ReplicaConfig {
        let config = Config::parse(
            &format!("dbs:\n  - path: /d.db\n    replica:\n{yml}"),
            env,
            true,
        )
        .unwrap_or_else(|e| panic!("{e}\n{yml}"));
        config.dbs[0].replica.clone().unwrap()
    }

    fn secret(s: &str) -> Sensitive<String> {
        Sensitive::new(s.to_owned())
    }

    /// Each form builds exactly what the config file's section with the same keys
    /// builds: one set of rules for a typed-in and an imported destination.
    #[test]
    fn each_form_builds_what_its_config_section_builds() {
        let none = |_: &str| None;
        let abs = ReplicaConfig::abs(&AbsParts {
            account_name: " acct ".into(),
            container: "backups".into(),
            path: "/app/db/".into(),
            endpoint: "http://127.0.0.1:10000/acct/".into(),
            account_key: secret("a2V5"),
            sas_token: Sensitive::default(),
        })
        .unwrap();
        let from_file = section(
            "      type: abs\n      account-name: acct\n      bucket: backups\n      path: app/db\n      endpoint: http://127.0.0.1:10000/acct\n      account-key: a2V5\n",
            &none,
        );
        assert_eq!(abs, from_file);

        let gs = ReplicaConfig::gs(&GsParts {
            bucket: "bkt".into(),
            path: "app".into(),
            credentials_file: "/keys/sa.json".into(),
        })
        .unwrap();
        let with_key = |n: &str| (n == CREDENTIALS_VAR).then(|| "/keys/sa.json".to_owned());
        assert_eq!(gs, section("      url: gs://bkt/app\n", &with_key));

        let nats = ReplicaConfig::nats(&NatsParts {
            server: "nats://10.0.0.5:4333/".into(),
            bucket: "litestream".into(),
            username: "ann".into(),
            password: secret("pw"),
            tls: true,
            root_ca: "/etc/ca.pem".into(),
            max_reconnects: Some(5),
            reconnect_wait: Some(Duration::from_secs(3)),
            ..NatsParts::default()
        })
        .unwrap();
        let from_file = section(
            "      url: nats://10.0.0.5:4333/litestream\n      username: ann\n      password: pw\n      tls: true\n      root-cas: [/etc/ca.pem]\n      max-reconnects: 5\n      reconnect-wait: 3s\n",
            &none,
        );
        assert_eq!(nats, from_file);

        let oss = ReplicaConfig::oss(&OssParts {
            bucket: "bkt".into(),
            path: "app".into(),
            region: "eu-central-1".into(),
            endpoint: String::new(),
            access_key_id: "LTAI".into(),
            secret_access_key: secret("oss-secret"),
        })
        .unwrap();
        let from_file = section(
            "      type: oss\n      bucket: bkt\n      path: app\n      region: eu-central-1\n      access-key-id: LTAI\n      secret-access-key: oss-secret\n",
            &none,
        );
        assert_eq!(oss, from_file);
    }

    /// Mistakes a form invites are named with what to do.
    #[test]
    fn form_mistakes_are_named() {
        let e = ReplicaConfig::nats(&NatsParts {
            server: "ann@nats.example.com".into(),
            bucket: "b".into(),
            ..NatsParts::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("not a NATS server address"), "{e}");
        let e = ReplicaConfig::abs(&AbsParts {
            account_name: "acct".into(),
            container: "Bad_Name".into(),
            account_key: secret("a2V5"),
            ..AbsParts::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("container name"), "{e}");
    }
}
