//! Tideline's desktop app: a window and a tray icon over the replication engine, which
//! runs inside the app ([`tideline_engine::Service`]).
//!
//! * [`commands`] — what the window can ask, each a few lines over one engine call;
//! * events pushed to the window: `db-status` (a [`dto::DbView`] after every engine
//!   event), `db-removed`, `restore-progress`;
//! * [`tray`] — an icon whose shape says all-good / syncing / attention, a one-line
//!   tooltip and a menu; closing the window keeps replication running there;
//! * [`store`] — settings and the database list, as JSON in the config directory.
//!
//! [`configure`] and [`setup_state`] are shared with the mock-runtime tests; the
//! tray, plugins and window behaviour are added only by [`run`] (they need a display).

pub mod commands;
pub mod destination;
pub mod dto;
pub mod error;
pub mod secrets;
pub mod store;
pub mod tray;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use tauri::{AppHandle, Emitter, Manager, Runtime};
use tideline_engine::ReplicateSettings;
use tideline_engine::{DbStatus, Service, StatusSink, SyncState};

use crate::dto::DbView;
use crate::error::{AppError, AppResult};
use crate::store::{Settings, Stored, StoredDb};

/// What the commands share.
pub struct AppState {
    /// The replication service.
    pub service: Service,
    dir: PathBuf,
    stored: Mutex<Stored>,
    /// Remembered databases that could not be started, with why.
    failed: Mutex<HashMap<PathBuf, AppError>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("dir", &self.dir).finish()
    }
}

impl AppState {
    fn stored(&self) -> std::sync::MutexGuard<'_, Stored> {
        self.stored.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The settings.
    pub fn settings(&self) -> Settings {
        self.stored().settings.clone()
    }

    fn set_settings(&self, settings: Settings) -> AppResult<()> {
        let mut s = self.stored();
        s.settings = settings;
        s.save(&self.dir)
    }

    /// Every database's status for the tray: the service's, and those that could not
    /// even be started (a missing secret, say) as failing, so the tray never says all
    /// is well while one of them is not backed up.
    pub fn statuses(&self) -> Vec<DbStatus> {
        let mut out = self.service.statuses();
        let failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
        for (path, err) in failed.iter() {
            if !out.iter().any(|s| &s.path == path) {
                out.push(DbStatus {
                    path: path.clone(),
                    replica: String::new(),
                    state: SyncState::Error,
                    last_sync: None,
                    lag: None,
                    size: 0,
                    local_txid: None,
                    replica_txid: None,
                    error: Some(err.clone()),
                    syncs: 0,
                });
            }
        }
        out
    }

    fn remember(&self, db: StoredDb) -> AppResult<()> {
        self.failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&db.path);
        let mut s = self.stored();
        s.databases.retain(|d| d.path != db.path);
        s.databases.push(db);
        s.save(&self.dir)
    }

    /// Forgets a database; true if its destination may have keychain secrets.
    fn forget(&self, path: &Path) -> AppResult<bool> {
        let mut s = self.stored();
        let secrets = s
            .databases
            .iter()
            .any(|d| d.path == path && d.destination.has_secrets());
        s.databases.retain(|d| d.path != path);
        s.save(&self.dir)?;
        Ok(secrets)
    }

    fn set_paused(&self, path: &Path, paused: bool) -> AppResult<()> {
        let mut s = self.stored();
        for d in s.databases.iter_mut().filter(|d| d.path == path) {
            d.paused = paused;
        }
        s.save(&self.dir)
    }

    /// Every database as the list shows it, in the order added; those that could not
    /// start are shown with their error.
    pub fn views(&self) -> Vec<DbView> {
        let statuses: HashMap<PathBuf, DbStatus> = self
            .service
            .statuses()
            .into_iter()
            .map(|s| (s.path.clone(), s))
            .collect();
        let failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = Vec::new();
        for d in &self.stored().databases {
            if let Some(s) = statuses.get(&d.path) {
                out.push(DbView::from(s));
            } else if let Some(err) = failed.get(&d.path) {
                out.push(DbView {
                    path: d.path.display().to_string(),
                    name: d
                        .path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    destination: d.destination.describe(),
                    state: SyncState::Error,
                    last_sync_ms: None,
                    lag_ms: None,
                    size: 0,
                    local_txid: None,
                    replica_txid: None,
                    error: Some(err.clone()),
                });
            }
        }
        out
    }

    /// Asks every running database to sync now.
    pub fn sync_all(&self) {
        for p in self.service.paths() {
            let _ = self.service.sync_now(&p);
        }
    }

    /// Pauses or resumes every database.
    pub async fn set_all_paused(&self, paused: bool) -> AppResult<()> {
        for p in self.service.paths() {
            if paused {
                self.service.pause(&p).await?;
            } else {
                self.service.resume(&p)?;
            }
            self.set_paused(&p, paused)?;
        }
        Ok(())
    }
}

/// Creates the app state (loading the remembered databases in the background) and
/// makes the engine push every status change to the window, the tray and, when a
/// database stops being backed up, a notification.
pub fn setup_state<R: Runtime>(app: &AppHandle<R>) -> AppResult<()> {
    setup_state_in(app, store::config_dir())
}

/// [`setup_state`] with the config directory given (tests).
pub fn setup_state_in<R: Runtime>(app: &AppHandle<R>, dir: PathBuf) -> AppResult<()> {
    let stored = Stored::load(&dir)?;
    let last: LastStates = Arc::default();
    let service = Service::new(
        tauri::async_runtime::handle().inner().clone(),
        ReplicateSettings::default(),
        forward_statuses(app, Arc::clone(&last)),
    );
    let to_start = stored.databases.clone();
    app.manage(AppState {
        service,
        dir,
        stored: Mutex::new(stored),
        failed: Mutex::default(),
    });
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        start_saved(&app, to_start);
        watch_time_states(&app, &last).await;
    });
    Ok(())
}

/// The state each database was last shown in.
type LastStates = Arc<Mutex<HashMap<PathBuf, SyncState>>>;

/// The service's status listener. The engine's tasks only queue statuses; a task of
/// the app forwards them (in order) to the window, the tray and notifications, so
/// replication never waits for the UI thread (tray updates run there).
fn forward_statuses<R: Runtime>(app: &AppHandle<R>, last: LastStates) -> StatusSink {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<DbStatus>();
    let handle = app.clone();
    tauri::async_runtime::spawn(async move {
        while let Some(status) = rx.recv().await {
            let _ = handle.emit("db-status", DbView::from(&status));
            let before = last
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(status.path.clone(), status.state);
            if status.state == SyncState::Error && before != Some(SyncState::Error) {
                notify_stopped(&handle, &status);
            }
            if let Some(state) = handle.try_state::<AppState>() {
                tray::refresh(&handle, &state.statuses());
            }
        }
    });
    Arc::new(move |status: &DbStatus, _event: Option<&_>| {
        let _ = tx.send(status.clone());
    })
}

/// Starts the saved databases; one that cannot start (a missing secret, say) is kept
/// as failing, so the window and the tray show it.
fn start_saved<R: Runtime>(app: &AppHandle<R>, saved: Vec<StoredDb>) {
    let state = app.state::<AppState>();
    let settings = state.settings();
    for db in saved {
        let started = commands_client(&db, &settings).and_then(|(replica, client)| {
            Ok(state.service.add_saved(
                destination::stored_db_config(&db, replica, &settings),
                client,
                db.paused,
            )?)
        });
        if let Err(e) = started {
            state
                .failed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(db.path.clone(), e);
        }
    }
    let _ = app.emit("db-list-changed", ());
    tray::refresh(app, &state.statuses());
}

/// Pushes states that change with time alone (syncing turning into lagging): every
/// few seconds, whatever changed since the last push.
async fn watch_time_states<R: Runtime>(app: &AppHandle<R>, last: &LastStates) {
    let state = app.state::<AppState>();
    loop {
        tokio::time::sleep(STATE_TICK).await;
        let statuses = state.service.statuses();
        let mut changed = false;
        for s in &statuses {
            let before = last
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(s.path.clone(), s.state);
            if before.is_some_and(|b| b != s.state) {
                changed = true;
                let _ = app.emit("db-status", DbView::from(s));
            }
        }
        if changed {
            tray::refresh(app, &state.statuses());
        }
    }
}

/// How often states that change with time alone are re-checked.
const STATE_TICK: std::time::Duration = std::time::Duration::from_secs(5);

fn commands_client(
    db: &StoredDb,
    settings: &Settings,
) -> AppResult<(
    tideline_engine::config::ReplicaConfig,
    Arc<dyn tideline_engine::ReplicaClient>,
)> {
    let keys = if db.reads_keychain() {
        secrets::load(&db.path.display().to_string())?
    } else {
        None
    };
    let cfg = destination::replica_config(&db.destination, keys.as_ref(), settings)?;
    let client = tideline_engine::open_client(&cfg)?;
    Ok((cfg, client))
}

fn notify_stopped<R: Runtime>(app: &AppHandle<R>, status: &DbStatus) {
    let Some(state) = app.try_state::<AppState>() else {
        return;
    };
    if !state.settings().notifications {
        return;
    }
    let Some(n) = app.try_state::<tauri_plugin_notification::Notification<R>>() else {
        return;
    };
    let name = status
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let _ = n
        .builder()
        .title(format!("{name} is not being backed up"))
        .body(
            status
                .error
                .as_ref()
                .map(|e| e.message.clone())
                .unwrap_or_default(),
        )
        .show();
}

/// The command handlers (shared with the tests).
pub fn configure<R: Runtime>(builder: tauri::Builder<R>) -> tauri::Builder<R> {
    builder.invoke_handler(tauri::generate_handler![
        commands::list_databases,
        commands::inspect_database,
        commands::test_destination,
        commands::add_database,
        commands::remove_database,
        commands::pause_database,
        commands::resume_database,
        commands::sync_now,
        commands::sync_all,
        commands::set_all_paused,
        commands::restore_points,
        commands::default_restore_path,
        commands::restore_copy,
        commands::restore_in_place,
        commands::undo_restore,
        commands::reveal,
        commands::get_settings,
        commands::save_settings,
        commands::import_config,
        commands::keychain_status,
    ])
}

/// Ships what is pending, then exits (without blocking the UI thread meanwhile).
pub fn quit<R: Runtime>(app: &AppHandle<R>) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        if let Some(state) = app.try_state::<AppState>() {
            let service = state.service.clone();
            service.shutdown().await;
        }
        app.exit(0);
    });
}

/// Runs the app.
pub fn run() {
    let builder = tauri::Builder::default()
        .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| {
            tray::show_window(app);
        }))
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_notification::init());
    configure(builder)
        .setup(|app| {
            setup_state(app.handle()).map_err(|e| {
                Box::new(std::io::Error::other(format!(
                    "{:?}: {}",
                    e.code, e.message
                )))
            })?;
            tray::create(app)?;
            Ok(())
        })
        .on_window_event(|window, event| {
            // Closing the window keeps replication running in the tray.
            if let tauri::WindowEvent::CloseRequested { api, .. } = event {
                api.prevent_close();
                let _ = window.hide();
            }
        })
        .run(tauri::generate_context!("../tauri.conf.json"))
        .expect("error while running tauri application");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A remembered WebDAV or SFTP destination without secrets starts without asking
    /// the keychain, so it starts where there is none (this machine has none).
    #[test]
    fn destinations_without_secrets_start_without_a_keychain() {
        let db = StoredDb {
            path: "/data/dav.db".into(),
            destination: store::Destination::WebDav {
                url: "http://127.0.0.1:9".into(),
                path: "dav".into(),
                username: String::new(),
            },
            paused: false,
            meta_path: None,
            keychain: false,
        };
        let (cfg, client) = commands_client(&db, &Settings::default()).unwrap();
        assert_eq!(cfg.target.to_string(), "http://127.0.0.1:9/dav/");
        assert_eq!(client.describe(), db.destination.describe());
    }
}
