import { defineConfig } from "vitest/config";

export default defineConfig({
  root: ".",
  build: { outDir: "dist", emptyOutDir: true, target: "safari13" },
  server: { port: 1420, strictPort: true },
  test: { include: ["test/**/*.test.ts"] },
});
