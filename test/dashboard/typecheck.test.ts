/** The dashboard has its own tsconfig (DOM, Preact JSX); `npm test` type-checks it here. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

test("tsc --noEmit -p dashboard", () => {
  const r = spawnSync(join(ROOT, "node_modules", ".bin", "tsc"), ["--noEmit", "-p", "dashboard"], {
    cwd: ROOT,
    encoding: "utf8",
  });
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
});
