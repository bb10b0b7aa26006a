import { describe, expect, it } from "vitest";
import {
  asError, errorHint, formatAgo, formatLag, formatSize, groupPoints, journalAdvice,
  pointAt, restorableRange, sortDbs, stateLabel, type DbView, type PointView,
} from "../src/logic";

const p = (txid: number, at: number, kind: PointView["kind"] = "change"): PointView => ({
  txid, created_at_ms: at, kind, level: kind === "snapshot" ? 9 : kind === "compacted" ? 1 : 0,
});

describe("states", () => {
  it("always have a symbol and a word", () => {
    for (const s of ["starting", "in_sync", "syncing", "lagging", "error", "paused"] as const) {
      const l = stateLabel(s);
      expect(l.icon.length).toBeGreaterThan(0);
      expect(l.text.length).toBeGreaterThan(2);
    }
    expect(stateLabel("in_sync").text).toBe("In sync");
    expect(stateLabel("error").text).toBe("Error");
  });
  it("sort attention first", () => {
    const db = (name: string, state: DbView["state"]): DbView => ({
      path: `/${name}`, name, destination: "", state, last_sync_ms: null, lag_ms: null,
      size: 0, local_txid: null, replica_txid: null, error: null,
    });
    expect(sortDbs([db("a", "in_sync"), db("b", "error"), db("c", "syncing")]).map((d) => d.name)).toEqual(["b", "c", "a"]);
  });
});

describe("times and sizes", () => {
  const now = 1_000_000_000;
  it("say how long ago", () => {
    expect(formatAgo(null, now)).toBe("never");
    expect(formatAgo(now - 500, now)).toBe("just now");
    expect(formatAgo(now - 12_000, now)).toBe("12 s ago");
    expect(formatAgo(now - 180_000, now)).toBe("3 min ago");
    expect(formatAgo(now - 7_200_000, now)).toBe("2 h ago");
    expect(formatAgo(now - 3 * 86_400_000, now)).toMatch(/^on \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
  });
  it("format lag", () => {
    expect(formatLag(null)).toBe("—");
    expect(formatLag(12)).toBe("12 ms");
    expect(formatLag(1234)).toBe("1.2 s");
    expect(formatLag(180_000)).toBe("3 min");
  });
  it("format sizes", () => {
    expect(formatSize(512)).toBe("512 bytes");
    expect(formatSize(4096)).toBe("4.0 KB");
    expect(formatSize(5 * 1024 * 1024)).toBe("5.0 MB");
  });
});

describe("restore timeline", () => {
  const points = [p(1, 1000, "snapshot"), p(2, 2000, "compacted"), p(3, 3000), p(4, 4000)];
  it("groups newest first, recent changes on top", () => {
    const g = groupPoints(points);
    expect(g.map((x) => x.title)).toEqual(["Recent changes", "Compacted windows", "Snapshots"]);
    expect(g[0].points.map((x) => x.txid)).toEqual([4, 3]);
  });
  it("says the range", () => {
    expect(restorableRange([])).toMatch(/Nothing to restore yet/);
    expect(restorableRange(points)).toMatch(/^Restorable from .* to now$/);
  });
  it("finds the point at a time", () => {
    expect(pointAt(points, 3500)?.txid).toBe(3);
    expect(pointAt(points, 999)).toBeNull();
    expect(pointAt(points, 10_000)?.txid).toBe(4);
  });
});

describe("advice and errors", () => {
  it("explains WAL mode", () => {
    expect(journalAdvice("wal", true)).toMatch(/ready/);
    expect(journalAdvice("delete", false)).toMatch(/switch it to WAL/);
  });
  it("hints by code only", () => {
    expect(errorHint("wrong_credentials")).toMatch(/secret access key/);
    expect(errorHint("destination_unreachable")).toMatch(/endpoint/);
    expect(errorHint("wrong_credentials")).toMatch(/user name and password/);
    expect(errorHint("no_such_bucket")).toMatch(/bucket/);
    expect(errorHint("host_key_rejected")).toMatch(/Compare the key in the message.*paste it into Host key/);
    expect(errorHint("whatever")).toBe("");
    expect(asError({ code: "not_sqlite", message: "m" })).toEqual({ code: "not_sqlite", message: "m" });
    expect(asError("boom")).toEqual({ code: "internal", message: "boom" });
  });
});
