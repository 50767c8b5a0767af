/// <reference types="vitest/config" />
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import react from "@vitejs/plugin-react";
import { defineConfig, type Plugin } from "vite";

// `npm run dev` serves the UI on 127.0.0.1:5173 against a running `arkor dev` on :4000:
// /api is proxied there, and the token `arkor dev` wrote is injected like Studio does.
function studioToken(): Plugin {
  return {
    name: "arkor-studio-token",
    apply: "serve",
    transformIndexHtml(html) {
      const home = process.env.ARKOR_DATA_DIR ?? join(homedir(), ".arkor");
      let token = "";
      try {
        token = readFileSync(join(home, "studio-token"), "utf8").trim();
      } catch {
        // No `arkor dev` running: API calls will get 403 until it starts.
      }
      return html.replace("</head>", `<meta name="arkor-studio-token" content="${token}"></head>`);
    },
  };
}

export default defineConfig({
  plugins: [react(), studioToken()],
  base: "./",
  build: { outDir: process.env.ARKOR_STUDIO_OUT_DIR ?? "dist", emptyOutDir: true, sourcemap: false },
  server: {
    host: "127.0.0.1",
    port: 5173,
    strictPort: true,
    proxy: { "/api": "http://127.0.0.1:4000" },
  },
  test: { include: ["src/**/*.test.ts", "src/**/*.test.tsx"], environment: "node" },
});
