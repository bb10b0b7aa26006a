// The pure functions split out of main.ts: error text (including DbView.error as a
// string today and as {code, message} after the Rust change), list facts, restore
// texts and times, and the add form's destination.
import { describe, expect, it } from "vitest";
import {
  dbErrorText, dbFacts, errorText, formDestination, formatTime, hostKeyLine, importResultText, kindLabel, keychainText,
  localInputValue, phaseText, pointAtInput, progressStep, selectedText, testResultText, type DbView,
  type PointView,
} from "../src/logic";

const db: DbView = {
  path: "/data/app.db", name: "app.db", destination: "file:///backup", state: "in_sync",
  last_sync_ms: null, lag_ms: 12, size: 4096, local_txid: 2, replica_txid: 2, error: null,
};

describe("a database's error", () => {
  it("reads the plain string of today's backend", () => {
    expect(dbErrorText("disk full")).toBe("disk full");
  });
  it("reads the {code, message} of the next backend", () => {
    expect(dbErrorText({ code: "destination_unavailable", message: "cannot write /backup" })).toBe("cannot write /backup");
  });
  it("is nothing when there is none", () => {
    expect(dbErrorText(null)).toBeNull();
    expect(dbErrorText(undefined)).toBeNull();
    expect(dbErrorText("")).toBeNull();
    expect(dbErrorText({ code: "internal", message: "" })).toBeNull();
  });
});

describe("command errors", () => {
  it("carry the hint of their code", () => {
    expect(errorText({ code: "no_such_bucket", message: "no bucket b" })).toBe("no bucket b — Create the bucket first, or correct its name.");
    expect(errorText({ code: "internal", message: "boom" })).toBe("boom");
  });
});

describe("the list", () => {
  it("states the facts of a database", () => {
    expect(dbFacts(db, 0)).toEqual([
      ["Last sync", "never", "last-sync"],
      ["Lag", "12 ms", "lag"],
      ["Size", "4.0 KB", "size"],
      ["Backed up to", "file:///backup", "destination"],
      ["Position", "TXID 2", "txid"],
    ]);
    expect(dbFacts({ ...db, replica_txid: null }, 0)[4][1]).toBe("—");
  });
});

describe("restore", () => {
  const points: PointView[] = [
    { txid: 1, created_at_ms: new Date(2026, 0, 2, 3, 4, 5).getTime(), kind: "snapshot", level: 9 },
    { txid: 2, created_at_ms: new Date(2026, 0, 2, 3, 9, 0).getTime(), kind: "change", level: 0 },
  ];
  it("names kinds and the selection", () => {
    expect(kindLabel("snapshot")).toBe("snapshot");
    expect(kindLabel("compacted")).toBe("compacted window");
    expect(kindLabel("change")).toBe("change");
    expect(selectedText(null)).toBe("Select a restore point or a time.");
    expect(selectedText(points[0])).toBe("Selected: the state of 2026-01-02 03:04:05 (TXID 1).");
  });
  it("fills the time input in local time", () => {
    const ms = points[0].created_at_ms;
    expect(localInputValue(ms)).toBe(formatTime(ms).replace(" ", "T"));
  });
  it("picks the point at an input's time", () => {
    expect(pointAtInput(points, "2026-01-02T03:05:00")?.txid).toBe(1);
    expect(pointAtInput(points, "2026-01-02T04:00:00")?.txid).toBe(2);
    expect(pointAtInput(points, "2026-01-01T00:00:00")).toBeNull();
    expect(pointAtInput(points, "")).toBeNull();
    expect(pointAtInput(points, "not a time")).toBeNull();
  });
  it("shows progress", () => {
    expect(progressStep("planning")).toBe(1);
    expect(progressStep("writing")).toBe(2);
    expect(progressStep("verified")).toBe(3);
    expect(phaseText({ path: "/a.db", phase: "planning" })).toBe("Choosing files…");
    expect(phaseText({ path: "/a.db", phase: "writing", files: 3 })).toBe("Writing the database from 3 file(s)…");
    expect(phaseText({ path: "/a.db", phase: "verified" })).toBe("Verified");
  });
});

describe("adding a database", () => {
  const ed25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB2example0key0text0here";
  const rsa = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQexample";
  it("builds a folder destination", () => {
    expect(formDestination("folder", { path: " /backup " })).toEqual({ destination: { kind: "folder", path: "/backup" }, keys: null });
  });
  it("builds an S3 destination, with keys only when typed", () => {
    const fields = { endpoint: "http://127.0.0.1:9", bucket: "b", path: "p", region: "r" };
    expect(formDestination("s3", { ...fields, access_key_id: "", secret_access_key: "" })).toEqual({
      destination: { kind: "s3", ...fields }, keys: null,
    });
    expect(formDestination("s3", { ...fields, access_key_id: "AK", secret_access_key: "SK" }).keys)
      .toEqual({ access_key_id: "AK", secret_access_key: "SK" });
  });
  it("builds a WebDAV destination, with the password (as typed) only when typed", () => {
    const fields = { url: " https://cloud.example.com/remote.php/dav/files/ann ", path: "backups/app ", username: "ann" };
    expect(formDestination("webdav", { ...fields, password: "" })).toEqual({
      destination: {
        kind: "webdav", url: "https://cloud.example.com/remote.php/dav/files/ann", path: "backups/app", username: "ann",
      },
      keys: null,
    });
    expect(formDestination("webdav", { ...fields, password: " pw " }).keys).toEqual({ password: " pw " });
  });
  it("builds an SFTP destination with a key file, a password or both", () => {
    const fields = { host: "nas:2222 ", user: " backup", path: "/srv/backups/app", password: "", host_key: "" };
    expect(formDestination("sftp", { ...fields, key_path: " /home/me/.ssh/id_ed25519 " })).toEqual({
      destination: {
        kind: "sftp", host: "nas:2222", user: "backup", path: "/srv/backups/app", key_path: "/home/me/.ssh/id_ed25519",
        host_key: "",
      },
      keys: null,
    });
    const both = formDestination("sftp", { ...fields, password: "pw", key_path: "/k", host_key: ed25519 });
    expect(both.keys).toEqual({ password: "pw" });
    expect(both.destination).toMatchObject({ key_path: "/k", host_key: ed25519 });
  });
  it("builds Azure, Google, NATS and OSS destinations with only their own fields and secrets", () => {
    // Values of every kind at once: each kind picks its own.
    const all = {
      account_name: " acct ", container: "backups", path: " app ", endpoint: "", bucket: "bkt", credentials_file: "",
      server: "nats.local:4222", username: "ann", creds: "", region: "eu-central-1", account_key: "a2V5",
      sas_token: "", password: "pw", token: "", access_key_id: "LTAI", secret_access_key: "oss-secret",
    };
    expect(formDestination("abs", all)).toEqual({
      destination: { kind: "abs", account_name: "acct", container: "backups", path: "app", endpoint: "" },
      keys: { account_key: "a2V5" },
    });
    expect(formDestination("gs", all)).toEqual({
      destination: { kind: "gs", bucket: "bkt", path: "app", credentials_file: "" }, keys: null,
    });
    expect(formDestination("nats", all)).toEqual({
      destination: { kind: "nats", server: "nats.local:4222", bucket: "bkt", username: "ann", creds: "" },
      keys: { password: "pw" },
    });
    expect(formDestination("oss", all)).toEqual({
      destination: { kind: "oss", bucket: "bkt", path: "app", region: "eu-central-1", endpoint: "" },
      keys: { access_key_id: "LTAI", secret_access_key: "oss-secret" },
    });
  });
  it("takes the host key as ssh-keyscan prints it", () => {
    expect(hostKeyLine("")).toBe("");
    expect(hostKeyLine(`  ${ed25519}  `)).toBe(ed25519);
    expect(hostKeyLine(`nas.local ${ed25519}`)).toBe(ed25519);
    // ssh-keyscan: comment lines and one line per key type; the ssh-ed25519 one is used.
    expect(hostKeyLine(`# nas.local:22 SSH-2.0-OpenSSH_9.2\nnas.local ${rsa}\r\nnas.local ${ed25519}\n`)).toBe(ed25519);
    expect(hostKeyLine(`[nas.local]:2222 ${rsa}`)).toBe(rsa);
    expect(hostKeyLine(`${ed25519} backup@nas`)).toBe(`${ed25519} backup@nas`);
    // Not a key line: passed on for the app to refuse with its hint.
    expect(hostKeyLine("AAAA  garbage")).toBe("AAAA garbage");
  });
  it("says what a test and an import found", () => {
    expect(testResultText({ destination: "file:///b", replica_txid: null })).toBe("✓ file:///b can be reached.");
    expect(testResultText({ destination: "file:///b", replica_txid: 7 }))
      .toBe("✓ file:///b can be reached and already holds a backup (TXID 7).");
    expect(importResultText(2, [])).toBe("Imported 2 database(s).");
    expect(importResultText(0, ["/a.db: no replica", "/b.db: x"])).toBe("Imported 0 database(s). Not imported: /a.db: no replica; /b.db: x");
    expect(keychainText(null)).toMatch(/^✓ Keys and passwords are kept in the system keychain/);
    expect(keychainText("no keychain")).toBe("⚠ no keychain");
  });
});
