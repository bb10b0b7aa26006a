// Pure view logic: state labels, times, lag, sizes, the restore timeline and every
// sentence built from data. No DOM, no IPC, so vitest covers it directly.

// The DTO types live in api.ts, which mirrors the Rust side; they are re-exported
// here because the pure functions (and their tests) speak in them. Type-only
// imports vanish at build time, so this file stays free of IPC.
import type {
  AppError, DbView, Destination, DestinationKind, ErrorCode, Keys, PointKind, PointView, RestoreProgress, SyncState,
  TestView,
} from "./api";

export type { AppError, DbView, PointView };

/** Each state has a symbol and a word, so it never relies on colour alone. */
export function stateLabel(state: SyncState): { icon: string; text: string } {
  switch (state) {
    case "in_sync":
      return { icon: "✓", text: "In sync" };
    case "syncing":
      return { icon: "↻", text: "Syncing" };
    case "lagging":
      return { icon: "⏳", text: "Lagging" };
    case "error":
      return { icon: "⚠", text: "Error" };
    case "paused":
      return { icon: "⏸", text: "Paused" };
    default:
      return { icon: "…", text: "Starting" };
  }
}

const pad = (n: number) => String(n).padStart(2, "0");

/** Local date and time, `2026-11-24 15:02:11`. */
export function formatTime(ms: number): string {
  const d = new Date(ms);
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}

/** "just now", "12 s ago", "3 min ago", "2 h ago", else the date. */
export function formatAgo(ms: number | null, now: number): string {
  if (ms === null) return "never";
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 2) return "just now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `on ${formatTime(ms)}`;
}

/** Lag of the last shipment, in words. */
export function formatLag(ms: number | null): string {
  if (ms === null) return "—";
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms / 60000)} min`;
}

export function formatSize(bytes: number): string {
  const units = ["bytes", "KB", "MB", "GB", "TB"];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} bytes` : `${v.toFixed(1)} ${units[i]}`;
}

/** What the journal mode means for the user. */
export function journalAdvice(journalMode: string, isWal: boolean): string {
  if (isWal) return "This is a SQLite database in WAL mode: ready to back up.";
  return (
    `This SQLite database uses journal_mode=${journalMode}, not WAL. ` +
    "Tideline will switch it to WAL mode when it starts backing it up: writers then append " +
    "to a -wal file beside the database, readers no longer block writers, and the change " +
    "stays with the file (programs using it need no change, but it must not be on a network share)."
  );
}

/** Extra help for an error, chosen by its code (never by the message). */
export function errorHint(code: ErrorCode | string): string {
  switch (code) {
    case "unsupported":
      return "This option is not supported; the message says what to use instead.";
    case "destination_unreachable":
      return "Check the server address (endpoint, URL or host and port) and that the service is running and reachable.";
    case "wrong_credentials":
      return "Check the user name and password (for S3: the access key ID and secret access key).";
    case "access_denied":
      return "The login works but lacks permission: allow listing, reading, writing and deleting in this bucket or folder.";
    case "host_key_rejected":
      return "The server's key is not the one this computer knows. Compare the key in the message with the one " +
        "the server's administrator gives (or `ssh-keyscan HOST` prints on a network you trust); if it is the " +
        "server's, paste it into Host key and test again.";
    case "no_such_bucket":
      return "Create the bucket first, or correct its name.";
    case "clock_skew":
      return "Set this computer's clock correctly (turn on automatic time), then try again.";
    case "wrong_region":
      return "Set the region the bucket was created in.";
    case "destination_missing":
      return "Reconnect the drive or restore the folder or bucket; changes are kept on this computer until it is back.";
    case "disk_full":
      return "Free some space on that disk, then try again; nothing was lost.";
    case "invalid_config":
      return "Correct the setting the message names.";
    case "destination_unavailable":
      return "Check that the destination exists and can be written, then try again.";
    case "not_sqlite":
      return "Pick the database file itself (often .db, .sqlite or .sqlite3).";
    case "database_missing":
      return "Check the path: the file does not exist.";
    case "in_use":
      return "Close the program using the database, or restore as a copy instead.";
    case "keychain_unavailable":
      return "Keys and passwords are never stored in plain text.";
    case "no_restore_point":
      return "Pick another point: nothing in the backup reaches this one.";
    default:
      return "";
  }
}

export interface PointGroup {
  title: string;
  points: PointView[];
}

/** Newest first, grouped as snapshots, compacted windows and recent changes. */
export function groupPoints(points: PointView[]): PointGroup[] {
  const titles: Record<PointView["kind"], string> = {
    snapshot: "Snapshots",
    compacted: "Compacted windows",
    change: "Recent changes",
  };
  const order: PointView["kind"][] = ["change", "compacted", "snapshot"];
  return order
    .map((kind) => ({
      title: titles[kind],
      points: points
        .filter((p) => p.kind === kind)
        .sort((a, b) => b.created_at_ms - a.created_at_ms || b.txid - a.txid),
    }))
    .filter((g) => g.points.length > 0);
}

/** "Restorable from … to now", or why nothing is. */
export function restorableRange(points: PointView[]): string {
  if (points.length === 0) return "Nothing to restore yet: the first backup has not reached the destination.";
  const first = Math.min(...points.map((p) => p.created_at_ms));
  return `Restorable from ${formatTime(first)} to now`;
}

/** The newest point created at or before `ms` (what a restore "at this time" gives). */
export function pointAt(points: PointView[], ms: number): PointView | null {
  let best: PointView | null = null;
  for (const p of points) {
    if (p.created_at_ms <= ms && (!best || p.txid > best.txid)) best = p;
  }
  return best;
}

/** Order of the list: attention first, then by name. */
export function sortDbs(dbs: DbView[]): DbView[] {
  const rank: Record<SyncState, number> = { error: 0, lagging: 1, syncing: 2, starting: 3, paused: 4, in_sync: 5 };
  return [...dbs].sort((a, b) => rank[a.state] - rank[b.state] || a.name.localeCompare(b.name) || a.path.localeCompare(b.path));
}

/** The error of a failed command, whatever was thrown. */
export function asError(e: unknown): AppError {
  if (e && typeof e === "object" && "code" in e && "message" in e) {
    // A code this build does not know (a newer backend) passes through as it came:
    // errorHint has no hint for it, and data-code still says what it was.
    return { code: String((e as AppError).code) as ErrorCode, message: String((e as AppError).message) };
  }
  return { code: "internal", message: String(e) };
}

/** An error in words for the window, with the hint its code has, if any. */
export function errorText(e: AppError): string {
  const hint = errorHint(e.code);
  return hint ? `${e.message} — ${hint}` : e.message;
}

/** The text of a database's last error, or null when it has none. `DbView.error` is
 * a string from today's backend and `{code, message}` from the next one; both show
 * as their message, so the list works across that change. */
export function dbErrorText(error: AppError | string | null | undefined): string | null {
  if (error === null || error === undefined) return null;
  if (typeof error === "string") return error || null;
  return error.message || null;
}

/** The facts row of a database in the list: label, value, class of the value. */
export function dbFacts(db: DbView, now: number): [string, string, string][] {
  return [
    ["Last sync", formatAgo(db.last_sync_ms, now), "last-sync"],
    ["Lag", formatLag(db.lag_ms), "lag"],
    ["Size", formatSize(db.size), "size"],
    ["Backed up to", db.destination, "destination"],
    ["Position", db.replica_txid === null ? "—" : `TXID ${db.replica_txid}`, "txid"],
  ];
}

/** A restore point's kind in words. */
export function kindLabel(k: PointKind): string {
  return k === "snapshot" ? "snapshot" : k === "compacted" ? "compacted window" : "change";
}

/** What the restore screen says is selected. */
export function selectedText(p: PointView | null): string {
  return p ? `Selected: the state of ${formatTime(p.created_at_ms)} (TXID ${p.txid}).` : "Select a restore point or a time.";
}

/** The value of a `datetime-local` input showing `ms` in local time. */
export function localInputValue(ms: number): string {
  // toISOString speaks UTC: shift by the offset so it prints the local wall clock.
  const d = new Date(ms);
  return new Date(ms - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 19);
}

/** The point a `datetime-local` value picks (the newest at or before it), or null
 * when the value is empty, not a time, or before every point. */
export function pointAtInput(points: PointView[], value: string): PointView | null {
  const ms = value ? new Date(value).getTime() : NaN;
  return Number.isNaN(ms) ? null : pointAt(points, ms);
}

/** Where a restore's progress bar stands (of 3). */
export function progressStep(phase: RestoreProgress["phase"]): number {
  const steps: Record<string, number> = { planning: 1, writing: 2, verified: 3 };
  return steps[phase] ?? 0;
}

/** A restore's progress in words. */
export function phaseText(p: RestoreProgress): string {
  return p.phase === "planning" ? "Choosing files…"
    : p.phase === "writing" ? `Writing the database from ${p.files} file(s)…`
    : "Verified";
}

/** What "Test connection" found. */
export function testResultText(r: TestView): string {
  return `✓ ${r.destination} can be reached` +
    (r.replica_txid !== null ? ` and already holds a backup (TXID ${r.replica_txid}).` : ".");
}

/** What a Litestream config import did. */
export function importResultText(added: number, skipped: string[]): string {
  return `Imported ${added} database(s).` + (skipped.length ? ` Not imported: ${skipped.join("; ")}` : "");
}

/** The keychain line of the S3, WebDAV and SFTP forms, from `keychain_status`. */
export function keychainText(whyNot: string | null): string {
  return whyNot
    ? `⚠ ${whyNot}`
    : "✓ Keys and passwords are kept in the system keychain, never in Tideline's settings file.";
}

/** Each kind's form fields: the `data-field` inputs of `#dest-KIND-fields`, checked
 * against `Destination` here and against index.html by a test. */
export const FORM_FIELDS = {
  folder: ["path"],
  s3: ["endpoint", "bucket", "path", "region"],
  webdav: ["url", "path", "username"],
  sftp: ["host", "user", "path", "key_path", "host_key"],
  abs: ["account_name", "container", "path", "endpoint"],
  gs: ["bucket", "path", "credentials_file"],
  nats: ["server", "bucket", "username", "creds"],
  oss: ["bucket", "path", "region", "endpoint"],
} as const satisfies { [K in DestinationKind]: readonly (keyof Extract<Destination, { kind: K }>)[] };

/** Each kind's secrets: the `data-secret` inputs, sent as `Keys`. */
export const FORM_SECRETS = {
  folder: [],
  s3: ["access_key_id", "secret_access_key"],
  webdav: ["password"],
  sftp: ["password"],
  abs: ["account_key", "sas_token"],
  gs: [],
  nats: ["password", "token"],
  oss: ["access_key_id", "secret_access_key"],
} as const satisfies { [K in DestinationKind]: readonly (keyof Keys)[] };

/** The required keys of kind `K`'s destination that the form has no field for:
 * `never` for every kind, or this file does not compile. */
type NeededOf<K extends DestinationKind> = {
  [P in keyof Extract<Destination, { kind: K }>]-?: undefined extends Extract<Destination, { kind: K }>[P] ? never : P;
}[keyof Extract<Destination, { kind: K }>];
type Unfilled = { [K in DestinationKind]: Exclude<NeededOf<K>, "kind" | (typeof FORM_FIELDS)[K][number]> }[DestinationKind];
const formIsComplete: [Unfilled] extends [never] ? true : Unfilled = true;
void formIsComplete;

const KEY_TYPE = /^(ssh-|ecdsa-)/;

/** The server key line the SFTP form sends, from what was pasted: `ssh-keyscan HOST`
 * output or a `known_hosts` line (the host name in front is dropped, `#` comments are
 * skipped) or the key itself. Of several keys the ssh-ed25519 one is kept, else the
 * first; text that is no key line passes through for the app to refuse with a hint. */
export function hostKeyLine(pasted: string): string {
  const lines = pasted.split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  const keys = lines.map((l) => {
    const words = l.split(/\s+/);
    return !KEY_TYPE.test(words[0]) && words.length > 2 && KEY_TYPE.test(words[1]) ? words.slice(1).join(" ") : words.join(" ");
  });
  return keys.find((k) => k.startsWith("ssh-ed25519 ")) ?? keys[0] ?? "";
}

/** The destination and keys the form's values describe (keyed by `data-field` and
 * `data-secret` names); fields are trimmed, secrets sent as typed and only when typed,
 * so an S3 destination without keys uses the environment's and a server without a
 * password logs in without one (SFTP: with the key file). */
export function formDestination(
  kind: DestinationKind,
  values: Record<string, string>,
): { destination: Destination; keys: Keys | null } {
  const fields: Record<string, string> = {};
  for (const f of FORM_FIELDS[kind]) fields[f] = (values[f] ?? "").trim();
  if (kind === "sftp") fields.host_key = hostKeyLine(values.host_key ?? "");
  const keys: Record<string, string> = {};
  for (const k of FORM_SECRETS[kind]) if (values[k]) keys[k] = values[k];
  return {
    destination: { kind, ...fields } as Destination,
    keys: Object.keys(keys).length ? (keys as Keys) : null,
  };
}
