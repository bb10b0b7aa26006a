//! The tray icon: its shape says all-good (a check in a circle), syncing (circling
//! arrows), attention (a warning triangle) or paused (two bars); the tooltip is a
//! one-line summary; the menu opens the window, syncs or pauses everything, or quits
//! after shipping what is pending.

use tauri::image::Image;
use tauri::menu::{Menu, MenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{App, AppHandle, Manager, Runtime};
use tideline_engine::{DbStatus, SyncState};

/// The tray icon's id.
pub const TRAY_ID: &str = "main";

/// The overall state the tray shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overall {
    /// No databases yet, or every one in sync.
    AllGood,
    /// Something is on its way.
    Syncing,
    /// A database has an error or lags.
    Attention,
    /// Every database is paused.
    Paused,
}

/// The overall state and the tooltip line for these statuses.
pub fn summary(statuses: &[DbStatus]) -> (Overall, String) {
    let n = statuses.len();
    let count = |st: SyncState| statuses.iter().filter(|s| s.state == st).count();
    let (errors, lagging, paused) = (
        count(SyncState::Error),
        count(SyncState::Lagging),
        count(SyncState::Paused),
    );
    let busy = count(SyncState::Syncing) + count(SyncState::Starting);
    let plural = |k: usize, one: &str| {
        if k == 1 {
            format!("1 {one}")
        } else {
            format!("{k} {one}s")
        }
    };
    if n == 0 {
        return (Overall::AllGood, "Tideline: no databases yet".into());
    }
    if errors + lagging > 0 {
        let mut parts = Vec::new();
        if errors > 0 {
            parts.push(format!("{} failing", plural(errors, "database")));
        }
        if lagging > 0 {
            parts.push(format!("{} lagging", plural(lagging, "database")));
        }
        return (
            Overall::Attention,
            format!("Tideline: {}", parts.join(", ")),
        );
    }
    if paused == n {
        return (
            Overall::Paused,
            format!("Tideline: {} paused", plural(n, "database")),
        );
    }
    if busy > 0 {
        return (
            Overall::Syncing,
            format!("Tideline: syncing {} of {}", busy, plural(n, "database")),
        );
    }
    let mut line = format!("Tideline: {} in sync", plural(n - paused, "database"));
    if paused > 0 {
        line.push_str(&format!(", {paused} paused"));
    }
    (Overall::AllGood, line)
}

/// What a menu item does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MenuAction {
    /// Show the window.
    Open,
    /// Sync every database now.
    SyncAll,
    /// Pause every database.
    PauseAll,
    /// Resume every database.
    ResumeAll,
    /// Ship what is pending and exit.
    Quit,
}

/// The action of a menu item id.
pub fn menu_action(id: &str) -> Option<MenuAction> {
    Some(match id {
        "open" => MenuAction::Open,
        "sync_all" => MenuAction::SyncAll,
        "pause_all" => MenuAction::PauseAll,
        "resume_all" => MenuAction::ResumeAll,
        "quit" => MenuAction::Quit,
        _ => return None,
    })
}

fn icon(overall: Overall) -> Image<'static> {
    match overall {
        Overall::AllGood => tauri::include_image!("../icons/tray-ok.png"),
        Overall::Syncing => tauri::include_image!("../icons/tray-syncing.png"),
        Overall::Attention => tauri::include_image!("../icons/tray-attention.png"),
        Overall::Paused => tauri::include_image!("../icons/tray-paused.png"),
    }
}

/// Shows and focuses the main window.
pub fn show_window<R: Runtime>(app: &AppHandle<R>) {
    if let Some(w) = app.get_webview_window("main") {
        let _ = w.show();
        let _ = w.unminimize();
        let _ = w.set_focus();
    }
}

/// Creates the tray icon (needs a display; not called by the mock-runtime tests).
pub fn create<R: Runtime>(app: &App<R>) -> tauri::Result<()> {
    let items = [
        MenuItem::with_id(app, "open", "Open Tideline", true, None::<&str>)?,
        MenuItem::with_id(app, "sync_all", "Sync all now", true, None::<&str>)?,
        MenuItem::with_id(app, "pause_all", "Pause all", true, None::<&str>)?,
        MenuItem::with_id(app, "resume_all", "Resume all", true, None::<&str>)?,
        MenuItem::with_id(app, "quit", "Quit (after syncing)", true, None::<&str>)?,
    ];
    let refs: Vec<&dyn tauri::menu::IsMenuItem<R>> = items
        .iter()
        .map(|i| i as &dyn tauri::menu::IsMenuItem<R>)
        .collect();
    let menu = Menu::with_items(app, &refs)?;
    let (overall, line) = summary(&[]);
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(icon(overall))
        .tooltip(line)
        .menu(&menu)
        .on_menu_event(|app, ev| {
            let Some(action) = menu_action(ev.id.as_ref()) else {
                return;
            };
            let state = app.try_state::<crate::AppState>();
            match (action, state) {
                (MenuAction::Open, _) => show_window(app),
                (MenuAction::Quit, _) => crate::quit(app),
                (MenuAction::SyncAll, Some(s)) => s.sync_all(),
                (MenuAction::PauseAll | MenuAction::ResumeAll, Some(_)) => {
                    let app = app.clone();
                    tauri::async_runtime::spawn(async move {
                        let s = app.state::<crate::AppState>();
                        let _ = s.set_all_paused(action == MenuAction::PauseAll).await;
                    });
                }
                _ => {}
            }
        })
        .build(app)?;
    Ok(())
}

/// Updates the icon and tooltip (does nothing where there is no tray, e.g. in tests).
pub fn refresh<R: Runtime>(app: &AppHandle<R>, statuses: &[DbStatus]) {
    if let Some(tray) = app.tray_by_id(TRAY_ID) {
        let (overall, line) = summary(statuses);
        let _ = tray.set_icon(Some(icon(overall)));
        let _ = tray.set_tooltip(Some(line));
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn status(state: SyncState) -> DbStatus {
        DbStatus {
            path: PathBuf::from("/x.db"),
            replica: "file:///b".into(),
            state,
            last_sync: None,
            lag: None,
            size: 0,
            local_txid: None,
            replica_txid: None,
            error: None,
            syncs: 0,
        }
    }

    #[test]
    fn summary_picks_the_most_urgent_state() {
        assert_eq!(summary(&[]).0, Overall::AllGood);
        let ok = status(SyncState::InSync);
        assert_eq!(
            summary(&[ok.clone(), ok.clone()]),
            (Overall::AllGood, "Tideline: 2 databases in sync".into())
        );
        assert_eq!(
            summary(&[ok.clone(), status(SyncState::Syncing)]).0,
            Overall::Syncing
        );
        let (o, line) = summary(&[status(SyncState::Syncing), status(SyncState::Error)]);
        assert_eq!(o, Overall::Attention);
        assert_eq!(line, "Tideline: 1 database failing");
        assert_eq!(summary(&[status(SyncState::Lagging)]).0, Overall::Attention);
        assert_eq!(summary(&[status(SyncState::Paused)]).0, Overall::Paused);
        assert_eq!(
            summary(&[ok, status(SyncState::Paused)]).1,
            "Tideline: 1 database in sync, 1 paused"
        );
    }

    #[test]
    fn menu_ids_route_to_actions() {
        assert_eq!(menu_action("open"), Some(MenuAction::Open));
        assert_eq!(menu_action("sync_all"), Some(MenuAction::SyncAll));
        assert_eq!(menu_action("pause_all"), Some(MenuAction::PauseAll));
        assert_eq!(menu_action("resume_all"), Some(MenuAction::ResumeAll));
        assert_eq!(menu_action("quit"), Some(MenuAction::Quit));
        assert_eq!(menu_action("nope"), None);
    }

    #[test]
    fn the_three_states_have_different_icons() {
        let a = icon(Overall::AllGood);
        let b = icon(Overall::Syncing);
        let c = icon(Overall::Attention);
        assert_ne!(a.rgba(), b.rgba());
        assert_ne!(b.rgba(), c.rgba());
        assert_ne!(a.rgba(), c.rgba());
    }
}
