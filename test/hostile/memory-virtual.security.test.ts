/**
 * Memory of the virtual tier: Python's heap is capped at the sandbox's
 * `memoryBytes` (a bigger allocation is a MemoryError, the command exits
 * non-zero, the sandbox keeps working), and killing the sandbox frees the
 * interpreter's memory (its worker is terminated). RSS bounds are generous:
 * they tell "freed" from "kept", not how fast.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Kiln } from "../../src/index.ts";

const MiB = 1024 * 1024;
const rss = () => process.memoryUsage().rss;
const BOMB = "python3 -c 'a = []\nwhile True: a.append(bytearray(10**7))'";

let dir: string;
let kiln: Kiln;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "kiln-mem-"));
  kiln = await Kiln.open({ dataDir: dir });
  // Warm-up: the WASM module is compiled once per process; that is not a leak.
  const warm = await kiln.create({ tier: "virtual" });
  assert.equal((await warm.commands.run("python3 -c 'print(1)'")).stdout, "1\n");
  await warm.kill();
});
after(async () => {
  await kiln.close();
  rmSync(dir, { recursive: true, force: true });
});

test("a Python allocation over memoryBytes fails in the sandbox, which stays usable; kill frees it", async () => {
  const baseline = rss();
  const sb = await kiln.create({ tier: "virtual", limits: { memoryBytes: 256 * MiB, timeoutMs: 120_000 } });
  let peak = 0;
  const sampler = setInterval(() => {
    peak = Math.max(peak, rss());
  }, 20);
  try {
    const r = await sb.commands.run(BOMB);
    assert.notEqual(r.exitCode, 0, "the allocation loop cannot succeed");
  } finally {
    clearInterval(sampler);
  }
  // Bounded by the cap (256 MiB) plus the interpreter, not by the loop.
  assert.ok(peak - baseline < 700 * MiB, `grew by ${Math.round((peak - baseline) / MiB)} MiB`);
  assert.equal((await sb.commands.run("echo ok")).stdout, "ok\n");
  assert.equal((await sb.commands.run("python3 -c 'print(2)'")).stdout, "2\n");
  await sb.kill();
  // The worker's WASM memory goes with the worker; allow the allocator a moment to return it.
  let now = rss();
  for (let i = 0; i < 50 && now - baseline >= 300 * MiB; i++) {
    await sleep(100);
    now = rss();
  }
  assert.ok(
    now - baseline < 300 * MiB,
    `still ${Math.round((now - baseline) / MiB)} MiB above baseline after kill`,
  );
});
