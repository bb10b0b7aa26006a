// The window's state: the list by path, which screen the list is, and the restore
// screen's target and undo offer.
import { describe, expect, it } from "vitest";
import type { DbView } from "../src/api";
import {
  allDbs, currentView, dropDb, getDb, hasDbs, listShown, listView, offerUndoFrom, putDb, restoreTarget, setDbs,
  setView, startRestore, undoOffer, setPoints, choosePoint, chosenPoint, restorePointsShown,
} from "../src/state";

const db = (path: string): DbView => ({
  path, name: path.slice(1), destination: "", state: "in_sync", last_sync_ms: null, lag_ms: null,
  size: 0, local_txid: null, replica_txid: null, error: null,
});

describe("state", () => {
  it("keeps one entry per database path", () => {
    expect(hasDbs()).toBe(false);
    expect(listView()).toBe("empty");
    putDb(db("/a"));
    putDb({ ...db("/a"), state: "error" });
    putDb(db("/b"));
    expect(allDbs().length).toBe(2);
    expect(getDb("/a")?.state).toBe("error");
    expect(listView()).toBe("list");
    dropDb("/a");
    expect(allDbs().map((d) => d.path)).toEqual(["/b"]);
    setDbs([db("/c")]);
    expect(allDbs().map((d) => d.path)).toEqual(["/c"]);
  });
  it("knows whether the list is on screen", () => {
    expect(currentView()).toBe("empty");
    expect(listShown()).toBe(true);
    setView("settings");
    expect(listShown()).toBe(false);
    setView("list");
    expect(listShown()).toBe(true);
  });
  it("withdraws the undo offer when the restore screen opens", () => {
    offerUndoFrom({ db: "/a", safety: "/a-before" });
    expect(undoOffer()).toEqual({ db: "/a", safety: "/a-before" });
    startRestore("/c");
    expect(restoreTarget()).toBe("/c");
    expect(undoOffer()).toBeNull();
  });

  it("forgets the previous database's points when the restore screen opens another", () => {
    startRestore("/a");
    const p = { txid: 7, created_at_ms: 1, kind: "change" as const, level: 0 };
    setPoints([p]);
    choosePoint(p);
    startRestore("/b");
    expect(restorePointsShown()).toEqual([]);
    expect(chosenPoint()).toBeNull();
  });
});
