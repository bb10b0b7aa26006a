// The window's state in one place: the databases as last heard of, which screen is
// shown, and the restore screen's database, points, selection and undo offer. Views
// read it through the getters and change it only through the functions below, so
// every change has one name to search for. No DOM and no IPC here.
import type { DbView, PointView } from "./api";

export type View = "empty" | "list" | "add" | "restore" | "settings";

export const VIEWS: readonly View[] = ["empty", "list", "add", "restore", "settings"];

/** An in-place restore (or undo) that can be undone: its database and the safety copy
 * that undo_restore puts back (making a safety copy of its own first). */
export interface UndoOffer {
  db: string;
  safety: string;
}

const dbs = new Map<string, DbView>();
let view: View = "empty";
let restoreDb: string | null = null;
let points: PointView[] = [];
let chosen: PointView | null = null;
let lastRestored: string | null = null;
let undoFrom: UndoOffer | null = null;

// ---- Databases ----

export const allDbs = (): DbView[] => [...dbs.values()];
export const getDb = (path: string): DbView | undefined => dbs.get(path);
export const hasDbs = (): boolean => dbs.size > 0;

/** Adds a database or replaces what was known of it. */
export function putDb(db: DbView): void {
  dbs.set(db.path, db);
}

/** Replaces the whole list (after list_databases). */
export function setDbs(list: DbView[]): void {
  dbs.clear();
  for (const d of list) dbs.set(d.path, d);
}

export function dropDb(path: string): void {
  dbs.delete(path);
}

// ---- Screen ----

export const currentView = (): View => view;

export function setView(v: View): void {
  view = v;
}

/** The list's screen: the empty state when there is nothing to list. */
export const listView = (): View => (dbs.size === 0 ? "empty" : "list");

/** Whether the list (or its empty state) is on screen, so list changes show at once. */
export const listShown = (): boolean => view === "list" || view === "empty";

// ---- Restore screen ----

export const restoreTarget = (): string | null => restoreDb;
export const restorePointsShown = (): PointView[] => points;
export const chosenPoint = (): PointView | null => chosen;
export const lastRestoredFile = (): string | null => lastRestored;
export const undoOffer = (): UndoOffer | null => undoFrom;

/** Points the restore screen at a database: forgets the previous database's points
 * and selection (a restore started before the new ones load must not use another
 * database's TXID) and withdraws any undo offer. */
export function startRestore(path: string): void {
  restoreDb = path;
  points = [];
  chosen = null;
  undoFrom = null;
}

export function setPoints(list: PointView[]): void {
  points = list;
}

export function choosePoint(p: PointView | null): void {
  chosen = p;
}

export function setLastRestored(file: string): void {
  lastRestored = file;
}

export function offerUndoFrom(offer: UndoOffer | null): void {
  undoFrom = offer;
}
