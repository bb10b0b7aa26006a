//! Destinations as the window describes them and the app stores them, to and from
//! the engine's replica and database configs: what adding a database, starting with
//! the saved list, and importing a Litestream config each build.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tideline_engine::config::{
    AbsParts, DEFAULT_NATS_RECONNECT_WAIT, DEFAULT_NATS_TIMEOUT, DbConfig, GsParts, NatsAuth,
    NatsParts, NatsReplicaConfig, OssParts, ReplicaConfig, ReplicaTarget, S3Parts, Sensitive,
    SftpParts, WebDavParts, meta_path_for, strip_userinfo,
};
use tideline_engine::{ReplicaClient, open_client};

use crate::error::{AppError, AppResult, ErrorCode};
use crate::secrets::Keys;
use crate::store::{Destination, NatsOptions, S3Options, Settings, StoredDb};

use crate::commands::{absolute, invalid};

/// The replica config of a destination, with the app's settings.
pub fn replica_config(
    dest: &Destination,
    keys: Option<&Keys>,
    settings: &Settings,
) -> AppResult<ReplicaConfig> {
    let mut cfg = match dest {
        Destination::Folder { path } => {
            let p = absolute(path, "destination folder")?;
            ReplicaConfig::from_url(&p.to_string_lossy())
        }
        Destination::S3 {
            endpoint,
            bucket,
            path,
            region,
            ..
        } => {
            if bucket.trim().is_empty() {
                return Err(invalid("Enter the bucket name."));
            }
            let keys = keys.cloned().unwrap_or_default();
            ReplicaConfig::s3(&S3Parts {
                bucket: bucket.clone(),
                path: path.clone(),
                endpoint: endpoint.clone(),
                region: region.clone(),
                access_key_id: keys.access_key_id,
                secret_access_key: Sensitive::new(keys.secret_access_key),
            })
        }
        Destination::WebDav {
            url,
            path,
            username,
        } => ReplicaConfig::webdav(&webdav_parts(url, path, username, keys)?),
        Destination::Sftp { .. } => ReplicaConfig::sftp(&sftp_parts(dest, keys)?),
        Destination::Abs {
            account_name,
            container,
            path,
            endpoint,
        } => {
            if account_name.trim().is_empty() && endpoint.trim().is_empty() {
                return Err(invalid("Enter the storage account name."));
            }
            ReplicaConfig::abs(&AbsParts {
                account_name: account_name.clone(),
                container: required(container, "Enter the container name.")?,
                path: path.clone(),
                endpoint: endpoint.clone(),
                account_key: secret(keys, |k| &k.account_key),
                sas_token: secret(keys, |k| &k.sas_token),
            })
        }
        Destination::Gs {
            bucket,
            path,
            credentials_file,
        } => ReplicaConfig::gs(&GsParts {
            bucket: required(bucket, "Enter the bucket name.")?,
            path: path.clone(),
            credentials_file: full_path(credentials_file, "service-account key file")?,
        }),
        Destination::Nats { .. } => ReplicaConfig::nats(&nats_parts(dest, keys)?),
        Destination::Oss {
            bucket,
            path,
            region,
            endpoint,
        } => {
            let keys = keys.cloned().unwrap_or_default();
            ReplicaConfig::oss(&OssParts {
                bucket: required(bucket, "Enter the bucket name.")?,
                path: path.clone(),
                region: region.clone(),
                endpoint: endpoint.clone(),
                access_key_id: keys.access_key_id,
                secret_access_key: Sensitive::new(keys.secret_access_key),
            })
        }
    }
    .map_err(|e| invalid(e.to_string()))?;
    if let (Destination::S3 { options, .. }, ReplicaTarget::S3(s3)) = (dest, &mut cfg.target) {
        options.apply(s3);
        if let Some(key) = keys.and_then(|k| k.sse_customer_key.clone()) {
            s3.sse_customer_key = Some(Sensitive::new(key));
            s3.sse_customer_algorithm
                .get_or_insert_with(|| "AES256".to_owned());
        }
    }
    cfg.sync_interval = Duration::from_millis(settings.sync_interval_ms.max(100));
    Ok(cfg)
}

fn required(value: &str, missing: &str) -> AppResult<String> {
    match value.trim() {
        "" => Err(invalid(missing)),
        v => Ok(v.to_owned()),
    }
}

fn password_of(keys: Option<&Keys>) -> Sensitive<String> {
    secret(keys, |k| &k.password)
}

/// One secret of the keys; empty (not given) when absent.
fn secret(keys: Option<&Keys>, field: impl Fn(&Keys) -> &Option<String>) -> Sensitive<String> {
    Sensitive::new(keys.and_then(|k| field(k).clone()).unwrap_or_default())
}

/// A file the form names: empty, or a full path (`~/` is expanded by the config
/// crate, as in a config file).
fn full_path(value: &str, what: &str) -> AppResult<String> {
    Ok(match value.trim() {
        "" => String::new(),
        p if p.starts_with("~/") => p.to_owned(),
        p => absolute(p, what)?.display().to_string(),
    })
}

/// The parts of a WebDAV destination; credentials belong in their fields (the
/// password in the keychain), so a URL carrying them is refused rather than saved.
fn webdav_parts(
    url: &str,
    path: &str,
    username: &str,
    keys: Option<&Keys>,
) -> AppResult<WebDavParts> {
    let url = required(url, "Enter the server URL.")?;
    if strip_userinfo(&url) != url {
        return Err(invalid(
            "Enter the user name and password in their fields, not in the server URL.",
        ));
    }
    Ok(WebDavParts {
        url,
        path: path.to_owned(),
        username: username.to_owned(),
        password: password_of(keys),
    })
}

/// The parts of an SFTP destination.
fn sftp_parts(dest: &Destination, keys: Option<&Keys>) -> AppResult<SftpParts> {
    let Destination::Sftp {
        host,
        user,
        path,
        key_path,
        host_key,
        concurrent_writes,
    } = dest
    else {
        return Err(AppError::new(
            ErrorCode::Internal,
            "not an SFTP destination",
        ));
    };
    Ok(SftpParts {
        host: sftp_host(host)?,
        user: required(user, "Enter the user name.")?,
        path: path.clone(),
        password: password_of(keys),
        key_path: full_path(key_path, "private key file")?,
        host_key: host_key.clone(),
        concurrent_writes: *concurrent_writes,
    })
}

/// The SFTP host as the form takes it: a name or address and an optional port, without
/// a user or a path (those have their own fields).
fn sftp_host(host: &str) -> AppResult<String> {
    let host = required(host, "Enter the server's host name.")?;
    if host.contains(['@', '/']) || host.contains(char::is_whitespace) {
        return Err(invalid(format!(
            "Enter only the host name and an optional port (nas.example.com or \
             nas.example.com:2222), not {host:?}: the user and the folder have their own fields."
        )));
    }
    Ok(host)
}

/// The parts of a NATS destination: the form's fields, the options an import kept,
/// and the secrets from the keys.
fn nats_parts(dest: &Destination, keys: Option<&Keys>) -> AppResult<NatsParts> {
    let Destination::Nats {
        server,
        bucket,
        username,
        creds,
        options,
    } = dest
    else {
        return Err(AppError::new(ErrorCode::Internal, "not a NATS destination"));
    };
    let ms = |v: Option<u64>| v.map(Duration::from_millis);
    Ok(NatsParts {
        server: server.clone(),
        bucket: required(bucket, "Enter the object-store bucket name.")?,
        username: username.clone(),
        password: password_of(keys),
        token: secret(keys, |k| &k.token),
        creds: full_path(creds, "credentials (.creds) file")?,
        jwt: secret(keys, |k| &k.jwt),
        seed: secret(keys, |k| &k.seed),
        nkey: secret(keys, |k| &k.nkey),
        tls: options.tls,
        root_ca: options.root_ca.clone(),
        client_cert: options.client_cert.clone(),
        client_key: options.client_key.clone(),
        max_reconnects: options.max_reconnects,
        reconnect_wait: ms(options.reconnect_wait_ms),
        timeout: ms(options.timeout_ms),
    })
}

/// A database config for `path` replicated to `replica`, with the app's settings.
pub fn db_config(path: &Path, replica: ReplicaConfig, settings: &Settings) -> DbConfig {
    let mut cfg = DbConfig::new(path);
    cfg.monitor_interval = Duration::from_millis(settings.monitor_interval_ms.max(50));
    cfg.replica = Some(replica);
    cfg
}

/// [`db_config`] of a remembered database, with the meta directory it was given.
pub fn stored_db_config(db: &StoredDb, replica: ReplicaConfig, settings: &Settings) -> DbConfig {
    let mut cfg = db_config(&db.path, replica, settings);
    if let Some(meta) = &db.meta_path {
        cfg.meta_path = meta.clone();
    }
    cfg
}

/// What the app remembers of a database of a Litestream config, and the keys that go
/// to the keychain: every S3 setting the config gave (encryption, storage class, part
/// size, path style…), every WebDAV and SFTP setting (the password to the keychain)
/// and its meta directory, so later starts replicate the same way.
/// `Err` says why the database cannot be imported.
pub fn imported(db: &DbConfig) -> Result<(StoredDb, Option<Keys>), String> {
    let Some(replica) = &db.replica else {
        return Err(format!("{}: no replica", db.path.display()));
    };
    let (destination, keys) = match &replica.target {
        ReplicaTarget::File(f) => (
            Destination::Folder {
                path: f.path.display().to_string(),
            },
            None,
        ),
        ReplicaTarget::S3(s3) => {
            // Keys the config names (or the environment supplies) go to the keychain,
            // as keys typed into the window do; so does an inline SSE-C key.
            let expose = |k: &Option<Sensitive<String>>| {
                k.as_ref().map(|k| k.expose().clone()).unwrap_or_default()
            };
            let keys = Keys {
                access_key_id: expose(&s3.access_key_id),
                secret_access_key: expose(&s3.secret_access_key),
                sse_customer_key: s3.sse_customer_key.as_ref().map(|k| k.expose().clone()),
                ..Keys::default()
            };
            let destination = Destination::S3 {
                endpoint: s3.endpoint.clone().unwrap_or_default(),
                bucket: s3.bucket.clone(),
                path: s3.path.clone(),
                region: s3.region.clone().unwrap_or_default(),
                options: S3Options::from_config(s3),
            };
            (destination, Some(keys).filter(|k| !k.is_empty()))
        }
        ReplicaTarget::WebDav(w) => (
            Destination::WebDav {
                url: w.url.clone(),
                path: w.path.clone(),
                username: w.username.clone().unwrap_or_default(),
            },
            password_keys(&w.password),
        ),
        ReplicaTarget::Sftp(s) => (
            Destination::Sftp {
                host: s.host.clone(),
                user: s.user.clone(),
                path: s.path.clone(),
                key_path: s
                    .key_path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                host_key: s.host_key.clone().unwrap_or_default(),
                concurrent_writes: Some(s.concurrent_writes),
            },
            password_keys(&s.password),
        ),
        ReplicaTarget::Abs(a) => (
            Destination::Abs {
                account_name: a.account_name.clone().unwrap_or_default(),
                container: a.bucket.clone(),
                path: a.path.clone(),
                endpoint: a.endpoint.clone().unwrap_or_default(),
            },
            Some(Keys {
                account_key: a.account_key.as_ref().map(|k| k.expose().clone()),
                sas_token: a.sas_token.as_ref().map(|k| k.expose().clone()),
                ..Keys::default()
            })
            .filter(|k| !k.is_empty()),
        ),
        ReplicaTarget::Gs(g) => (
            Destination::Gs {
                bucket: g.bucket.clone(),
                path: g.path.clone(),
                credentials_file: g
                    .credentials_file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            },
            None,
        ),
        ReplicaTarget::Nats(n) => {
            imported_nats(n).map_err(|why| format!("{}: {why}", db.path.display()))?
        }
        ReplicaTarget::Oss(o) => (
            Destination::Oss {
                bucket: o.bucket.clone(),
                path: o.path.clone(),
                region: o.region.clone(),
                endpoint: o.endpoint.clone().unwrap_or_default(),
            },
            Some(Keys {
                access_key_id: o.access_key_id.clone(),
                secret_access_key: o.access_key_secret.expose().clone(),
                ..Keys::default()
            })
            .filter(|k| !k.is_empty()),
        ),
        other => {
            return Err(format!(
                "{}: {} destinations are not supported",
                db.path.display(),
                other.kind()
            ));
        }
    };
    let stored = StoredDb {
        path: db.path.clone(),
        destination,
        paused: false,
        meta_path: (db.meta_path != meta_path_for(&db.path)).then(|| db.meta_path.clone()),
        keychain: keys.is_some(),
    };
    Ok((stored, keys))
}

/// A NATS replica as the app keeps it: the login's file and user in the destination,
/// its secrets in the keys, TLS and reconnection settings in the options.
fn imported_nats(n: &NatsReplicaConfig) -> Result<(Destination, Option<Keys>), String> {
    let mut keys = Keys::default();
    let (mut username, mut creds) = (String::new(), String::new());
    let expose = |s: &Sensitive<String>| Some(s.expose().clone());
    match &n.auth {
        NatsAuth::None => {}
        NatsAuth::Jwt { jwt, seed } => {
            keys.jwt = expose(jwt);
            keys.seed = expose(seed);
        }
        NatsAuth::Creds(path) => creds = path.display().to_string(),
        NatsAuth::Nkey(nkey) => keys.nkey = expose(nkey),
        NatsAuth::UserPassword {
            username: user,
            password,
        } => {
            username.clone_from(user);
            keys.password = expose(password);
        }
        NatsAuth::Token(token) => keys.token = expose(token),
        _ => return Err("this NATS login is not supported by the app".to_owned()),
    }
    let path = |p: &Option<std::path::PathBuf>| {
        p.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    let (client_cert, client_key) = n
        .client_cert
        .as_ref()
        .map(|(c, k)| (c.display().to_string(), k.display().to_string()))
        .unwrap_or_default();
    let ms = |d: Duration, default: Duration| {
        (d != default).then(|| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    };
    let options = NatsOptions {
        tls: n.tls,
        root_ca: path(&n.root_ca),
        client_cert,
        client_key,
        max_reconnects: n
            .max_reconnects
            .map(|m| i64::try_from(m).unwrap_or(i64::MAX)),
        reconnect_wait_ms: ms(n.reconnect_wait, DEFAULT_NATS_RECONNECT_WAIT),
        timeout_ms: ms(n.timeout, DEFAULT_NATS_TIMEOUT),
    };
    let destination = Destination::Nats {
        server: n.server.clone(),
        bucket: n.bucket.clone(),
        username,
        creds,
        options,
    };
    Ok((destination, Some(keys).filter(|k| !k.is_empty())))
}

/// The keychain entry of a WebDAV or SFTP password, if the config gave one.
fn password_keys(password: &Option<Sensitive<String>>) -> Option<Keys> {
    password
        .as_ref()
        .map(|p| Keys::password(p.expose().clone()))
        .filter(|k| !k.is_empty())
}

/// The replica config and client of a destination; for a folder, proof that it can be
/// written.
pub fn client_for(
    dest: &Destination,
    keys: Option<&Keys>,
    settings: &Settings,
) -> AppResult<(ReplicaConfig, Arc<dyn ReplicaClient>)> {
    let cfg = replica_config(dest, keys, settings)?;
    let client = open_client(&cfg)?;
    if let tideline_engine::config::ReplicaTarget::File(f) = &cfg.target {
        tideline_engine::check_folder_writable(&f.path).map_err(|e| {
            AppError::new(
                ErrorCode::DestinationUnavailable,
                format!("Cannot back up to {}: {e}", f.path.display()),
            )
        })?;
    }
    Ok((cfg, client))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tideline_engine::config::Config;

    fn s3_of(cfg: &ReplicaConfig) -> &tideline_engine::config::S3ReplicaConfig {
        match &cfg.target {
            ReplicaTarget::S3(s3) => s3,
            other => panic!("{other:?}"),
        }
    }

    /// Every S3 setting of an imported Litestream config survives the trip through
    /// the app's settings file and keychain entry: the config a later start builds is
    /// the one the import replicated with.
    #[test]
    fn an_imported_s3_replica_keeps_every_setting_for_later_starts() {
        let sse_key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
        let yml = format!(
            "dbs:
  - path: /data/kms.db
    meta-path: /data/kms-meta
    replica:
      type: s3
      bucket: bkt
      path: kms
      endpoint: https://s3.example.com
      region: eu-west-1
      access-key-id: AKIMPORT
      secret-access-key: import-secret
      force-path-style: false
      sign-payload: false
      require-content-md5: false
      storage-class: STANDARD_IA
      part-size: 16MiB
      concurrency: 3
      sse-kms-key-id: kms-key-1
  - path: /data/ssec.db
    replica:
      url: s3://bkt/ssec
      sse-customer-key: {sse_key}
  - path: /data/keyfile.db
    replica:
      url: s3://bkt/keyfile
      sse-customer-key-path: /etc/tideline/ssec.key
"
        );
        let config = Config::parse(&yml, &|_| None, true).unwrap();
        assert_eq!(config.dbs.len(), 3);
        for db in &config.dbs {
            let (stored, keys) = imported(db).unwrap();
            // What the settings file holds, read back as a later start reads it.
            let saved = serde_json::to_string(&stored).unwrap();
            for secret in ["import-secret", sse_key] {
                assert!(
                    !saved.contains(secret),
                    "a secret in the settings file: {saved}"
                );
            }
            let stored: StoredDb = serde_json::from_str(&saved).unwrap();
            let settings = Settings::default();
            let rebuilt = replica_config(&stored.destination, keys.as_ref(), &settings).unwrap();
            let original = db.replica.as_ref().unwrap();
            assert_eq!(s3_of(&rebuilt), s3_of(original), "{}", db.path.display());
            let later = stored_db_config(&stored, rebuilt, &settings);
            assert_eq!(later.meta_path, db.meta_path, "{}", db.path.display());
        }
        let kms = s3_of(config.dbs[0].replica.as_ref().unwrap());
        assert_eq!(kms.part_size, 16 << 20);
        assert!(!kms.force_path_style);
        assert_eq!(config.dbs[0].meta_path, Path::new("/data/kms-meta"));
    }

    /// A later start of an imported database: the settings file as written and read
    /// back, the keychain entry, and the replica config they build.
    fn restarted(db: &DbConfig) -> (StoredDb, Option<Keys>, ReplicaConfig) {
        let (stored, keys) = imported(db).unwrap();
        let saved = serde_json::to_string(&stored).unwrap();
        let stored: StoredDb = serde_json::from_str(&saved).unwrap();
        let rebuilt = replica_config(&stored.destination, keys.as_ref(), &Settings::default())
            .unwrap_or_else(|e| panic!("{}: {e:?}", db.path.display()));
        (stored, keys, rebuilt)
    }

    /// WebDAV and SFTP replicas of a Litestream config are imported with every
    /// setting; passwords go to the keychain entry, never the settings file, and a later
    /// start builds exactly the config the import replicated with.
    #[test]
    fn imported_webdav_and_sftp_replicas_keep_every_setting_for_later_starts() {
        let host_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB2example0key0text0here";
        let yml = format!(
            "dbs:
  - path: /data/dav.db
    replica:
      type: webdav
      webdav-url: https://cloud.example.com/remote.php/dav/files/ann/
      webdav-username: ann
      webdav-password: dav-secret
      path: /backups/dav/
  - path: /data/davurl.db
    meta-path: /data/davurl-meta
    replica:
      url: webdav://bob:url-secret@127.0.0.1:8080/dav/b
  - path: /data/anon.db
    replica:
      url: webdavs://nas/anon
  - path: /data/sftp.db
    replica:
      type: sftp
      host: nas.local:2222
      user: backup
      password: sftp-secret
      path: backups/sftp
      key-path: /keys/id_ed25519
      host-key: {host_key}
      concurrent-writes: false
  - path: /data/sftpurl.db
    replica:
      url: sftp://ann:s%40cret@10.0.0.2/srv/b/
  - path: /data/sftpkey.db
    replica:
      type: sftp
      host: nas
      user: u
      key-path: /keys/id_rsa
"
        );
        let config = Config::parse(&yml, &|_| None, true).unwrap();
        assert_eq!(config.dbs.len(), 6);
        let passwords = [
            Some("dav-secret"),
            Some("url-secret"),
            None,
            Some("sftp-secret"),
            Some("s@cret"),
            None,
        ];
        for (db, password) in config.dbs.iter().zip(passwords) {
            let (stored, keys) = imported(db).unwrap();
            let saved = serde_json::to_string(&stored).unwrap();
            for secret in [
                "dav-secret",
                "url-secret",
                "sftp-secret",
                "s@cret",
                "s%40cret",
            ] {
                assert!(
                    !saved.contains(secret),
                    "a secret in the settings file: {saved}"
                );
            }
            let name = db.path.display();
            assert_eq!(
                keys.as_ref().and_then(|k| k.password.as_deref()),
                password,
                "{name}"
            );
            if let Some(k) = &keys {
                assert!(k.access_key_id.is_empty() && k.secret_access_key.is_empty());
            }
            assert_eq!(stored.reads_keychain(), password.is_some(), "{name}");
            let (stored, _, rebuilt) = restarted(db);
            assert_eq!(
                rebuilt.target,
                db.replica.as_ref().unwrap().target,
                "{name}"
            );
            let later = stored_db_config(&stored, rebuilt, &Settings::default());
            assert_eq!(later.meta_path, db.meta_path, "{name}");
        }
        let (dav, _, _) = restarted(&config.dbs[0]);
        assert_eq!(
            dav.destination,
            Destination::WebDav {
                url: "https://cloud.example.com/remote.php/dav/files/ann".into(),
                path: "backups/dav".into(),
                username: "ann".into(),
            }
        );
        let (sftp, _, rebuilt) = restarted(&config.dbs[3]);
        assert_eq!(
            sftp.destination,
            Destination::Sftp {
                host: "nas.local:2222".into(),
                user: "backup".into(),
                path: "backups/sftp".into(),
                key_path: "/keys/id_ed25519".into(),
                host_key: host_key.into(),
                concurrent_writes: Some(false),
            }
        );
        assert_eq!(
            rebuilt.target.to_string(),
            "sftp://backup@nas.local:2222 (folder backups/sftp)"
        );
        assert_eq!(sftp.destination.describe(), rebuilt.target.to_string());
    }

    /// Azure Blob, Google Cloud Storage, NATS and OSS replicas of a Litestream config
    /// are imported with every setting; secrets go to the keychain entry, never the
    /// settings file, and a later start builds exactly the config the import
    /// replicated with.
    #[test]
    fn imported_abs_gs_nats_and_oss_replicas_keep_every_setting_for_later_starts() {
        let yml = "dbs:
  - path: /data/abs.db
    replica:
      type: abs
      account-name: acct
      account-key: YWJzLWtleQ==
      bucket: backups
      path: app/abs
      endpoint: http://127.0.0.1:10000/acct
  - path: /data/sas.db
    replica:
      url: abs://acct@backups/sas
      sas-token: sv=2024&sig=abs-sas-secret
  - path: /data/gs.db
    replica:
      url: gs://bkt/app
  - path: /data/nats.db
    replica:
      url: nats://10.0.0.5:4333/litestream
      username: ann
      password: nats-pw-secret
      tls: true
      root-cas: [/etc/nats/ca.pem]
      client-cert: /etc/nats/cert.pem
      client-key: /etc/nats/key.pem
      max-reconnects: 7
      reconnect-wait: 5s
      timeout: 30s
  - path: /data/token.db
    replica:
      url: nats://nats.local/b
      token: nats-token-secret
  - path: /data/creds.db
    replica:
      url: nats://nats.local/c
      creds: /etc/nats/backup.creds
  - path: /data/jwt.db
    replica:
      url: nats://nats.local/d
      jwt: eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.jwt-secret
      seed: SUAMLK2ZNL35WSMW37E7UD4VZ7ELPKW7DHC3BWBSD2GCZ7IUQQXZIORRBU
  - path: /data/oss.db
    replica:
      type: oss
      bucket: bkt
      path: app/oss
      region: eu-central-1
      access-key-id: LTAIimport
      secret-access-key: oss-secret
";
        let env = |n: &str| {
            (n == tideline_engine::config::CREDENTIALS_VAR).then(|| "/keys/sa.json".to_owned())
        };
        let config = Config::parse(yml, &env, true).unwrap();
        assert_eq!(config.dbs.len(), 8);
        let secrets = [
            "YWJzLWtleQ==",
            "abs-sas-secret",
            "nats-pw-secret",
            "nats-token-secret",
            "jwt-secret",
            "SUAMLK2ZNL35",
            "oss-secret",
        ];
        for db in &config.dbs {
            let name = db.path.display();
            let (stored, keys) = imported(db).unwrap_or_else(|e| panic!("{e}"));
            let saved = serde_json::to_string(&stored).unwrap();
            for secret in secrets {
                assert!(
                    !saved.contains(secret),
                    "a secret in the settings file: {saved}"
                );
            }
            let has_secret = keys.is_some();
            assert_eq!(stored.reads_keychain(), has_secret, "{name}");
            let (stored, _, rebuilt) = restarted(db);
            assert_eq!(
                rebuilt.target,
                db.replica.as_ref().unwrap().target,
                "{name}"
            );
            assert_eq!(
                stored.destination.describe(),
                rebuilt.target.to_string(),
                "{name}"
            );
        }
        let keys_of = |i: usize| imported(&config.dbs[i]).unwrap().1;
        assert_eq!(
            keys_of(0).unwrap().account_key.as_deref(),
            Some("YWJzLWtleQ==")
        );
        assert_eq!(
            keys_of(1).unwrap().sas_token.as_deref(),
            Some("sv=2024&sig=abs-sas-secret")
        );
        assert!(keys_of(2).is_none() && keys_of(5).is_none());
        assert_eq!(
            keys_of(3).unwrap().password.as_deref(),
            Some("nats-pw-secret")
        );
        assert_eq!(
            keys_of(4).unwrap().token.as_deref(),
            Some("nats-token-secret")
        );
        assert!(keys_of(6).unwrap().seed.is_some());
        assert_eq!(keys_of(7).unwrap().access_key_id, "LTAIimport");
        let (gs, _) = imported(&config.dbs[2]).unwrap();
        assert_eq!(
            gs.destination,
            Destination::Gs {
                bucket: "bkt".into(),
                path: "app".into(),
                credentials_file: "/keys/sa.json".into(),
            }
        );
        let (nats, _) = imported(&config.dbs[3]).unwrap();
        let Destination::Nats { options, .. } = &nats.destination else {
            panic!("{nats:?}")
        };
        assert!(options.tls);
        assert_eq!(options.max_reconnects, Some(7));
        assert_eq!(
            (options.reconnect_wait_ms, options.timeout_ms),
            (Some(5000), Some(30_000))
        );
    }

    /// The Azure, Google, NATS and OSS forms name what is missing before connecting.
    #[test]
    fn abs_gs_nats_and_oss_forms_say_what_is_missing() {
        let settings = Settings::default();
        let abs = |account: &str, container: &str, endpoint: &str| Destination::Abs {
            account_name: account.into(),
            container: container.into(),
            path: String::new(),
            endpoint: endpoint.into(),
        };
        let key = Keys {
            account_key: Some("a2V5".into()),
            ..Keys::default()
        };
        let cfg = replica_config(&abs("acct", "backups", ""), Some(&key), &settings).unwrap();
        assert_eq!(cfg.target.to_string(), "abs://acct@backups");
        for (dest, keys, says) in [
            (
                abs("", "backups", ""),
                Some(&key),
                "Enter the storage account name.",
            ),
            (
                abs("acct", " ", ""),
                Some(&key),
                "Enter the container name.",
            ),
            (abs("acct", "backups", ""), None, "no credentials"),
            (
                Destination::Gs {
                    bucket: String::new(),
                    path: String::new(),
                    credentials_file: String::new(),
                },
                None,
                "Enter the bucket name.",
            ),
            (
                Destination::Gs {
                    bucket: "bkt".into(),
                    path: String::new(),
                    credentials_file: "keys/sa.json".into(),
                },
                None,
                "must be a full path",
            ),
            (
                Destination::Nats {
                    server: "nats.local".into(),
                    bucket: String::new(),
                    username: String::new(),
                    creds: String::new(),
                    options: NatsOptions::default(),
                },
                None,
                "Enter the object-store bucket name.",
            ),
            (
                Destination::Nats {
                    server: "nats.local".into(),
                    bucket: "b".into(),
                    username: "ann".into(),
                    creds: String::new(),
                    options: NatsOptions::default(),
                },
                None,
                "username is set without password",
            ),
            (
                Destination::Oss {
                    bucket: " ".into(),
                    path: String::new(),
                    region: String::new(),
                    endpoint: String::new(),
                },
                None,
                "Enter the bucket name.",
            ),
        ] {
            let e = replica_config(&dest, keys, &settings).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidInput, "{dest:?}");
            assert!(e.message.contains(says), "{says:?} not in {:?}", e.message);
        }
    }

    /// The window's WebDAV and SFTP forms: the password comes from the keys, blank
    /// fields are named, and credentials or a path in the wrong field are refused.
    #[test]
    fn webdav_and_sftp_forms_build_configs_or_say_what_is_missing() {
        let settings = Settings::default();
        let dav = |url: &str| Destination::WebDav {
            url: url.into(),
            path: "/backups/app/".into(),
            username: "ann".into(),
        };
        let keys = Keys::password("pw");
        let cfg = replica_config(
            &dav("https://cloud.example.com/remote.php/dav/files/ann/"),
            Some(&keys),
            &settings,
        )
        .unwrap();
        let ReplicaTarget::WebDav(w) = &cfg.target else {
            panic!("{cfg:?}")
        };
        assert_eq!(w.url, "https://cloud.example.com/remote.php/dav/files/ann");
        assert_eq!(w.path, "backups/app");
        assert_eq!(w.password.as_ref().map(|p| p.expose().as_str()), Some("pw"));
        let destination = dav("https://cloud.example.com/remote.php/dav/files/ann/");
        assert_eq!(destination.describe(), cfg.target.to_string());

        let sftp = |host: &str, user: &str, key_path: &str, host_key: &str| Destination::Sftp {
            host: host.into(),
            user: user.into(),
            path: "/srv/backups/app".into(),
            key_path: key_path.into(),
            host_key: host_key.into(),
            concurrent_writes: None,
        };
        let cfg = replica_config(
            &sftp(" nas:2222 ", "backup", "/keys/id_ed25519", ""),
            Some(&keys),
            &settings,
        )
        .unwrap();
        let ReplicaTarget::Sftp(s) = &cfg.target else {
            panic!("{cfg:?}")
        };
        assert_eq!((s.host.as_str(), s.user.as_str()), ("nas:2222", "backup"));
        assert_eq!(s.password.as_ref().map(|p| p.expose().as_str()), Some("pw"));
        assert_eq!(s.key_path.as_deref(), Some(Path::new("/keys/id_ed25519")));
        assert!(s.concurrent_writes && s.host_key.is_none());
        let destination = sftp("nas:2222", "backup", "/keys/id_ed25519", "");
        assert_eq!(destination.describe(), cfg.target.to_string());

        for (dest, says) in [
            (dav(" "), "Enter the server URL."),
            (
                dav("https://ann:pw@cloud.example.com"),
                "not in the server URL",
            ),
            (dav("cloud.example.com"), "not an http(s) URL"),
            (sftp("", "u", "", ""), "Enter the server's host name."),
            (sftp("u@nas", "u", "", ""), "Enter only the host name"),
            (sftp("nas/srv", "u", "", ""), "Enter only the host name"),
            (sftp("nas", " ", "", ""), "Enter the user name."),
            (sftp("nas", "u", "keys/id", ""), "must be a full path"),
            (sftp("nas", "u", "", "nas ssh-ed25519 AAAA"), "ssh-keyscan"),
        ] {
            let e = replica_config(&dest, None, &settings).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidInput, "{dest:?}");
            assert!(e.message.contains(says), "{says:?} not in {:?}", e.message);
        }
    }
}
