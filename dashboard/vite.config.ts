// Builds the dashboard (Preact + xterm.js) into dashboard/dist, served by `kiln serve`.
// Relative asset URLs let the same build serve at `/` and at `/dashboard/`.
import { defineConfig } from "vite";

export default defineConfig({
  base: "./",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 1024 },
  server: { proxy: { "/v1": { target: "http://127.0.0.1:7070", ws: true } } },
});
