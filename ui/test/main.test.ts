// @vitest-environment jsdom
// The window's views over mocked IPC: first-run empty state, a pushed db-status event
// filling the list, the restore timeline, a restore as a copy, and an in-place
// restore undone from its safety copy.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { mockIPC } from "@tauri-apps/api/mocks";
import { emit } from "@tauri-apps/api/event";

const calls: { cmd: string; args: unknown }[] = [];
const now = Date.now();
const db = {
  path: "/data/app.db", name: "app.db", destination: "file:///backup", state: "in_sync",
  last_sync_ms: now, lag_ms: 12, size: 28_000, local_txid: 2, replica_txid: 2, error: null,
};

const until = async (f: () => boolean) => {
  for (let i = 0; i < 100 && !f(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(f()).toBe(true);
};
const el = (id: string) => document.getElementById(id)!;

beforeAll(async () => {
  const html = readFileSync(resolve(__dirname, "../index.html"), "utf8");
  document.body.innerHTML = html.slice(html.indexOf("<body>") + 6, html.indexOf("</body>"));
  mockIPC((cmd, args) => {
    calls.push({ cmd, args });
    switch (cmd) {
      case "list_databases": return [];
      case "restore_points": return [
        { txid: 1, created_at_ms: now - 60_000, kind: "change", level: 0 },
        { txid: 2, created_at_ms: now - 1000, kind: "change", level: 0 },
      ];
      case "default_restore_path": return "/data/app-restored-x.db";
      case "restore_copy": return { output: "/data/app-restored-x.db", txid: 1, bytes: 4096, verified: true, safety_copy: null };
      case "restore_in_place": return { output: "/data/app.db", txid: 1, bytes: 4096, verified: true, safety_copy: "/data/app-before-restore-1.db" };
      case "undo_restore": return { output: "/data/app.db", txid: 0, bytes: 8192, verified: true, safety_copy: "/data/app-before-restore-2.db" };
      default: return null;
    }
  }, { shouldMockEvents: true });
  await import("../src/main");
  await until(() => document.body.dataset.ready === "true");
});

describe("the window", () => {
  it("starts with the empty state", () => {
    expect(el("view-empty").hidden).toBe(false);
    expect(el("view-list").hidden).toBe(true);
  });

  it("shows databases pushed by events, state in words", async () => {
    await emit("db-status", db);
    await until(() => document.querySelectorAll("li.db").length === 1);
    expect(el("view-list").hidden).toBe(false);
    const li = document.querySelector<HTMLElement>("li.db")!;
    expect(li.dataset.state).toBe("in_sync");
    expect(li.querySelector(".state-text")!.textContent).toBe("In sync");
    expect(li.querySelector(".lag")!.textContent).toBe("12 ms");
    await emit("db-status", { ...db, state: "error", error: "disk full" });
    await until(() => document.querySelector(".state-text")?.textContent === "Error");
    expect(document.querySelector("li.db .err")!.textContent).toBe("disk full");
  });

  it("lists restore points and restores a copy of the chosen one", async () => {
    document.querySelector<HTMLButtonElement>("li.db .restore-btn")!.click();
    await until(() => document.querySelectorAll("input[name=point]").length === 2);
    expect(el("restore-range").textContent).toMatch(/^Restorable from/);
    document.querySelector<HTMLInputElement>("input[data-txid='1']")!.click();
    expect(el("restore-selected").textContent).toContain("TXID 1");
    el("restore-go").click();
    await until(() => el("restore-output-path")?.textContent === "/data/app-restored-x.db");
    const call = calls.find((c) => c.cmd === "restore_copy")!;
    expect(call.args).toMatchObject({ path: "/data/app.db", txid: 1, output: null });
    expect(el("restore-reveal").hidden).toBe(false);
    expect(el("restore-error").hidden).toBe(true);
  });

  it("restores in place and offers to undo it from the safety copy", async () => {
    el("mode-inplace").click();
    el("restore-go").click();
    await until(() => !el("confirm").hidden);
    el("confirm-yes").click();
    await until(() => !el("restore-undo").hidden);
    expect(el("restore-result").textContent).toContain("kept at /data/app-before-restore-1.db");
    el("restore-undo").click();
    await until(() => !el("confirm").hidden);
    el("confirm-yes").click();
    await until(() => el("restore-undone") !== null);
    const call = calls.find((c) => c.cmd === "undo_restore")!;
    expect(call.args).toMatchObject({ path: "/data/app.db", safetyCopy: "/data/app-before-restore-1.db" });
    // The undo made a safety copy of its own, which the button now offers.
    expect(el("restore-result").textContent).toContain("kept at /data/app-before-restore-2.db");
    expect(el("restore-undo").hidden).toBe(false);
  });
});
