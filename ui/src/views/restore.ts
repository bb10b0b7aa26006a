// The restore screen (#view-restore): the timeline of restore points, choosing a point
// or a time, restoring as a copy or in place with progress, revealing the result and
// undoing an in-place restore from its safety copy.
import * as api from "../api";
import {
  asError, formatTime, groupPoints, kindLabel, localInputValue, phaseText, pointAtInput, progressStep,
  restorableRange, selectedText, type PointView,
} from "../logic";
import {
  choosePoint, chosenPoint, getDb, lastRestoredFile, offerUndoFrom, restorePointsShown, restoreTarget,
  setLastRestored, setPoints, startRestore, undoOffer,
} from "../state";
import { ask } from "./confirm";
import { $, clearError, input, show, showError } from "./dom";

function choose(p: PointView | null) {
  choosePoint(p);
  $("restore-selected").textContent = selectedText(p);
  for (const r of document.querySelectorAll<HTMLInputElement>('input[name="point"]')) {
    r.checked = p !== null && r.value === String(p.txid);
  }
}

function renderTimeline() {
  const points = restorePointsShown();
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

/** Opens the screen for a database and loads its points, the newest selected. */
export async function openRestore(path: string) {
  startRestore(path);
  const db = getDb(path);
  $("restore-title").textContent = `Restore points of ${db?.name ?? path}`;
  clearError($("restore-error"));
  $("restore-result").textContent = "";
  $("restore-reveal").hidden = true;
  $("restore-undo").hidden = true;
  $("restore-progress-box").hidden = true;
  input("mode-copy").checked = true;
  modeChanged();
  input("restore-time").value = localInputValue(Date.now());
  show("restore");
  $("restore-range").textContent = "Loading…";
  try {
    const points = await api.restorePoints(path);
    setPoints(points);
    renderTimeline();
    choose(points.length ? points[points.length - 1] : null);
    input("restore-output").value = await api.defaultRestorePath(path);
  } catch (e) {
    setPoints([]);
    renderTimeline();
    showError($("restore-error"), asError(e));
  }
}

/** The output field is only for "A copy where I choose". */
function modeChanged() {
  const chooseMode = input("mode-choose").checked;
  input("restore-output").disabled = !chooseMode;
  ($("restore-output-browse") as HTMLButtonElement).disabled = !chooseMode;
}

/** A `restore-progress` event: moves the bar and says the phase. */
export function showProgress(p: api.RestoreProgress) {
  $<HTMLProgressElement>("restore-progress").value = progressStep(p.phase);
  $("restore-phase").textContent = phaseText(p);
}

/** Offers to undo with a safety copy, and says where it is (the text the e2e test
 * reads the path from: "kept at <path>"). */
function offerUndo(db: string, safety: string) {
  const s = document.createElement("p");
  s.textContent = `The database as it was before is kept at ${safety}`;
  $("restore-result").append(s);
  offerUndoFrom({ db, safety });
  $("restore-undo").hidden = false;
  ($("restore-undo") as HTMLButtonElement).disabled = false;
}

async function restore() {
  const path = restoreTarget();
  if (!path) return;
  clearError($("restore-error"));
  $("restore-result").textContent = "";
  $("restore-reveal").hidden = true;
  $("restore-undo").hidden = true;
  offerUndoFrom(null);
  const inPlace = input("mode-inplace").checked;
  if (inPlace && !(await ask("Replace the database itself with this restore point? A safety copy of it is made first.", "Restore in place"))) return;
  ($("restore-go") as HTMLButtonElement).disabled = true;
  $("restore-progress-box").hidden = false;
  $<HTMLProgressElement>("restore-progress").value = 0;
  $("restore-phase").textContent = "Starting…";
  try {
    const chosen = chosenPoint();
    const txid = chosen ? chosen.txid : null;
    const r = inPlace
      ? await api.restoreInPlace(path, txid)
      : await api.restoreCopy(path, txid, input("mode-choose").checked ? input("restore-output").value : null);
    $<HTMLProgressElement>("restore-progress").value = 3;
    $("restore-phase").textContent = "Done";
    setLastRestored(r.output);
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
    if (r.safety_copy) offerUndo(path, r.safety_copy);
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
}

async function undo() {
  const btn = $("restore-undo") as HTMLButtonElement;
  const offer = undoOffer();
  if (!offer) return;
  const { db, safety } = offer;
  if (!(await ask(`Put the database back as it was before the restore, from ${safety}? The current state gets a safety copy first.`, "Undo restore"))) return;
  clearError($("restore-error"));
  btn.disabled = true;
  try {
    const r = await api.undoRestore(db, safety);
    const res = $("restore-result");
    res.replaceChildren();
    const line = document.createElement("p");
    line.id = "restore-undone";
    line.textContent = "✓ Undone: the database is back as it was before the restore (PRAGMA integrity_check: ok).";
    res.append(line);
    btn.hidden = true;
    offerUndoFrom(null);
    // The undo made a safety copy of its own: that one can be put back in turn.
    if (r.safety_copy) offerUndo(db, r.safety_copy);
  } catch (e) {
    btn.disabled = false;
    showError($("restore-error"), asError(e));
  }
}

/** Wires the screen; `back` shows the list. */
export function wireRestore(back: () => void) {
  for (const id of ["mode-copy", "mode-choose", "mode-inplace"]) input(id).addEventListener("change", modeChanged);
  $("restore-back").addEventListener("click", back);
  $("restore-time-pick").addEventListener("click", () => {
    const p = pointAtInput(restorePointsShown(), input("restore-time").value);
    choose(p);
    if (!p) $("restore-selected").textContent = "No restore point at or before that time.";
  });
  $("restore-output-browse").addEventListener("click", async () => {
    const p = await api.pickSavePath("Restore as", input("restore-output").value);
    if (p !== null) input("restore-output").value = p;
  });
  $("restore-reveal").addEventListener("click", async () => {
    const file = lastRestoredFile();
    if (!file) return;
    try {
      await api.reveal(file);
    } catch (e) {
      showError($("restore-error"), asError(e));
    }
  });
  $("restore-go").addEventListener("click", () => void restore());
  $("restore-undo").addEventListener("click", () => void undo());
}
