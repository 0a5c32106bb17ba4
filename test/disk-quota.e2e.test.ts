/**
 * The per-owner disk quota of state images (`maxDiskBytes`): snapshots count
 * their bytes, a snapshot past the quota is refused (`limit_exceeded`, limit
 * `maxDiskBytes`) and leaves nothing on disk, a removed snapshot makes room,
 * `fork(n)` needs room for its n copies (refused before any fork exists),
 * another owner is not affected, and a memory pause (gVisor) that would not
 * fit is refused before the runtime writes anything, the sandbox running on.
 * Through `kiln serve`, a key's own `maxDiskBytes` is the quota, as a 429.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Kiln } from "../src/index.ts";
import { rejectsWithCode, tierRequired } from "./conformance/suite.ts";
import { assertError, testServer } from "./server/helpers.ts";

const MiB = 1024 * 1024;
let root: string;
before(() => {
  root = mkdtempSync(join(tmpdir(), "kiln-disk-quota-"));
});
after(() => rmSync(root, { recursive: true, force: true }));

/** A Kiln whose owners (metadata `kiln.owner`) each have `maxDiskBytes` of state images. */
function openWithQuota(dataDir: string, maxDiskBytes: number): Promise<Kiln> {
  return Kiln.open({ dataDir, admission: { ownerLabel: "kiln.owner", quotaOf: () => ({ maxDiskBytes }) } });
}

test("snapshots and fork count against the owner's maxDiskBytes", async () => {
  const dataDir = join(root, "virtual");
  const kiln = await openWithQuota(dataDir, 5 * MiB);
  try {
    const sb = await kiln.create({ metadata: { "kiln.owner": "alice" } });
    // 2 MiB that SQLite cannot shrink: each snapshot is a little over 2 MiB.
    await sb.files.write("/workspace/blob.bin", randomBytes(2 * MiB));
    const s1 = await sb.snapshot();
    assert.ok(s1.sizeBytes > 2 * MiB && s1.sizeBytes < 2.5 * MiB, String(s1.sizeBytes));
    await sb.snapshot();
    const e = await rejectsWithCode(sb.snapshot(), "limit_exceeded");
    assert.equal(e.limit, "maxDiskBytes");
    assert.equal(e.value, 5 * MiB);
    assert.equal((await kiln.snapshots()).length, 2);
    assert.equal(readdirSync(join(dataDir, "snapshots")).length, 2, "the refused snapshot left nothing");

    // Another owner has a quota of its own.
    const bob = await kiln.create({ metadata: { "kiln.owner": "bob" } });
    await bob.files.write("/workspace/blob.bin", randomBytes(2 * MiB));
    await bob.snapshot();

    // One snapshot removed: room for one fork (its hidden snapshot is its copy), not for two.
    await kiln.removeSnapshot(s1.id);
    const f = await rejectsWithCode(sb.fork(2), "limit_exceeded");
    assert.equal(f.limit, "maxDiskBytes");
    assert.equal((await kiln.list({ metadata: { "kiln.owner": "alice" } })).length, 1, "no fork was made");
    const [one] = await sb.fork(1);
    assert.equal((await one!.files.read("/workspace/blob.bin", { format: "bytes" })).length, 2 * MiB);
    assert.equal((await kiln.snapshots()).length, 2, "fork's hidden snapshot is gone");
    // A pause that writes no image (virtual: files only) costs nothing.
    await sb.pause();
    assert.equal((await sb.info()).state, "paused");
  } finally {
    await kiln.close();
  }
});

for (const tier of ["gvisor", "microvm"] as const) {
  test(`${tier}: a memory pause that would not fit is refused before anything is written`, async (t) => {
    const dataDir = join(root, tier);
    const kiln = await openWithQuota(dataDir, MiB);
    try {
      const status = (await kiln.doctor()).find((s) => s.tier === tier)!;
      if (!status.available) {
        if (tierRequired(tier)) assert.fail(`tier ${tier} required but unavailable: ${status.reason}`);
        t.skip(`tier ${tier} unavailable: ${status.reason}`);
        return;
      }
      const sb = await kiln.create({ tier, metadata: { "kiln.owner": "alice" } });
      await sb.files.write("/workspace/f.txt", "kept");
      const e = await rejectsWithCode(sb.pause(), "limit_exceeded");
      assert.equal(e.limit, "maxDiskBytes");
      assert.equal((await sb.info()).state, "running");
      assert.equal((await sb.commands.run("cat /workspace/f.txt")).stdout, "kept");
      // Files only (no image) is always possible.
      await sb.pause({ keepMemory: false });
      assert.equal((await sb.info()).state, "paused");
      await sb.kill();
    } finally {
      await kiln.close();
    }
  });
}

test("kiln serve: a key's own maxDiskBytes, as 429 naming the limit", async () => {
  const t = await testServer({ key: { maxDiskBytes: 1 } });
  try {
    const sb = (await (await t.req("POST", "/v1/sandboxes", { json: {} })).json()) as { id: string };
    const err = await assertError(
      await t.req("POST", `/v1/sandboxes/${sb.id}/snapshots`, { json: {} }),
      "limit_exceeded",
      429,
    );
    assert.equal(err.limit, "maxDiskBytes");
    assert.equal(err.value, 1);
    await assertError(
      await t.req("POST", `/v1/sandboxes/${sb.id}/fork`, { json: { count: 1 } }),
      "limit_exceeded",
      429,
    );
  } finally {
    await t.dispose();
  }
});
