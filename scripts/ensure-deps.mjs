#!/usr/bin/env node
// Installs the npm dependencies (Node 24 among them) when they are missing or stale, and
// rebuilds the compiled CLI (dist/) when it no longer matches the sources.
// Runs on whatever Node the machine has, so it must stay plain JavaScript.
import { spawnSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { freshCompiledEntry } from "./cli-build-stamp.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const lock = join(root, "package-lock.json");
const stamp = join(root, "node_modules", ".package-lock.json");
const node24 = join(root, "node_modules", "node", "bin", "node");

const stale =
  !existsSync(stamp) ||
  !existsSync(node24) ||
  (existsSync(lock) && statSync(lock).mtimeMs > statSync(stamp).mtimeMs);

if (stale) {
  process.stderr.write("kiln: installing npm dependencies (first run)...\n");
  // `npm install` (not `npm ci`): it installs the locked versions too, and npm 11's `ci` rejects
  // locks that omit optional platform packages a dependency names but does not publish (biome's).
  // Errors only: on an older machine Node, dozens of EBADENGINE warnings would bury the one line that matters
  // (the dependencies run under the project's own Node 24, which they all accept).
  const cmd = ["install", "--no-audit", "--no-fund", "--loglevel=error"];
  const r = spawnSync("npm", cmd, { cwd: root, stdio: ["ignore", "inherit", "inherit"] });
  if (r.status !== 0) {
    process.stderr.write("kiln: npm install failed\n");
    process.exit(r.status ?? 1);
  }
}

// just-bash carries fixes applied after install; a node_modules installed before they existed gets them here.
for (const script of ["patch-just-bash.mjs", "patch-just-bash-js-exec.mjs"]) {
  const patched = spawnSync(process.execPath, [join(root, "scripts", script)], {
    stdio: ["ignore", "inherit", "inherit"],
  });
  if (patched.status !== 0) process.exit(patched.status ?? 1);
}

// `npm install` builds the compiled CLI (prepare); after a pull or an edit it is rebuilt here.
if (!freshCompiledEntry(root)) {
  const r = spawnSync(process.execPath, [join(root, "scripts", "build-cli.mjs")], {
    cwd: root,
    stdio: "inherit",
  });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
