// @vitest-environment jsdom
// The list shows a database's last error whether DbView.error comes as today's
// string or as the {code, message} the Rust side is moving to.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { mockIPC } from "@tauri-apps/api/mocks";
import { emit } from "@tauri-apps/api/event";

const db = {
  path: "/data/app.db", name: "app.db", destination: "file:///backup", state: "error",
  last_sync_ms: null, lag_ms: null, size: 0, local_txid: null, replica_txid: null, error: null as unknown,
};
const until = async (f: () => boolean) => {
  for (let i = 0; i < 100 && !f(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(f()).toBe(true);
};
const errText = () => document.querySelector("li.db .err")?.textContent ?? null;

beforeAll(async () => {
  const html = readFileSync(resolve(__dirname, "../index.html"), "utf8");
  document.body.innerHTML = html.slice(html.indexOf("<body>") + 6, html.indexOf("</body>"));
  mockIPC((cmd) => (cmd === "list_databases" ? [] : null), { shouldMockEvents: true });
  await import("../src/main");
  await until(() => document.body.dataset.ready === "true");
});

describe("a database's error in the list", () => {
  it("shows a plain string", async () => {
    await emit("db-status", { ...db, error: "cannot write /backup" });
    await until(() => errText() === "cannot write /backup");
  });
  it("shows the message of {code, message}", async () => {
    await emit("db-status", { ...db, error: { code: "destination_unavailable", message: "no /backup" } });
    await until(() => errText() === "no /backup");
  });
  it("shows none when it is null", async () => {
    await emit("db-status", { ...db, state: "in_sync", error: null });
    await until(() => document.querySelector("li.db")?.getAttribute("data-state") === "in_sync");
    expect(errText()).toBeNull();
  });
});
