/**
 * Moving a workspace between tiers: files, modes, symlinks and mtimes arrive
 * intact in every direction between the virtual tier and each real tier that
 * runs here (a tier that cannot run is skipped with its reason, or fails
 * when KILN_REQUIRE_TIERS names it).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Kiln, type Sandbox, type TierName } from "../src/index.ts";
import { tierRequired } from "./conformance/suite.ts";

const REAL: TierName[] = ["namespace", "oci", "gvisor", "microvm"];
const template = process.env.KILN_TEST_TEMPLATE ?? "default";

async function fill(sb: Sandbox): Promise<void> {
  await sb.files.write("/workspace/project/src/main.py", "print('moved')\n");
  await sb.files.write(
    "/workspace/project/data.bin",
    new Uint8Array(256).map((_, i) => i),
  );
  await sb.files.write("/workspace/project/run.sh", "#!/bin/sh\necho run\n");
  await sb.commands.run("chmod 755 project/run.sh && TZ=UTC touch -d '2022-03-04 05:06:07' project/run.sh");
  await sb.files.symlink("src/main.py", "/workspace/project/entry.py");
}

async function check(sb: Sandbox, from: string): Promise<void> {
  assert.equal(await sb.files.read("/workspace/project/src/main.py"), "print('moved')\n", `from ${from}`);
  assert.deepEqual(
    await sb.files.read("/workspace/project/data.bin", { format: "bytes" }),
    new Uint8Array(256).map((_, i) => i),
  );
  const run = await sb.files.stat("/workspace/project/run.sh");
  assert.equal(run.mode, 0o755);
  assert.equal(new Date(run.mtimeMs).toISOString(), "2022-03-04T05:06:07.000Z");
  const link = await sb.files.stat("/workspace/project/entry.py");
  assert.equal(link.type, "symlink");
  assert.equal(link.symlinkTarget, "src/main.py");
  assert.equal(await sb.files.read("/workspace/project/entry.py"), "print('moved')\n");
}

describe("moving a workspace between tiers", () => {
  let dataDir: string;
  let kiln: Kiln;
  const ready = new Map<TierName, string | true>();

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "kiln-move-"));
    kiln = await Kiln.open({ dataDir });
    for (const s of await kiln.doctor()) ready.set(s.tier, s.available ? true : s.reason);
  });
  after(async () => {
    await kiln?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  for (const tier of REAL) {
    test(`virtual -> ${tier} -> virtual`, async (t) => {
      const status = ready.get(tier);
      if (status !== true) {
        if (tierRequired(tier)) assert.fail(`tier ${tier} required but unavailable: ${status}`);
        t.skip(`tier ${tier} unavailable: ${status}`);
        return;
      }
      const sb = await kiln.create({ tier: "virtual" });
      await fill(sb);
      await sb.move(tier);
      assert.equal((await sb.info()).tier, tier);
      await check(sb, "virtual");
      // Real binaries see the moved files, and their changes move back.
      assert.equal(
        (await sb.commands.run("./project/run.sh && cat project/entry.py")).stdout,
        "run\nprint('moved')\n",
      );
      await sb.commands.run("echo real > project/from-real.txt");
      await sb.move("virtual");
      assert.equal((await sb.info()).tier, "virtual");
      await check(sb, tier);
      assert.equal(await sb.files.read("/workspace/project/from-real.txt"), "real\n");
      await sb.kill();
    });
  }

  test("a move to an unavailable or unknown tier leaves the sandbox where it was", async () => {
    const sb = await kiln.create({ tier: "virtual", template });
    await sb.files.write("/workspace/stay.txt", "here");
    await assert.rejects(
      sb.move("nope" as TierName),
      (e: { code?: string }) => e.code === "invalid_argument",
    );
    assert.equal((await sb.info()).tier, "virtual");
    assert.equal(await sb.files.read("/workspace/stay.txt"), "here");
    await sb.kill();
  });
});
