// Builds the console into dist/, which the appliance embeds (mgmt/src/console.rs) and
// serves under /console/. No inline scripts or styles: the page runs under a strict CSP.
import { defineConfig } from "vitest/config";

export default defineConfig({
  base: "/console/",
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsInlineLimit: 0,
    sourcemap: false,
    target: "es2022",
    modulePreload: { polyfill: false },
  },
  test: { include: ["test/**/*.test.ts"], environment: "node" },
});
