// The "Add a database" screen (#view-add): check a file, pick a folder, S3, WebDAV or
// SFTP destination, test it, add the database, or import a Litestream config.
import * as api from "../api";
import type { DestinationKind } from "../api";
import {
  asError, formatSize, formDestination, importResultText, journalAdvice, keychainText, testResultText,
} from "../logic";
import { putDb } from "../state";
import { $, clearError, input, show, showError } from "./dom";

/** Each kind's radio button is `dest-KIND`, its fields `dest-KIND-fields`. */
const KINDS: DestinationKind[] = ["folder", "s3", "webdav", "sftp"];

function kind(): DestinationKind {
  return KINDS.find((k) => input(`dest-${k}`).checked) ?? "folder";
}

/** The destination and keys the form's fields describe. */
function destination() {
  const v = (id: string) => input(id).value;
  return formDestination({
    kind: kind(),
    folder: v("add-folder"),
    endpoint: v("s3-endpoint"),
    bucket: v("s3-bucket"),
    path: v("s3-path"),
    region: v("s3-region"),
    accessKeyId: v("s3-key"),
    secretAccessKey: v("s3-secret"),
    webdavUrl: v("webdav-url"),
    webdavPath: v("webdav-path"),
    webdavUser: v("webdav-user"),
    webdavPassword: v("webdav-password"),
    sftpHost: v("sftp-host"),
    sftpUser: v("sftp-user"),
    sftpPath: v("sftp-path"),
    sftpPassword: v("sftp-password"),
    sftpKeyPath: v("sftp-key"),
    sftpHostKey: $<HTMLTextAreaElement>("sftp-host-key").value,
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
    const chosen = kind();
    for (const k of KINDS) $(`dest-${k}-fields`).hidden = k !== chosen;
    $("dest-keychain").hidden = chosen === "folder";
    if (chosen !== "folder") {
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
      for (const id of ["s3-secret", "webdav-password", "sftp-password"]) input(id).value = "";
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
