// The window: views over the commands and events of src-tauri. Each view is plain DOM;
// formatting lives in logic.ts.
import { invoke } from "@tauri-apps/api/core";
import { listen } from "@tauri-apps/api/event";
import { open as openDialog, save as saveDialog } from "@tauri-apps/plugin-dialog";
import {
  asError, errorHint, formatAgo, formatLag, formatSize, formatTime, groupPoints, journalAdvice,
  pointAt, restorableRange, sortDbs, stateLabel, type AppError, type DbView, type PointView,
} from "./logic";

type View = "empty" | "list" | "add" | "restore" | "settings";

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const input = (id: string) => $<HTMLInputElement>(id);

const dbs = new Map<string, DbView>();
let view: View = "empty";
let restoreDb: string | null = null;
let points: PointView[] = [];
let chosen: PointView | null = null;
let lastRestored: string | null = null;

function show(v: View) {
  view = v;
  for (const name of ["empty", "list", "add", "restore", "settings"] as View[]) {
    $(`view-${name}`).hidden = name !== v;
  }
  const heading = document.querySelector<HTMLElement>(`#view-${v} h2`);
  heading?.setAttribute("tabindex", "-1");
  heading?.focus();
}

function showList() {
  show(dbs.size === 0 ? "empty" : "list");
  renderList();
}

function showError(el: HTMLElement, e: AppError) {
  const hint = errorHint(e.code);
  el.textContent = hint ? `${e.message} — ${hint}` : e.message;
  el.dataset.code = e.code;
  el.hidden = false;
}

function clearError(el: HTMLElement) {
  el.textContent = "";
  el.hidden = true;
  delete el.dataset.code;
}

/** An in-window confirmation (keyboard: Enter/Space on the focused button, Escape cancels). */
function ask(question: string, yes: string): Promise<boolean> {
  const box = $("confirm");
  const back = document.activeElement as HTMLElement | null;
  $("confirm-text").textContent = question;
  $("confirm-yes").textContent = yes;
  box.hidden = false;
  $("confirm-yes").focus();
  return new Promise((resolve) => {
    const done = (answer: boolean) => {
      box.hidden = true;
      $("confirm-yes").removeEventListener("click", onYes);
      $("confirm-no").removeEventListener("click", onNo);
      box.removeEventListener("keydown", onKey);
      back?.focus();
      resolve(answer);
    };
    const onYes = () => done(true);
    const onNo = () => done(false);
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Escape") done(false);
    };
    $("confirm-yes").addEventListener("click", onYes);
    $("confirm-no").addEventListener("click", onNo);
    box.addEventListener("keydown", onKey);
  });
}

// ---- Database list ----

function button(label: string, cls: string, onClick: () => void, ariaLabel?: string): HTMLButtonElement {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.className = cls;
  if (ariaLabel) b.setAttribute("aria-label", ariaLabel);
  b.addEventListener("click", onClick);
  return b;
}

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
  const facts: [string, string, string][] = [
    ["Last sync", formatAgo(db.last_sync_ms, now), "last-sync"],
    ["Lag", formatLag(db.lag_ms), "lag"],
    ["Size", formatSize(db.size), "size"],
    ["Backed up to", db.destination, "destination"],
    ["Position", db.replica_txid === null ? "—" : `TXID ${db.replica_txid}`, "txid"],
  ];
  for (const [k, v, cls] of facts) {
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
  if (db.error) {
    const err = document.createElement("p");
    err.className = "err";
    err.textContent = db.error;
    li.append(err);
  }
  const row = document.createElement("div");
  row.className = "row";
  const paused = db.state === "paused";
  row.append(
    button("Restore points…", "restore-btn", () => openRestore(db.path), `Restore points of ${db.name}`),
    button("Sync now", "sync-btn", () => act("sync_now", db.path), `Sync ${db.name} now`),
    button(paused ? "Resume" : "Pause", "pause-btn", () => act(paused ? "resume_database" : "pause_database", db.path),
      `${paused ? "Resume" : "Pause"} ${db.name}`),
    button("Remove", "remove-btn", () => removeDb(db), `Remove ${db.name} (keeps its backups)`),
  );
  li.append(row);
  return li;
}

function renderList() {
  const ul = $("db-list");
  const now = Date.now();
  const focused = document.activeElement;
  const focusKey = focused instanceof HTMLButtonElement ? [focused.closest("li")?.dataset.path, focused.className] : null;
  ul.replaceChildren(...sortDbs([...dbs.values()]).map((d) => dbItem(d, now)));
  if (focusKey) {
    const again = [...ul.querySelectorAll<HTMLLIElement>("li")].find((li) => li.dataset.path === focusKey[0]);
    again?.querySelector<HTMLButtonElement>(`button.${focusKey[1]}`)?.focus();
  }
}

function refreshAges() {
  const now = Date.now();
  for (const li of document.querySelectorAll<HTMLLIElement>("li.db")) {
    const db = dbs.get(li.dataset.path ?? "");
    const cell = li.querySelector(".last-sync");
    if (db && cell) cell.textContent = formatAgo(db.last_sync_ms, now);
  }
}

async function act(cmd: string, path: string) {
  try {
    // The new state arrives as a db-status event (a reply could be older than it).
    await invoke(cmd, { path });
  } catch (e) {
    showError($("banner"), asError(e));
  }
}

async function removeDb(db: DbView) {
  if (!(await ask(`Stop backing up ${db.name}? Its backups at ${db.destination} are kept.`, `Remove ${db.name}`))) return;
  try {
    await invoke("remove_database", { path: db.path });
    dbs.delete(db.path);
    showList();
  } catch (e) {
    showError($("banner"), asError(e));
  }
}

async function reload() {
  const list = await invoke<DbView[]>("list_databases");
  dbs.clear();
  for (const d of list) dbs.set(d.path, d);
  if (view === "empty" || view === "list") showList();
}

// ---- Add a database ----

function destination() {
  if (input("dest-s3").checked) {
    return {
      destination: {
        kind: "s3", endpoint: input("s3-endpoint").value, bucket: input("s3-bucket").value,
        path: input("s3-path").value, region: input("s3-region").value,
      },
      keys: input("s3-key").value || input("s3-secret").value
        ? { access_key_id: input("s3-key").value, secret_access_key: input("s3-secret").value }
        : null,
    };
  }
  return { destination: { kind: "folder", path: input("add-folder").value }, keys: null };
}

async function checkDb(): Promise<boolean> {
  const info = $("add-db-info");
  clearError($("add-error"));
  info.textContent = "Checking…";
  try {
    const r = await invoke<{ journal_mode: string; is_wal: boolean; size: number }>("inspect_database", {
      path: input("add-path").value,
    });
    info.textContent = `${journalAdvice(r.journal_mode, r.is_wal)} (${formatSize(r.size)})`;
    return true;
  } catch (e) {
    info.textContent = "";
    showError($("add-error"), asError(e));
    return false;
  }
}

function openAdd() {
  for (const id of ["add-db-info", "add-result"]) $(id).textContent = "";
  clearError($("add-error"));
  show("add");
  input("add-path").focus();
}

function wireAdd() {
  const kinds = async () => {
    $("dest-folder-fields").hidden = !input("dest-folder").checked;
    $("dest-s3-fields").hidden = !input("dest-s3").checked;
    if (input("dest-s3").checked) {
      const why = await invoke<string | null>("keychain_status");
      $("s3-keychain").textContent = why
        ? `⚠ ${why}`
        : "✓ Keys are kept in the system keychain, never in Tideline's settings file.";
    }
  };
  input("dest-folder").addEventListener("change", () => void kinds());
  input("dest-s3").addEventListener("change", () => void kinds());
  $("add-check").addEventListener("click", () => void checkDb());
  $("add-browse").addEventListener("click", async () => {
    const p = await openDialog({ title: "Choose a SQLite database", multiple: false, directory: false });
    if (typeof p === "string") {
      input("add-path").value = p;
      await checkDb();
    }
  });
  $("add-folder-browse").addEventListener("click", async () => {
    const p = await openDialog({ title: "Choose the backup folder", directory: true, multiple: false });
    if (typeof p === "string") input("add-folder").value = p;
  });
  $("add-test").addEventListener("click", async () => {
    clearError($("add-error"));
    $("add-result").textContent = "Testing…";
    try {
      const r = await invoke<{ destination: string; replica_txid: number | null }>("test_destination", destination());
      $("add-result").textContent =
        `✓ ${r.destination} can be reached` + (r.replica_txid !== null ? ` and already holds a backup (TXID ${r.replica_txid}).` : ".");
    } catch (e) {
      $("add-result").textContent = "";
      showError($("add-error"), asError(e));
    }
  });
  $("add-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearError($("add-error"));
    $("add-result").textContent = "Adding…";
    try {
      const v = await invoke<DbView>("add_database", { path: input("add-path").value, ...destination() });
      dbs.set(v.path, v);
      input("add-path").value = "";
      input("add-folder").value = "";
      showList();
    } catch (e) {
      $("add-result").textContent = "";
      showError($("add-error"), asError(e));
    }
  });
  $("add-cancel").addEventListener("click", showList);
  $("add-import").addEventListener("click", async () => {
    const p = await openDialog({ title: "Choose a Litestream config file", multiple: false, directory: false });
    if (typeof p !== "string") return;
    try {
      const [added, skipped] = await invoke<[DbView[], string[]]>("import_config", { path: p });
      for (const d of added) dbs.set(d.path, d);
      $("add-result").textContent = `Imported ${added.length} database(s).` + (skipped.length ? ` Not imported: ${skipped.join("; ")}` : "");
    } catch (e) {
      showError($("add-error"), asError(e));
    }
  });
}

// ---- Restore ----

function kindLabel(k: PointView["kind"]): string {
  return k === "snapshot" ? "snapshot" : k === "compacted" ? "compacted window" : "change";
}

function choose(p: PointView | null) {
  chosen = p;
  $("restore-selected").textContent = p
    ? `Selected: the state of ${formatTime(p.created_at_ms)} (TXID ${p.txid}).`
    : "Select a restore point or a time.";
  for (const r of document.querySelectorAll<HTMLInputElement>('input[name="point"]')) {
    r.checked = p !== null && r.value === String(p.txid);
  }
}

function renderTimeline() {
  $("restore-range").textContent = restorableRange(points);
  const box = $("restore-timeline");
  box.replaceChildren();
  for (const g of groupPoints(points)) {
    const h = document.createElement("h3");
    h.textContent = `${g.title} (${g.points.length})`;
    const ul = document.createElement("ul");
    ul.setAttribute("aria-label", g.title);
    for (const p of g.points) {
      const li = document.createElement("li");
      const label = document.createElement("label");
      const r = document.createElement("input");
      r.type = "radio";
      r.name = "point";
      r.value = String(p.txid);
      r.dataset.txid = String(p.txid);
      r.addEventListener("change", () => choose(p));
      const t = document.createElement("span");
      t.textContent = formatTime(p.created_at_ms);
      const k = document.createElement("span");
      k.className = "kind";
      k.textContent = `${kindLabel(p.kind)} · TXID ${p.txid}`;
      label.append(r, t, k);
      li.append(label);
      ul.append(li);
    }
    box.append(h, ul);
  }
}

async function openRestore(path: string) {
  restoreDb = path;
  const db = dbs.get(path);
  $("restore-title").textContent = `Restore points of ${db?.name ?? path}`;
  clearError($("restore-error"));
  $("restore-result").textContent = "";
  $("restore-reveal").hidden = true;
  $("restore-undo").hidden = true;
  undoFrom = null;
  $("restore-progress-box").hidden = true;
  input("mode-copy").checked = true;
  modeChanged();
  const now = new Date();
  now.setMinutes(now.getMinutes() - now.getTimezoneOffset());
  input("restore-time").value = now.toISOString().slice(0, 19);
  show("restore");
  $("restore-range").textContent = "Loading…";
  try {
    points = await invoke<PointView[]>("restore_points", { path });
    renderTimeline();
    choose(points.length ? points[points.length - 1] : null);
    input("restore-output").value = await invoke<string>("default_restore_path", { path });
  } catch (e) {
    points = [];
    renderTimeline();
    showError($("restore-error"), asError(e));
  }
}

function modeChanged() {
  const chooseMode = input("mode-choose").checked;
  input("restore-output").disabled = !chooseMode;
  ($("restore-output-browse") as HTMLButtonElement).disabled = !chooseMode;
}

function wireRestore() {
  for (const id of ["mode-copy", "mode-choose", "mode-inplace"]) input(id).addEventListener("change", modeChanged);
  $("restore-back").addEventListener("click", showList);
  $("restore-time-pick").addEventListener("click", () => {
    const v = input("restore-time").value;
    const ms = v ? new Date(v).getTime() : NaN;
    const p = Number.isNaN(ms) ? null : pointAt(points, ms);
    choose(p);
    if (!p) $("restore-selected").textContent = "No restore point at or before that time.";
  });
  $("restore-output-browse").addEventListener("click", async () => {
    const p = await saveDialog({ title: "Restore as", defaultPath: input("restore-output").value });
    if (typeof p === "string") input("restore-output").value = p;
  });
  $("restore-reveal").addEventListener("click", async () => {
    if (!lastRestored) return;
    try {
      await invoke("reveal", { path: lastRestored });
    } catch (e) {
      showError($("restore-error"), asError(e));
    }
  });
  $("restore-go").addEventListener("click", async () => {
    if (!restoreDb) return;
    clearError($("restore-error"));
    $("restore-result").textContent = "";
    $("restore-reveal").hidden = true;
    $("restore-undo").hidden = true;
    undoFrom = null;
    const inPlace = input("mode-inplace").checked;
    if (inPlace && !(await ask("Replace the database itself with this restore point? A safety copy of it is made first.", "Restore in place"))) return;
    ($("restore-go") as HTMLButtonElement).disabled = true;
    $("restore-progress-box").hidden = false;
    $<HTMLProgressElement>("restore-progress").value = 0;
    $("restore-phase").textContent = "Starting…";
    try {
      const txid = chosen ? chosen.txid : null;
      const r = inPlace
        ? await invoke<{ output: string; safety_copy: string | null; verified: boolean }>("restore_in_place", { path: restoreDb, txid })
        : await invoke<{ output: string; txid: number; bytes: number; verified: boolean }>("restore_copy", {
            path: restoreDb, txid, output: input("mode-choose").checked ? input("restore-output").value : null,
          });
      $<HTMLProgressElement>("restore-progress").value = 3;
      $("restore-phase").textContent = "Done";
      lastRestored = r.output;
      const res = $("restore-result");
      res.replaceChildren();
      const line = document.createElement("p");
      line.textContent = inPlace
        ? `✓ Restored in place and verified (PRAGMA integrity_check: ok).`
        : `✓ Restored and verified (PRAGMA integrity_check: ok):`;
      const out = document.createElement("code");
      out.id = "restore-output-path";
      out.textContent = r.output;
      res.append(line, out);
      if ("safety_copy" in r && r.safety_copy) offerUndo(restoreDb, r.safety_copy);
      $("restore-reveal").hidden = false;
      $("restore-reveal").scrollIntoView?.({ block: "end" });
      $("restore-reveal").focus();
    } catch (e) {
      $("restore-progress-box").hidden = true;
      showError($("restore-error"), asError(e));
      $("restore-error").scrollIntoView?.({ block: "end" });
    } finally {
      ($("restore-go") as HTMLButtonElement).disabled = false;
    }
  });
}

/** The safety copy the last in-place restore (or undo) made, which the Undo button
 * puts back (the engine's undo_restore, which makes a safety copy of its own first). */
let undoFrom: { db: string; safety: string } | null = null;

function offerUndo(db: string, safety: string) {
  const s = document.createElement("p");
  s.textContent = `The database as it was before is kept at ${safety}`;
  $("restore-result").append(s);
  undoFrom = { db, safety };
  $("restore-undo").hidden = false;
  ($("restore-undo") as HTMLButtonElement).disabled = false;
}

function wireUndo() {
  const undo = $("restore-undo") as HTMLButtonElement;
  undo.addEventListener("click", async () => {
    if (!undoFrom) return;
    const { db, safety } = undoFrom;
    if (!(await ask(`Put the database back as it was before the restore, from ${safety}? The current state gets a safety copy first.`, "Undo restore"))) return;
    clearError($("restore-error"));
    undo.disabled = true;
    try {
      const r = await invoke<{ output: string; safety_copy: string | null }>("undo_restore", { path: db, safetyCopy: safety });
      const res = $("restore-result");
      res.replaceChildren();
      const line = document.createElement("p");
      line.id = "restore-undone";
      line.textContent = "✓ Undone: the database is back as it was before the restore (PRAGMA integrity_check: ok).";
      res.append(line);
      undo.hidden = true;
      undoFrom = null;
      if (r.safety_copy) offerUndo(db, r.safety_copy);
    } catch (e) {
      undo.disabled = false;
      showError($("restore-error"), asError(e));
    }
  });
}

// ---- Settings ----

async function openSettings() {
  const s = await invoke<{ sync_interval_ms: number; monitor_interval_ms: number; notifications: boolean }>("get_settings");
  input("set-sync").value = String(s.sync_interval_ms);
  input("set-monitor").value = String(s.monitor_interval_ms);
  input("set-notify").checked = s.notifications;
  $("settings-result").textContent = "";
  show("settings");
}

function wireSettings() {
  $("settings-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await invoke("save_settings", {
        settings: {
          sync_interval_ms: Number(input("set-sync").value),
          monitor_interval_ms: Number(input("set-monitor").value),
          notifications: input("set-notify").checked,
        },
      });
      $("settings-result").textContent = "✓ Saved.";
    } catch (e) {
      const err = asError(e);
      $("settings-result").textContent = `⚠ ${err.message}`;
    }
  });
}

// ---- Start ----

export async function start() {
  $("nav-list").addEventListener("click", showList);
  $("nav-add").addEventListener("click", openAdd);
  $("empty-add").addEventListener("click", openAdd);
  $("nav-settings").addEventListener("click", () => void openSettings());
  wireAdd();
  wireRestore();
  wireUndo();
  wireSettings();
  await listen<DbView>("db-status", (e) => {
    dbs.set(e.payload.path, e.payload);
    if (view === "empty") showList();
    else if (view === "list") renderList();
  });
  await listen<string>("db-removed", (e) => {
    dbs.delete(e.payload);
    if (view === "list" || view === "empty") showList();
  });
  await listen("db-list-changed", () => void reload());
  await listen<{ path: string; phase: string; files: number | null }>("restore-progress", (e) => {
    const steps: Record<string, number> = { planning: 1, writing: 2, verified: 3 };
    $<HTMLProgressElement>("restore-progress").value = steps[e.payload.phase] ?? 0;
    $("restore-phase").textContent =
      e.payload.phase === "planning" ? "Choosing files…"
      : e.payload.phase === "writing" ? `Writing the database from ${e.payload.files} file(s)…`
      : "Verified";
  });
  // Relative times ("12 s ago") age on screen; data still only arrives by events.
  // Only the text changes: rebuilding the list would swallow a click in progress.
  window.setInterval(() => {
    if (view === "list") refreshAges();
  }, 5000);
  await reload();
  document.body.dataset.ready = "true";
}

void start();
