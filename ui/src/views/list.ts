// The database list (#view-list) and its empty state (#view-empty): one card per
// database with its state, facts, last error and actions.
import * as api from "../api";
import { asError, dbErrorText, dbFacts, formatAgo, sortDbs, stateLabel, type DbView } from "../logic";
import { allDbs, dropDb, getDb, listShown, listView, setDbs } from "../state";
import { ask } from "./confirm";
import { $, button, show, showError } from "./dom";
import { openRestore } from "./restore";

function dbItem(db: DbView, now: number): HTMLLIElement {
  const li = document.createElement("li");
  li.className = "db";
  li.dataset.path = db.path;
  li.dataset.state = db.state;
  const h = document.createElement("h3");
  const name = document.createElement("span");
  name.textContent = db.name;
  const st = stateLabel(db.state);
  const badge = document.createElement("span");
  badge.className = `badge state ${db.state}`;
  badge.innerHTML = `<span aria-hidden="true"></span><span class="state-text"></span>`;
  (badge.firstChild as HTMLElement).textContent = st.icon;
  (badge.lastChild as HTMLElement).textContent = st.text;
  h.append(name, badge);
  const path = document.createElement("div");
  path.className = "path";
  path.textContent = db.path;
  const dl = document.createElement("dl");
  for (const [k, v, cls] of dbFacts(db, now)) {
    const fact = document.createElement("div");
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    dd.className = cls;
    fact.append(dt, dd);
    dl.append(fact);
  }
  li.append(h, path, dl);
  // The error is a string from today's backend and {code, message} from the next.
  const error = dbErrorText(db.error);
  if (error) {
    const err = document.createElement("p");
    err.className = "err";
    err.textContent = error;
    li.append(err);
  }
  const row = document.createElement("div");
  row.className = "row";
  const paused = db.state === "paused";
  row.append(
    button("Restore points…", "restore-btn", () => void openRestore(db.path), `Restore points of ${db.name}`),
    button("Sync now", "sync-btn", () => void act(() => api.syncNow(db.path)), `Sync ${db.name} now`),
    button(paused ? "Resume" : "Pause", "pause-btn",
      () => void act(() => (paused ? api.resumeDatabase(db.path) : api.pauseDatabase(db.path))),
      `${paused ? "Resume" : "Pause"} ${db.name}`),
    button("Remove", "remove-btn", () => void removeDb(db), `Remove ${db.name} (keeps its backups)`),
  );
  li.append(row);
  return li;
}

/** Rebuilds the list, keeping the focus on the same button of the same database. */
export function renderList() {
  const ul = $("db-list");
  const now = Date.now();
  const focused = document.activeElement;
  const focusKey = focused instanceof HTMLButtonElement ? [focused.closest("li")?.dataset.path, focused.className] : null;
  ul.replaceChildren(...sortDbs(allDbs()).map((d) => dbItem(d, now)));
  if (focusKey) {
    const again = [...ul.querySelectorAll<HTMLLIElement>("li")].find((li) => li.dataset.path === focusKey[0]);
    again?.querySelector<HTMLButtonElement>(`button.${focusKey[1]}`)?.focus();
  }
}

/** Ages the "Last sync" cells only: rebuilding the list would swallow a click in progress. */
export function refreshAges() {
  const now = Date.now();
  for (const li of document.querySelectorAll<HTMLLIElement>("li.db")) {
    const db = getDb(li.dataset.path ?? "");
    const cell = li.querySelector(".last-sync");
    if (db && cell) cell.textContent = formatAgo(db.last_sync_ms, now);
  }
}

/** Shows the list, or the empty state when there is nothing in it. */
export function showList() {
  show(listView());
  renderList();
}

/** Runs a database action. Its reply is not shown: the new state arrives as a
 * db-status event, and a reply could be older than it. */
async function act(run: () => Promise<unknown>) {
  try {
    await run();
  } catch (e) {
    showError($("banner"), asError(e));
  }
}

async function removeDb(db: DbView) {
  if (!(await ask(`Stop backing up ${db.name}? Its backups at ${db.destination} are kept.`, `Remove ${db.name}`))) return;
  try {
    await api.removeDatabase(db.path);
    dropDb(db.path);
    showList();
  } catch (e) {
    showError($("banner"), asError(e));
  }
}

/** Reloads every database from the app; the list shows it if it is on screen. */
export async function reload() {
  setDbs(await api.listDatabases());
  if (listShown()) showList();
}
