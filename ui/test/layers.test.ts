// The split's rules, checked on the sources: only api.ts talks to Tauri, and
// logic.ts stays pure (types only from api.ts, no DOM).
import { readdirSync, readFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const src = resolve(__dirname, "../src");
const files = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : []);

describe("layers", () => {
  it("only api.ts imports @tauri-apps or calls invoke/listen", () => {
    const offenders = files(src)
      .filter((f) => relative(src, f) !== "api.ts")
      .filter((f) => /@tauri-apps|\binvoke\s*[<(]|\blisten\s*[<(]/.test(readFileSync(f, "utf8")))
      .map((f) => relative(src, f));
    expect(offenders).toEqual([]);
  });
  it("logic.ts imports only types and touches no DOM", () => {
    const logic = readFileSync(join(src, "logic.ts"), "utf8");
    expect(logic.match(/^import (?!type )/m)).toBeNull();
    expect(logic).not.toMatch(/\b(document|window)\.\w/);
  });
});
