#!/usr/bin/env node
// The conformance suite as an ordinary user: `KILN_TEST_USER` names the user (CI creates one;
// run as root). Every tier that runs without root runs; `KILN_UNPRIVILEGED_TIERS` (default
// `virtual,namespace,gvisor`) must; the others are skipped with the reason `kiln doctor` gives. The
// user's limits are what the host gives it: the setup delegates cgroups to the users named in
// `KILN_CGROUP_USERS` (scripts/delegate-cgroups.sh); cases testing a limit that does not hold skip.
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const user = process.env.KILN_TEST_USER;
if (!user) {
  process.stdout.write("skipped: set KILN_TEST_USER to an ordinary user to run the suite as\n");
  process.exit(0);
}
if (process.getuid?.() !== 0) {
  console.error("test-unprivileged: run as root (it starts the suite as KILN_TEST_USER)");
  process.exit(2);
}

const dir = mkdtempSync(join(tmpdir(), "kiln-unprivileged-"));
chmodSync(dir, 0o755);
const repo = join(dir, "repo");
const home = join(dir, "home");
mkdirSync(repo);
mkdirSync(home);
let status = 1;
try {
  if (spawnSync("chown", [`${user}:`, home], { stdio: "inherit" }).status !== 0)
    throw new Error(`no user ${user}`);
  // The checkout, wherever it is (under a home folder the user cannot enter, say), at a path it can reach.
  if (spawnSync("mount", ["--bind", root, repo], { stdio: "inherit" }).status !== 0)
    throw new Error("cannot bind the checkout for the ordinary user");
  const bin = join(repo, "node_modules", ".bin");
  const r = spawnSync(
    "runuser",
    [
      "-u",
      user,
      "--",
      "env",
      "-i",
      `HOME=${home}`,
      `TMPDIR=${home}`,
      `PATH=${bin}:/usr/sbin:/usr/bin:/sbin:/bin`,
      `KILN_DATA_DIR=${join(home, "kiln")}`,
      `KILN_REQUIRE_TIERS=${process.env.KILN_UNPRIVILEGED_TIERS ?? "virtual,namespace,gvisor"}`,
      // The machine's shared template cache, read-only to the user (only root builds templates).
      ...(process.env.KILN_TEMPLATE_DIR ? [`KILN_TEMPLATE_DIR=${process.env.KILN_TEMPLATE_DIR}`] : []),
      join(bin, "node"),
      "--test",
      "--test-reporter=spec",
      "--test-reporter-destination=stdout",
      `--test-reporter=${join(repo, "scripts", "test-summary.mjs")}`,
      "--test-reporter-destination=stdout",
      "--test-timeout=600000",
      // The files named on the command line (relative to the checkout), or the suite's file of each
      // tier. The same suite through the client (client.test.ts) tests the client, which the root
      // run already does on every tier; run here it would only repeat the tiers at twice the time.
      ...(process.argv.length > 2
        ? process.argv.slice(2)
        : readdirSync(join(root, "test", "conformance"))
            .filter((f) => f.endsWith(".test.ts") && f !== "client.test.ts")
            .map((f) => `test/conformance/${f}`)),
    ],
    { cwd: repo, stdio: "inherit" },
  );
  status = r.status ?? 1;
} catch (e) {
  console.error(`test-unprivileged: ${e.message}`);
} finally {
  // The checkout is bound inside the scratch folder: removing the folder while the bind is still
  // there would remove the checkout through it. Detach it (lazily, so a busy mount goes too) and
  // remove the folder only once the mount is gone.
  spawnSync("umount", ["--lazy", repo]);
  const mounted = readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .some((line) => line.split(" ")[4] === repo);
  if (mounted) console.error(`test-unprivileged: ${repo} is still mounted; ${dir} is left in place`);
  else rmSync(dir, { recursive: true, force: true });
}
process.exit(status);
