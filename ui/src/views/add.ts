// The "Add a database" screen (#view-add): check a file, pick a destination (a folder,
// S3, WebDAV, SFTP, Azure Blob, Google Cloud Storage, NATS or OSS), test it, add the
// database, or import a Litestream config.
import * as api from "../api";
import type { DestinationKind } from "../api";
import {
  asError, FORM_FIELDS, FORM_SECRETS, formatSize, formDestination, importResultText, journalAdvice, keychainText, testResultText,
} from "../logic";
import { putDb } from "../state";
import { $, clearError, input, show, showError } from "./dom";

/** Each kind's radio button is `dest-KIND`, its fields `dest-KIND-fields`. */
const KINDS = Object.keys(FORM_FIELDS) as DestinationKind[];

function kind(): DestinationKind {
  return KINDS.find((k) => input(`dest-${k}`).checked) ?? "folder";
}

/** The destination and keys the chosen kind's fields describe. */
function destination() {
  const chosen = kind();
  const values: Record<string, string> = {};
  const inputs = $(`dest-${chosen}-fields`).querySelectorAll<HTMLInputElement | HTMLTextAreaElement>(
    "[data-field], [data-secret]",
  );
  for (const el of inputs) values[el.dataset.field ?? el.dataset.secret ?? ""] = el.value;
  return formDestination(chosen, values);
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
    const chosen = kind();
    for (const k of KINDS) $(`dest-${k}-fields`).hidden = k !== chosen;
    const secrets = FORM_SECRETS[chosen].length > 0;
    $("dest-keychain").hidden = !secrets;
    if (secrets) {
      $("dest-keychain").textContent = keychainText(await api.keychainStatus());
    }
  };
  for (const k of KINDS) input(`dest-${k}`).addEventListener("change", () => void kinds());
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
  $("sftp-key-browse").addEventListener("click", async () => {
    const p = await api.pickPath("Choose the private key file", false);
    if (p !== null) input("sftp-key").value = p;
  });
  $("gs-credentials-browse").addEventListener("click", async () => {
    const p = await api.pickPath("Choose the service-account key file", false);
    if (p !== null) input("gs-credentials").value = p;
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
      // Secrets do not stay in the form once they are in the keychain.
      for (const el of document.querySelectorAll<HTMLInputElement>("#add-form [data-secret]")) el.value = "";
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
