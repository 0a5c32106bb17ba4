#!/usr/bin/env node
// Builds the compiled CLI: src/ to dist/ (tsc emit, one .js per module, types erased,
// and the runtime assets beside them, such as the virtual tier's Python driver), stamps it with the fingerprint of the sources it was built from, then runs the CLI
// twice so that Node's compile cache holds the modules a command loads: the user's
// first command starts as fast as the second. Runs at `npm install` (prepare) and
// from ensure-deps.mjs when dist/ is missing or stale. A failed build is not fatal:
// bin/kiln.mjs then runs the sources.
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { isAsset, STAMP, sourceFingerprint, walkBuildInputs } from "./cli-build-stamp.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");
const tsc = join(root, "node_modules", ".bin", "tsc");

function warn(message) {
  process.stderr.write(`kiln: ${message}; the CLI runs from source\n`);
  process.exit(0);
}

if (!existsSync(tsc)) warn("no TypeScript compiler to build the CLI with");
// Taken before compiling, so that an edit made during the build leaves the stamp stale.
const fingerprint = sourceFingerprint(root);
rmSync(dist, { recursive: true, force: true });
const built = spawnSync(tsc, ["-p", join(root, "tsconfig.build.json")], { cwd: root, stdio: "inherit" });
if (built.status !== 0) warn(`building the CLI failed (tsc exit ${built.status ?? built.signal})`);
// Modules load their assets relative to themselves: they go to the same place in dist/.
walkBuildInputs(root, (rel, path) => {
  if (!isAsset(rel.slice(rel.lastIndexOf("/") + 1))) return;
  mkdirSync(dirname(join(dist, rel)), { recursive: true });
  copyFileSync(path, join(dist, rel));
});
writeFileSync(join(dist, STAMP), `${JSON.stringify({ fingerprint })}\n`);

// Warm the compile cache with what `--help` and a virtual `run` load.
const node24 =
  Number(process.versions.node.split(".")[0]) >= 24
    ? process.execPath
    : join(root, "node_modules", "node", "bin", "node");
if (existsSync(node24)) {
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-warm-"));
  const kiln = (args) =>
    spawnSync(node24, [join(root, "bin", "kiln.mjs"), "--data-dir", dataDir, ...args], {
      cwd: root,
      stdio: "ignore",
      timeout: 120_000,
    });
  kiln(["--help"]);
  kiln(["run", "--", "true"]);
  rmSync(dataDir, { recursive: true, force: true });
}
