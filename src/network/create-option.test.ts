/** The `network` option at create: checked, stored, refused where the tier cannot enforce it. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Kiln } from "../index.ts";

test("a sandbox without a network option has none; bad rules and egress on a tier without it are refused", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-net-opt-"));
  const kiln = await Kiln.open({ dataDir });
  try {
    const sb = await kiln.create();
    assert.deepEqual((await sb.info()).network, { egress: "none", allow: [], deny: [] });
    const none = await kiln.create({ network: { egress: "none", deny: ["x.test"] } });
    assert.deepEqual((await none.info()).network, { egress: "none", allow: [], deny: ["x.test"] });
    await assert.rejects(kiln.create({ network: { allow: ["a..b"] } }), { code: "invalid_argument" });
    await assert.rejects(kiln.create({ network: { egress: "some" as "all" } }), { code: "invalid_argument" });
    const capable = (await kiln.backend("virtual")).capabilities.egress;
    if (!capable)
      await assert.rejects(kiln.create({ network: { allow: ["files.test"] } }), { code: "unsupported" });
    const before = (await kiln.list()).length;
    assert.equal(before, 2, "refused creates leave nothing behind");
    // The record keeps the canonical policy across processes.
    await kiln.close();
    const again = await Kiln.open({ dataDir });
    try {
      assert.deepEqual((await (await again.connect(none.id)).info()).network.deny, ["x.test"]);
    } finally {
      await again.close();
    }
  } finally {
    await kiln.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
