// @vitest-environment jsdom
// The add screen's WebDAV and SFTP steps over mocked IPC: the kind shows its fields
// and the keychain line, "Test connection" sends the destination and the password
// (as keys), and a host key the app rejects is shown with its message, which names
// the key the server offered.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { mockIPC } from "@tauri-apps/api/mocks";
import { FORM_FIELDS, FORM_SECRETS } from "../src/logic";

const calls: { cmd: string; args: Record<string, unknown> }[] = [];
const offered = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOfferedKeyOfTheServer0000";
const until = async (f: () => boolean) => {
  for (let i = 0; i < 100 && !f(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(f()).toBe(true);
};
const el = (id: string) => document.getElementById(id)!;
const type = (id: string, value: string) => {
  (el(id) as HTMLInputElement).value = value;
};
const choose = (id: string) => {
  const radio = el(id) as HTMLInputElement;
  radio.checked = true;
  radio.dispatchEvent(new Event("change"));
};

beforeAll(async () => {
  const html = readFileSync(resolve(__dirname, "../index.html"), "utf8");
  document.body.innerHTML = html.slice(html.indexOf("<body>") + 6, html.indexOf("</body>"));
  mockIPC((cmd, args) => {
    calls.push({ cmd, args: args as Record<string, unknown> });
    switch (cmd) {
      case "list_databases": return [];
      case "keychain_status": return null;
      case "test_destination": {
        const dest = (args as { destination: { kind: string; host_key?: string } }).destination;
        if (dest.kind === "sftp" && dest.host_key !== offered) {
          throw { code: "host_key_rejected", message: `nas.local offered the host key ${offered}, which is not known` };
        }
        return { destination: dest.kind === "sftp" ? "sftp://backup@nas.local/srv/b" : "https://cloud.example.com/dav/b/", replica_txid: null };
      }
      default: return null;
    }
  }, { shouldMockEvents: true });
  await import("../src/main");
  await until(() => document.body.dataset.ready === "true");
  el("nav-add").click();
});

describe("the add screen", () => {
  it("tests a WebDAV destination with the password as keys", async () => {
    choose("dest-webdav");
    expect(el("dest-webdav-fields").hidden).toBe(false);
    expect(el("dest-folder-fields").hidden).toBe(true);
    expect(el("dest-s3-fields").hidden).toBe(true);
    await until(() => el("dest-keychain").textContent!.startsWith("✓ Keys and passwords"));
    expect(el("dest-keychain").hidden).toBe(false);
    type("webdav-url", "https://cloud.example.com/dav");
    type("webdav-path", "b");
    type("webdav-user", "ann");
    type("webdav-password", "dav-secret");
    el("add-test").click();
    await until(() => el("add-result").textContent!.startsWith("✓"));
    expect(el("add-result").textContent).toBe("✓ https://cloud.example.com/dav/b/ can be reached.");
    expect(calls.find((c) => c.cmd === "test_destination")!.args).toEqual({
      destination: { kind: "webdav", url: "https://cloud.example.com/dav", path: "b", username: "ann" },
      keys: { password: "dav-secret" },
    });
  });

  it("shows the key an SFTP server offered, and succeeds once it is pasted", async () => {
    choose("dest-sftp");
    expect(el("dest-sftp-fields").hidden).toBe(false);
    expect(el("dest-webdav-fields").hidden).toBe(true);
    expect(el("sftp-host-key-hint").textContent).toContain("ssh-keyscan HOST");
    type("sftp-host", "nas.local");
    type("sftp-user", "backup");
    type("sftp-path", "/srv/b");
    type("sftp-key", "/home/me/.ssh/id_ed25519");
    el("add-test").click();
    await until(() => !el("add-error").hidden);
    expect(el("add-error").dataset.code).toBe("host_key_rejected");
    expect(el("add-error").textContent).toContain(offered);
    expect(el("add-error").textContent).toContain("paste it into Host key");
    expect(el("add-result").textContent).toBe("");

    // Pasted as ssh-keyscan prints it.
    type("sftp-host-key", `# nas.local:22 SSH-2.0-OpenSSH_9.2\nnas.local ${offered}\n`);
    el("add-test").click();
    await until(() => el("add-result").textContent!.startsWith("✓"));
    expect(el("add-error").hidden).toBe(true);
    const last = calls.filter((c) => c.cmd === "test_destination").at(-1)!;
    expect(last.args).toEqual({
      destination: {
        kind: "sftp", host: "nas.local", user: "backup", path: "/srv/b", key_path: "/home/me/.ssh/id_ed25519",
        host_key: offered,
      },
      keys: null,
    });
  });

  it("hides the keychain line for a folder", () => {
    choose("dest-folder");
    expect(el("dest-folder-fields").hidden).toBe(false);
    expect(el("dest-sftp-fields").hidden).toBe(true);
    expect(el("dest-keychain").hidden).toBe(true);
  });

  it("has, for every kind, exactly the fields and secrets the app's destination takes", () => {
    const names = (kind: string, attr: string) =>
      [...el(`dest-${kind}-fields`).querySelectorAll<HTMLElement>(`[data-${attr}]`)].map((e) => e.dataset[attr]).sort();
    for (const [kind, fields] of Object.entries(FORM_FIELDS)) {
      expect(el(`dest-${kind}`), kind).toBeTruthy();
      expect(names(kind, "field"), kind).toEqual([...fields].sort());
      expect(names(kind, "secret"), kind).toEqual([...FORM_SECRETS[kind as keyof typeof FORM_SECRETS]].sort());
    }
  });

  it("tests an Azure Blob destination with the account key as keys, and hides the keychain line for Google", async () => {
    choose("dest-abs");
    expect(el("dest-abs-fields").hidden).toBe(false);
    expect(el("dest-sftp-fields").hidden).toBe(true);
    await until(() => !el("dest-keychain").hidden);
    type("abs-account", "acct");
    type("abs-container", "backups");
    type("abs-path", "app");
    type("abs-key", "a2V5");
    el("add-test").click();
    const lastTest = () => calls.filter((c) => c.cmd === "test_destination").at(-1)!.args;
    await until(() => (lastTest().destination as { kind: string }).kind === "abs");
    expect(lastTest()).toEqual({
      destination: { kind: "abs", account_name: "acct", container: "backups", path: "app", endpoint: "" },
      keys: { account_key: "a2V5" },
    });
    choose("dest-gs");
    expect(el("dest-gs-fields").hidden).toBe(false);
    expect(el("dest-abs-fields").hidden).toBe(true);
    expect(el("dest-keychain").hidden).toBe(true);
  });
});
