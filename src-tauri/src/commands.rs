//! The window's commands: each is a few lines of glue over one engine function.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tauri::{AppHandle, Emitter, Runtime, State};
use tideline_engine::Target;
use tideline_engine::config::{
    Config, DbConfig, ReplicaConfig, ReplicaTarget, S3Parts, Sensitive, meta_path_for,
    strip_userinfo,
};
use tideline_engine::{ReplicaClient, open_client};
use tideline_ltx::Txid;

use crate::AppState;
use crate::dto::{DbView, InspectView, PointView, RestoreProgress, RestoreView, TestView};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::secrets::{self, Keys};
use crate::store::{Destination, S3Options, Settings, StoredDb};

fn invalid(msg: impl Into<String>) -> AppError {
    AppError::new(ErrorCode::InvalidInput, msg)
}

fn absolute(path: &str, what: &str) -> AppResult<PathBuf> {
    let p = PathBuf::from(path.trim());
    if p.as_os_str().is_empty() {
        return Err(invalid(format!("Enter the {what}.")));
    }
    if !p.is_absolute() {
        return Err(invalid(format!(
            "The {what} must be a full path, starting with /: {}",
            p.display()
        )));
    }
    Ok(p)
}

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

fn client_for(
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

/// Every database with its status.
#[tauri::command]
pub fn list_databases(state: State<'_, AppState>) -> Vec<DbView> {
    state.views()
}

/// Checks a file is a SQLite database and reads its journal mode.
#[tauri::command]
pub async fn inspect_database(path: String) -> AppResult<InspectView> {
    let p = absolute(&path, "database path")?;
    let info = tideline_engine::inspect(p).await?;
    Ok(InspectView {
        path,
        size: info.size,
        is_wal: info.is_wal(),
        journal_mode: info.journal_mode,
    })
}

/// "Test connection": lists the destination.
#[tauri::command]
pub async fn test_destination(
    state: State<'_, AppState>,
    destination: Destination,
    keys: Option<Keys>,
) -> AppResult<TestView> {
    let settings = state.settings();
    let (_, client) = client_for(&destination, keys.as_ref(), &settings)?;
    let txid = tideline_engine::probe_replica(client.as_ref()).await?;
    Ok(TestView {
        destination: client.describe(),
        replica_txid: txid.map(|t| t.0),
    })
}

/// Adds a database and starts backing it up.
#[tauri::command]
pub async fn add_database(
    state: State<'_, AppState>,
    path: String,
    destination: Destination,
    keys: Option<Keys>,
) -> AppResult<DbView> {
    let db = absolute(&path, "database path")?;
    let settings = state.settings();
    let (replica, client) = client_for(&destination, keys.as_ref(), &settings)?;
    // The settings file never holds credentials, also not typed into the endpoint.
    let mut destination = destination;
    if let Destination::S3 { endpoint, .. } = &mut destination {
        *endpoint = strip_userinfo(endpoint);
    }
    let account = db.display().to_string();
    let keys = keys.filter(|k| !k.is_empty());
    if let Some(k) = &keys {
        secrets::store(&account, k)?;
    }
    let status = match state
        .service
        .add(db_config(&db, replica, &settings), client, false)
        .await
    {
        Ok(s) => s,
        Err(e) => {
            if keys.is_some() {
                let _ = secrets::delete(&account);
            }
            return Err(e.into());
        }
    };
    state.remember(StoredDb {
        path: db,
        destination,
        paused: false,
        meta_path: None,
    })?;
    Ok(DbView::from(&status))
}

/// Stops backing up a database; its backups are kept.
#[tauri::command]
pub async fn remove_database<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    path: String,
) -> AppResult<()> {
    let p = PathBuf::from(&path);
    state.service.remove(&p).await?;
    if state.forget(&p)? {
        let _ = secrets::delete(&path);
    }
    let _ = app.emit("db-removed", path);
    crate::tray::refresh(&app, &state.statuses());
    Ok(())
}

/// Pauses a database (what is pending is shipped first).
#[tauri::command]
pub async fn pause_database(state: State<'_, AppState>, path: String) -> AppResult<DbView> {
    let p = PathBuf::from(path);
    let s = state.service.pause(&p).await?;
    state.set_paused(&p, true)?;
    Ok(DbView::from(&s))
}

/// Resumes a paused database.
#[tauri::command]
pub fn resume_database(state: State<'_, AppState>, path: String) -> AppResult<DbView> {
    let p = PathBuf::from(path);
    let s = state.service.resume(&p)?;
    state.set_paused(&p, false)?;
    Ok(DbView::from(&s))
}

/// Captures and ships a database's changes now.
#[tauri::command]
pub fn sync_now(state: State<'_, AppState>, path: String) -> AppResult<()> {
    Ok(state.service.sync_now(Path::new(&path))?)
}

/// Syncs every running database now.
#[tauri::command]
pub fn sync_all(state: State<'_, AppState>) {
    state.sync_all();
}

/// Pauses or resumes every database.
#[tauri::command]
pub async fn set_all_paused(state: State<'_, AppState>, paused: bool) -> AppResult<()> {
    state.set_all_paused(paused).await
}

/// The restore points of a database, oldest first.
#[tauri::command]
pub async fn restore_points(state: State<'_, AppState>, path: String) -> AppResult<Vec<PointView>> {
    let client = state.service.client(Path::new(&path))?;
    let points = tideline_engine::restore_points(client.as_ref()).await?;
    Ok(points.iter().map(PointView::from).collect())
}

/// Where a restored copy goes unless the user chooses.
#[tauri::command]
pub fn default_restore_path(path: String) -> String {
    tideline_engine::restored_copy_path(Path::new(&path), SystemTime::now())
        .display()
        .to_string()
}

fn target(txid: Option<u64>) -> Target {
    txid.map_or(Target::Latest, |t| Target::Txid(Txid(t)))
}

/// Restores a point (or the latest) as a new file, verified; progress goes out as
/// `restore-progress` events.
#[tauri::command]
pub async fn restore_copy<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    path: String,
    txid: Option<u64>,
    output: Option<String>,
) -> AppResult<RestoreView> {
    let db = PathBuf::from(&path);
    let client = state.service.client(&db)?;
    let out = match output.filter(|o| !o.trim().is_empty()) {
        Some(o) => absolute(&o, "restore file")?,
        None => tideline_engine::restored_copy_path(&db, SystemTime::now()),
    };
    let restored = tideline_engine::restore_copy(client, target(txid), &out, |phase| {
        let _ = app.emit(
            "restore-progress",
            RestoreProgress {
                path: path.clone(),
                phase,
            },
        );
    })
    .await?;
    Ok(RestoreView {
        output: out.display().to_string(),
        txid: restored.txid.0,
        bytes: restored.bytes,
        verified: true,
        safety_copy: None,
    })
}

/// Restores a point over the database itself, after a safety copy (the result
/// names it, so the window can offer to undo with it).
#[tauri::command]
pub async fn restore_in_place(
    state: State<'_, AppState>,
    path: String,
    txid: Option<u64>,
) -> AppResult<RestoreView> {
    let db = PathBuf::from(&path);
    let done = state
        .service
        .restore_in_place(&db, target(txid), SystemTime::now())
        .await?;
    Ok(RestoreView::in_place(path, &done))
}

/// Undoes an in-place restore: puts its safety copy back over the database (itself
/// after a safety copy).
#[tauri::command]
pub async fn undo_restore(
    state: State<'_, AppState>,
    path: String,
    safety_copy: String,
) -> AppResult<RestoreView> {
    let copy = absolute(&safety_copy, "safety copy")?;
    let done = state
        .service
        .undo_restore(Path::new(&path), &copy, SystemTime::now())
        .await?;
    Ok(RestoreView::in_place(path, &done))
}

/// Shows a file in the system's file manager.
#[tauri::command]
pub fn reveal(path: String) -> AppResult<()> {
    let p = PathBuf::from(&path);
    let dir = p.parent().unwrap_or(&p).to_owned();
    let mut cmd = if cfg!(target_os = "macos") {
        let mut c = std::process::Command::new("open");
        c.arg("-R").arg(&p);
        c
    } else if cfg!(windows) {
        let mut c = std::process::Command::new("explorer");
        c.arg(format!("/select,{}", p.display()));
        c
    } else {
        let mut c = std::process::Command::new("xdg-open");
        c.arg(&dir);
        c
    };
    cmd.spawn().map(|_| ()).map_err(|e| {
        AppError::new(
            ErrorCode::Io,
            format!(
                "Could not open the file manager ({e}); the file is {}",
                p.display()
            ),
        )
    })
}

/// The app settings.
#[tauri::command]
pub fn get_settings(state: State<'_, AppState>) -> Settings {
    state.settings()
}

/// Saves the app settings (intervals apply to databases added or resumed later).
#[tauri::command]
pub fn save_settings(state: State<'_, AppState>, settings: Settings) -> AppResult<Settings> {
    if settings.sync_interval_ms < 100 || settings.monitor_interval_ms < 50 {
        return Err(invalid(
            "Intervals must be at least 100 ms (sync) and 50 ms (check).",
        ));
    }
    state.set_settings(settings.clone())?;
    Ok(settings)
}

/// Adds the databases of a Litestream config file (folder and S3 replicas, each S3
/// setting and meta path kept for later starts, see [`imported`]); returns the
/// databases added and one line per database that was not.
#[tauri::command]
pub async fn import_config(
    state: State<'_, AppState>,
    path: String,
) -> AppResult<(Vec<DbView>, Vec<String>)> {
    let p = absolute(&path, "config file")?;
    let config = Config::load(&p, true).map_err(|e| invalid(e.to_string()))?;
    let (mut added, mut skipped) = (Vec::new(), Vec::new());
    for db in config.dbs {
        let (stored, keys) = match imported(&db) {
            Ok(x) => x,
            Err(why) => {
                skipped.push(why);
                continue;
            }
        };
        if let Some(keys) = &keys
            && let Err(e) = secrets::store(&db.path.display().to_string(), keys)
        {
            skipped.push(format!("{}: {}", db.path.display(), e.message));
            continue;
        }
        let Some(replica) = db.replica.clone() else {
            continue;
        };
        let client = match open_client(&replica) {
            Ok(c) => c,
            Err(e) => {
                skipped.push(format!("{}: {e}", db.path.display()));
                continue;
            }
        };
        match state.service.add(db, client, false).await {
            Ok(s) => {
                state.remember(stored)?;
                added.push(DbView::from(&s));
            }
            Err(e) => skipped.push(e.to_string()),
        }
    }
    Ok((added, skipped))
}

/// `None` when the OS keychain can hold S3 keys, else why not (shown by the S3 form).
#[tauri::command]
pub fn keychain_status() -> Option<String> {
    secrets::check().err().map(|e| e.message)
}

#[cfg(test)]
mod tests {
    use super::*;

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
