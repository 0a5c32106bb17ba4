/**
 * The virtual tier's Python driver (and its HTTP module) as Python: pyflakes finds no problem in them
 * (pyflakes3 is installed by scripts/setup-system.sh). Its behaviour is tested
 * through the real interpreter in python-runtime.test.ts and the conformance suite.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const SOURCES = ["./python-driver.py", "./python-http.py"].map((f) =>
  fileURLToPath(new URL(f, import.meta.url)),
);

test("pyflakes finds nothing in python-driver.py and python-http.py", (t) => {
  const r = spawnSync("pyflakes3", SOURCES, { encoding: "utf8" });
  if (r.error) {
    const reason = "pyflakes3 is not installed (scripts/setup-system.sh installs it)";
    // CI names the tiers it requires; there the linter must run too.
    if (process.env.KILN_REQUIRE_TIERS) assert.fail(reason);
    t.skip(reason);
    return;
  }
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
});
