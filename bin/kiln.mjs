#!/usr/bin/env node
// The `kiln` command. Kiln needs Node 24; when started by an older Node this
// re-runs itself under the Node 24 that the project installs from npm.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const entry = join(root, "src", "cli", "main.ts");
const major = Number(process.versions.node.split(".")[0]);

if (major >= 24) {
  const { main } = await import(pathToFileURL(entry).href);
  const code = await main(process.argv.slice(2));
  process.exitCode = code;
  // Leftover handles (a WASM worker winding down) must not keep a finished command alive.
  setTimeout(() => process.exit(code), 50).unref();
} else {
  const node24 = join(root, "node_modules", "node", "bin", "node");
  if (!existsSync(node24)) {
    const r = spawnSync(process.execPath, [join(root, "scripts", "ensure-deps.mjs")], { stdio: "inherit" });
    if (r.status !== 0) process.exit(r.status ?? 1);
  }
  const r = spawnSync(node24, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: "inherit",
  });
  if (r.signal) process.kill(process.pid, r.signal);
  process.exit(r.status ?? 1);
}
