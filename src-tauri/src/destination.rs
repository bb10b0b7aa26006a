//! Destinations as the window describes them and the app stores them, to and from
//! the engine's replica and database configs: what adding a database, starting with
//! the saved list, and importing a Litestream config each build.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tideline_engine::config::{
    DbConfig, ReplicaConfig, ReplicaTarget, S3Parts, Sensitive, meta_path_for,
};
use tideline_engine::{ReplicaClient, open_client};

use crate::error::{AppError, AppResult, ErrorCode};
use crate::secrets::Keys;
use crate::store::{Destination, S3Options, Settings, StoredDb};

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
/// size, path style…) and its meta directory, so later starts replicate the same way.
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
    };
    Ok((stored, keys))
}

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
}
