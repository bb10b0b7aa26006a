// The window's only door to the app: one typed function per Tauri command, event and
// dialog it uses, with types that mirror src-tauri (dto.rs, error.rs, store.rs,
// secrets.rs, commands.rs). Nothing else imports @tauri-apps/*, so a change on the
// Rust side shows up here, as a type error, and nowhere else.
import { invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import { open as openDialog, save as saveDialog } from "@tauri-apps/plugin-dialog";

// ---- Types (field names are the Rust ones: serde keeps them snake_case) ----

/** `dto::state_name`. */
export type SyncState = "starting" | "in_sync" | "syncing" | "lagging" | "error" | "paused";

/** `PointView::kind`. */
export type PointKind = "snapshot" | "compacted" | "change";

/** `RestoreProgress::phase`. */
export type RestorePhase = "planning" | "writing" | "verified";

/** The engine's `ErrorCode` (crates/engine/src/error.rs) and the app's `AppCode`
 * (src-tauri/src/error.rs), serialised snake_case. */
export type ErrorCode =
  | "database_missing"
  | "not_sqlite"
  | "not_wal"
  | "already_added"
  | "not_found"
  | "destination_missing"
  | "destination_unavailable"
  | "destination_unreachable"
  | "wrong_credentials"
  | "access_denied"
  | "no_such_bucket"
  | "clock_skew"
  | "wrong_region"
  | "invalid_config"
  | "unsupported"
  | "in_use"
  | "paused"
  | "output_exists"
  | "no_restore_point"
  | "integrity_failed"
  | "replica_corrupt"
  | "local_state_damaged"
  | "host_key_rejected"
  | "invalid_input"
  | "keychain_unavailable"
  | "disk_full"
  | "io"
  | "internal";

/** `error::AppError`: what every failing command rejects with. */
export interface AppError {
  code: ErrorCode;
  message: string;
}

/** `dto::DbView` (also the `db-status` payload). Times are ms since the epoch. */
export interface DbView {
  path: string;
  name: string;
  destination: string;
  state: SyncState;
  last_sync_ms: number | null;
  lag_ms: number | null;
  size: number;
  local_txid: number | null;
  replica_txid: number | null;
  /** Becoming an `AppError` on the Rust side; a plain string until then, so read it
   * through `dbErrorText` (logic.ts), which takes either. */
  error: AppError | null;
}

/** `dto::PointView`. */
export interface PointView {
  txid: number;
  created_at_ms: number;
  kind: PointKind;
  level: number;
}

/** `dto::InspectView`. */
export interface InspectView {
  path: string;
  size: number;
  journal_mode: string;
  is_wal: boolean;
}

/** `dto::RestoreView`. `safety_copy` is set by in-place restores and their undo. */
export interface RestoreView {
  output: string;
  txid: number;
  bytes: number;
  verified: boolean;
  safety_copy: string | null;
}

/** `dto::RestoreProgress` (the `restore-progress` payload). */
export interface RestoreProgress {
  path: string;
  phase: RestorePhase;
  files?: number;
}

/** `dto::TestView`. */
export interface TestView {
  destination: string;
  replica_txid: number | null;
}

/** `store::S3Options`: settings a Litestream import keeps; the form never sets them. */
export interface S3Options {
  force_path_style?: boolean;
  skip_verify?: boolean;
  sign_payload?: boolean;
  require_content_md5?: boolean;
  part_size?: number;
  concurrency?: number;
  storage_class?: string;
  sse_kms_key_id?: string;
  sse_customer_algorithm?: string;
  sse_customer_key_path?: string;
}

/** `store::Destination` (serde tag `kind`). Empty strings are "not given". */
export type Destination =
  | { kind: "folder"; path: string }
  | { kind: "s3"; endpoint: string; bucket: string; path: string; region: string; options?: S3Options }
  | { kind: "webdav"; url: string; path: string; username: string }
  | {
    kind: "sftp"; host: string; user: string; path: string; key_path: string; host_key: string;
    /** Kept from a Litestream import; the form never sets it. */
    concurrent_writes?: boolean;
  }
  | { kind: "abs"; account_name: string; container: string; path: string; endpoint: string }
  | { kind: "gs"; bucket: string; path: string; credentials_file: string }
  | { kind: "nats"; server: string; bucket: string; username: string; creds: string; options?: NatsOptions }
  | { kind: "oss"; bucket: string; path: string; region: string; endpoint: string };

/** `store::NatsOptions`: kept from a Litestream import; the form never sets them. */
export interface NatsOptions {
  tls?: boolean;
  root_ca?: string;
  client_cert?: string;
  client_key?: string;
  max_reconnects?: number;
  reconnect_wait_ms?: number;
  timeout_ms?: number;
}

/** The destination kinds, as `Destination.kind` names them. */
export type DestinationKind = Destination["kind"];

/** `secrets::Keys`: S3 or OSS keys, a WebDAV/SFTP/NATS password, an Azure account key
 * or SAS token, NATS tokens and seeds (every field may be absent).
 * Sent, never received: the app does not give keys back. */
export interface Keys {
  access_key_id?: string;
  secret_access_key?: string;
  sse_customer_key?: string;
  password?: string;
  account_key?: string;
  sas_token?: string;
  token?: string;
  jwt?: string;
  seed?: string;
  nkey?: string;
}

/** `store::Settings`. */
export interface Settings {
  sync_interval_ms: number;
  monitor_interval_ms: number;
  notifications: boolean;
}

// ---- Commands (argument names are camelCase; Tauri maps them to the snake_case
// parameters of commands.rs) ----

export const listDatabases = (): Promise<DbView[]> => invoke("list_databases");

export const inspectDatabase = (path: string): Promise<InspectView> => invoke("inspect_database", { path });

export const testDestination = (destination: Destination, keys: Keys | null): Promise<TestView> =>
  invoke("test_destination", { destination, keys });

export const addDatabase = (path: string, destination: Destination, keys: Keys | null): Promise<DbView> =>
  invoke("add_database", { path, destination, keys });

/** Its backups are kept; a `db-removed` event follows. */
export const removeDatabase = (path: string): Promise<void> => invoke("remove_database", { path });

export const pauseDatabase = (path: string): Promise<DbView> => invoke("pause_database", { path });

export const resumeDatabase = (path: string): Promise<DbView> => invoke("resume_database", { path });

export const syncNow = (path: string): Promise<void> => invoke("sync_now", { path });

export const syncAll = (): Promise<void> => invoke("sync_all");

export const setAllPaused = (paused: boolean): Promise<void> => invoke("set_all_paused", { paused });

/** Oldest first. */
export const restorePoints = (path: string): Promise<PointView[]> => invoke("restore_points", { path });

export const defaultRestorePath = (path: string): Promise<string> => invoke("default_restore_path", { path });

/** `txid` null restores the latest; `output` null (or blank) restores next to the
 * database. Progress arrives as `restore-progress` events. */
export const restoreCopy = (path: string, txid: number | null, output: string | null): Promise<RestoreView> =>
  invoke("restore_copy", { path, txid, output });

export const restoreInPlace = (path: string, txid: number | null): Promise<RestoreView> =>
  invoke("restore_in_place", { path, txid });

export const undoRestore = (path: string, safetyCopy: string): Promise<RestoreView> =>
  invoke("undo_restore", { path, safetyCopy });

export const reveal = (path: string): Promise<void> => invoke("reveal", { path });

export const getSettings = (): Promise<Settings> => invoke("get_settings");

export const saveSettings = (settings: Settings): Promise<Settings> => invoke("save_settings", { settings });

/** The databases added, and one line per database that was not. */
export const importConfig = (path: string): Promise<[DbView[], string[]]> => invoke("import_config", { path });

/** null when the OS keychain can hold destination secrets, else why not. */
export const keychainStatus = (): Promise<string | null> => invoke("keychain_status");

// ---- Events ----

export const onDbStatus = (cb: (db: DbView) => void): Promise<UnlistenFn> =>
  listen<DbView>("db-status", (e) => cb(e.payload));

/** The payload is the removed database's path. */
export const onDbRemoved = (cb: (path: string) => void): Promise<UnlistenFn> =>
  listen<string>("db-removed", (e) => cb(e.payload));

/** Sent once the remembered databases have started: the list is worth reloading. */
export const onDbListChanged = (cb: () => void): Promise<UnlistenFn> => listen("db-list-changed", () => cb());

export const onRestoreProgress = (cb: (p: RestoreProgress) => void): Promise<UnlistenFn> =>
  listen<RestoreProgress>("restore-progress", (e) => cb(e.payload));

// ---- Dialogs (the dialog plugin is IPC too) ----

/** A chosen file or folder, or null when cancelled. */
export async function pickPath(title: string, directory: boolean): Promise<string | null> {
  const p = await openDialog({ title, multiple: false, directory });
  return typeof p === "string" ? p : null;
}

/** A file to save as, or null when cancelled. */
export async function pickSavePath(title: string, defaultPath: string): Promise<string | null> {
  const p = await saveDialog({ title, defaultPath });
  return typeof p === "string" ? p : null;
}
