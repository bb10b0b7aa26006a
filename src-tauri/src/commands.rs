//! The window's commands: each is a few lines of glue over one engine function.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use tauri::{AppHandle, Emitter, Runtime, State};
use tideline_engine::Target;
use tideline_engine::config::Config;
use tideline_engine::open_client;
use tideline_ltx::Txid;

use crate::AppState;
use crate::destination::{client_for, db_config, imported};
use crate::dto::{DbView, InspectView, PointView, RestoreProgress, RestoreView, TestView};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::secrets::{self, Keys};
use crate::store::{Destination, Settings, StoredDb};

pub(crate) fn invalid(msg: impl Into<String>) -> AppError {
    AppError::new(ErrorCode::InvalidInput, msg)
}

pub(crate) fn absolute(path: &str, what: &str) -> AppResult<PathBuf> {
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
    let destination = destination.without_credentials();
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
        keychain: keys.is_some(),
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

/// Adds the databases of a Litestream config file (folder, S3, WebDAV and SFTP
/// replicas, each setting and meta path kept for later starts and secrets in the
/// keychain, see [`imported`]); returns the databases added and one line per database
/// that was not.
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

/// `None` when the OS keychain can hold destination secrets, else why not (shown by
/// the S3, WebDAV and SFTP forms).
#[tauri::command]
pub fn keychain_status() -> Option<String> {
    secrets::check().err().map(|e| e.message)
}
