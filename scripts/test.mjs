#!/usr/bin/env node
// `npm test`: type-check, lint and format check, then every test (node:test).
// Runs under the Node 24 that `pretest` installed (npm puts node_modules/.bin first on PATH).
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bin = (name) => join(root, "node_modules", ".bin", name);

function step(title, cmd, args, env = {}) {
  process.stdout.write(`\n== ${title}\n`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: "inherit", env: { ...process.env, ...env } });
  if (r.status !== 0) {
    process.stdout.write(`\n== ${title}: failed (exit ${r.status ?? r.signal})\n`);
    process.exit(r.status || 1);
  }
}

if (Number(process.versions.node.split(".")[0]) < 24) {
  console.error(`kiln: tests need Node 24, this is ${process.version}; run them with \`npm test\``);
  process.exit(1);
}

const setup = spawnSync("bash", [join(root, "scripts", "setup-system.sh")], { cwd: root, stdio: "inherit" });
if (setup.status !== 0)
  process.stdout.write("== system setup did not complete; tiers that need it will say why\n");

// Real-tier tests share one template cache per machine, so the Debian `default` template is built once.
if (!process.env.KILN_TEMPLATE_DIR && process.getuid?.() === 0)
  process.env.KILN_TEMPLATE_DIR = "/var/cache/kiln/templates";
if (process.env.KILN_TEMPLATE_DIR) {
  const r = spawnSync(
    process.execPath,
    [join(root, "src", "cli", "main.ts"), "template", "build", "default"],
    {
      cwd: root,
      stdio: "inherit",
    },
  );
  if (r.status !== 0)
    process.stdout.write("== the default template could not be built; real tiers will say why\n");
  // Code cells with numpy, pandas and matplotlib (about 8 minutes the first time, then cached like default).
  const ci = spawnSync(
    process.execPath,
    [join(root, "src", "cli", "main.ts"), "template", "build", "code-interpreter"],
    { cwd: root, stdio: "inherit" },
  );
  if (ci.status !== 0)
    process.stdout.write("== the code-interpreter template could not be built; its suites will say why\n");
  // Which tiers run here, and why not; it also probes the microvm tier's accelerator once (a KVM boot
  // that hangs on a nested host costs its time limit) and caches the answer for every test process.
  spawnSync(process.execPath, [join(root, "src", "cli", "main.ts"), "doctor"], {
    cwd: root,
    stdio: "inherit",
  });
}

step("type-check (tsc --noEmit)", bin("tsc"), ["--noEmit", "-p", "."]);
step("lint and format (biome check)", bin("biome"), ["check", "."]);
// Files or globs given after `npm test --` run alone (and nothing else does).
const chosen = process.argv.slice(2).length ? process.argv.slice(2) : undefined;
step("tests (node --test)", process.execPath, [
  "--test",
  "--test-reporter=spec",
  "--test-reporter-destination=stdout",
  `--test-reporter=${join(root, "scripts", "test-summary.mjs")}`,
  "--test-reporter-destination=stdout",
  "--test-timeout=600000",
  ...(chosen ?? ["src/**/*.test.ts", "test/**/*.test.ts"]),
]);

// The conformance suite again as an ordinary user (`KILN_TEST_USER`, which CI creates).
if (chosen === undefined && process.getuid?.() === 0)
  step("conformance as an ordinary user", process.execPath, [join(root, "scripts", "test-unprivileged.mjs")]);
