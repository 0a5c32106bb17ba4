/**
 * A kill removes the sandbox's database (not reopened to be emptied first)
 * and its state directory before it returns.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { Kiln } from "../index.ts";

const dataDir = mkdtempSync(join(tmpdir(), "kiln-teardown-"));
after(() => rmSync(dataDir, { recursive: true, force: true }));

test("kill: the database and the state directory are gone when kill returns", async () => {
  const kiln = await Kiln.open({ dataDir });
  const sb = await kiln.create();
  await sb.files.write("/workspace/a.txt", "x".repeat(100_000));
  await sb.commands.run("echo hi");
  const stateDir = join(dataDir, "sandboxes", sb.id);
  assert.ok(existsSync(stateDir));
  await sb.kill();
  assert.equal(existsSync(stateDir), false, "the state directory outlived the kill");
  await assert.rejects(kiln.connect(sb.id), { code: "not_found" });
  assert.deepEqual(readdirSync(join(dataDir, "sandboxes")), [], "something of the sandbox was left");
  await kiln.close();
});
