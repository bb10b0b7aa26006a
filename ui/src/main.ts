// The window's entry point: wires the views to each other, to the state and to the
// app's events, then loads the list. Screens live in views/, IPC in api.ts, state in
// state.ts, and everything pure in logic.ts.
import * as api from "./api";
import { currentView, dropDb, listShown, putDb } from "./state";
import { openAdd, wireAdd } from "./views/add";
import { $ } from "./views/dom";
import { refreshAges, reload, renderList, showList } from "./views/list";
import { showProgress, wireRestore } from "./views/restore";
import { openSettings, wireSettings } from "./views/settings";

export async function start() {
  $("nav-list").addEventListener("click", showList);
  $("nav-add").addEventListener("click", openAdd);
  $("empty-add").addEventListener("click", openAdd);
  $("nav-settings").addEventListener("click", () => void openSettings());
  wireAdd(showList);
  wireRestore(showList);
  wireSettings();
  await api.onDbStatus((db) => {
    putDb(db);
    // The first database replaces the empty state; later ones update the list in place.
    if (currentView() === "empty") showList();
    else if (currentView() === "list") renderList();
  });
  await api.onDbRemoved((path) => {
    dropDb(path);
    if (listShown()) showList();
  });
  await api.onDbListChanged(() => void reload());
  await api.onRestoreProgress(showProgress);
  // Relative times ("12 s ago") age on screen; data still only arrives by events.
  window.setInterval(() => {
    if (currentView() === "list") refreshAges();
  }, 5000);
  await reload();
  document.body.dataset.ready = "true";
}

void start();
