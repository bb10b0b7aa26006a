// The "Add a database" screen (#view-add): check a file, pick a folder or S3
// destination, test it, add the database, or import a Litestream config.
import * as api from "../api";
import {
  asError, formatSize, formDestination, importResultText, journalAdvice, keychainText, testResultText,
} from "../logic";
import { putDb } from "../state";
import { $, clearError, input, show, showError } from "./dom";

/** The destination and keys the form's fields describe. */
function destination() {
  return formDestination({
    s3: input("dest-s3").checked,
    folder: input("add-folder").value,
    endpoint: input("s3-endpoint").value,
    bucket: input("s3-bucket").value,
    path: input("s3-path").value,
    region: input("s3-region").value,
    accessKeyId: input("s3-key").value,
    secretAccessKey: input("s3-secret").value,
  });
}

/** Inspects the database file; false (with the error shown) when it is no good. */
async function checkDb(): Promise<boolean> {
  const info = $("add-db-info");
  clearError($("add-error"));
  info.textContent = "Checking…";
  try {
    const r = await api.inspectDatabase(input("add-path").value);
    info.textContent = `${journalAdvice(r.journal_mode, r.is_wal)} (${formatSize(r.size)})`;
    return true;
  } catch (e) {
    info.textContent = "";
    showError($("add-error"), asError(e));
    return false;
  }
}

export function openAdd() {
  for (const id of ["add-db-info", "add-result"]) $(id).textContent = "";
  clearError($("add-error"));
  show("add");
  input("add-path").focus();
}

/** Wires the form; `done` shows the list after a database is added or on Cancel. */
export function wireAdd(done: () => void) {
  const kinds = async () => {
    $("dest-folder-fields").hidden = !input("dest-folder").checked;
    $("dest-s3-fields").hidden = !input("dest-s3").checked;
    if (input("dest-s3").checked) {
      $("s3-keychain").textContent = keychainText(await api.keychainStatus());
    }
  };
  input("dest-folder").addEventListener("change", () => void kinds());
  input("dest-s3").addEventListener("change", () => void kinds());
  $("add-check").addEventListener("click", () => void checkDb());
  $("add-browse").addEventListener("click", async () => {
    const p = await api.pickPath("Choose a SQLite database", false);
    if (p !== null) {
      input("add-path").value = p;
      await checkDb();
    }
  });
  $("add-folder-browse").addEventListener("click", async () => {
    const p = await api.pickPath("Choose the backup folder", true);
    if (p !== null) input("add-folder").value = p;
  });
  $("add-test").addEventListener("click", async () => {
    clearError($("add-error"));
    $("add-result").textContent = "Testing…";
    try {
      const { destination: dest, keys } = destination();
      $("add-result").textContent = testResultText(await api.testDestination(dest, keys));
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
      const { destination: dest, keys } = destination();
      putDb(await api.addDatabase(input("add-path").value, dest, keys));
      input("add-path").value = "";
      input("add-folder").value = "";
      done();
    } catch (e) {
      $("add-result").textContent = "";
      showError($("add-error"), asError(e));
    }
  });
  $("add-cancel").addEventListener("click", done);
  $("add-import").addEventListener("click", async () => {
    const p = await api.pickPath("Choose a Litestream config file", false);
    if (p === null) return;
    try {
      const [added, skipped] = await api.importConfig(p);
      for (const d of added) putDb(d);
      $("add-result").textContent = importResultText(added.length, skipped);
    } catch (e) {
      showError($("add-error"), asError(e));
    }
  });
}
