#!/usr/bin/env node
// The `kiln` command's loader (bin/kiln, a shell script, starts it under Node 24).
// It runs the compiled CLI (dist/, built at install by scripts/build-cli.mjs) when that
// build matches the sources, else the TypeScript sources themselves, so it never runs
// old code. Started by an older Node, it re-runs itself once under the project's Node 24.
import { existsSync } from "node:fs";
import module from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { freshCompiledEntry } from "../scripts/cli-build-stamp.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const major = Number(process.versions.node.split(".")[0]);

// Where compiled code is cached between runs (warmed by the build at install).
const COMPILE_CACHE_DIR = join(root, "node_modules", ".cache", "kiln", "compile");

if (major >= 24) {
  // V8's code cache for every module this command loads (and, for the sources, their
  // stripped types): later runs skip parsing and compiling. Failure to write is harmless.
  module.enableCompileCache?.(COMPILE_CACHE_DIR);
  const entry = freshCompiledEntry(root) ?? join(root, "src", "cli", "main.ts");
  if (process.env.KILN_DEBUG) process.stderr.write(`kiln: cli from ${entry}\n`);
  const { main, exitWhenFlushed } = await import(pathToFileURL(entry).href);
  exitWhenFlushed(await main(process.argv.slice(2)));
} else {
  const { spawnSync } = await import("node:child_process");
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
