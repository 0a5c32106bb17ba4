/**
 * Memory of the virtual tier: Python's heap and js-exec's QuickJS memory are
 * capped at the sandbox's `memoryBytes` (a bigger allocation fails inside the
 * command, which exits non-zero; the sandbox keeps working), and the memory
 * goes back when the sandbox is killed (Python's worker is terminated; a
 * js-exec worker that grew is let go as soon as its job answers). RSS bounds
 * are generous: they tell "freed" from "kept", not how fast.
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
const JS_BOMBS = [
  "js-exec -c 'const a = []; while (true) a.push(new Uint8Array(1 << 20));'",
  "js-exec -c 'const a = []; while (true) a.push(Buffer.alloc(1 << 20));'",
];

let dir: string;
let kiln: Kiln;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "kiln-mem-"));
  kiln = await Kiln.open({ dataDir: dir });
  // Warm-up: the WASM module is compiled once per process; that is not a leak.
  const warm = await kiln.create({ tier: "virtual" });
  assert.equal((await warm.commands.run("python3 -c 'print(1)'")).stdout, "1\n");
  assert.equal((await warm.commands.run("js-exec -c 'console.log(1)'")).stdout, "1\n");
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

/** Waits until RSS is within `bound` of `baseline`, or gives up after about 10 s; returns the last RSS. */
async function settleNear(baseline: number, bound: number): Promise<number> {
  let now = rss();
  for (let i = 0; i < 100 && now - baseline >= bound; i++) {
    await sleep(100);
    now = rss();
  }
  return now;
}

test("a js-exec allocation loop stops at memoryBytes, the sandbox stays usable, and the memory goes back", async () => {
  const baseline = rss();
  const sb = await kiln.create({ tier: "virtual", limits: { memoryBytes: 128 * MiB, timeoutMs: 120_000 } });
  try {
    // Positive control: an allocation under the cap works.
    const ok = await sb.commands.run(
      "js-exec -c 'const a = []; for (let i = 0; i < 24; i++) a.push(new Uint8Array(1 << 20)); console.log(a.length)'",
    );
    assert.equal(ok.stdout, "24\n");
    for (const bomb of JS_BOMBS) {
      let peak = 0;
      const sampler = setInterval(() => {
        peak = Math.max(peak, rss());
      }, 20);
      try {
        const r = await sb.commands.run(bomb);
        assert.notEqual(r.exitCode, 0, "the allocation loop cannot succeed");
        assert.match(r.stderr, /out of memory/);
      } finally {
        clearInterval(sampler);
      }
      // Without a cap QuickJS's memory grew to its 2 GiB maximum; with it, the cap (128 MiB) and a worker.
      assert.ok(peak - baseline < 600 * MiB, `grew by ${Math.round((peak - baseline) / MiB)} MiB`);
      // The worker that grew is let go once the job has answered, even before the sandbox is killed.
      const now = await settleNear(baseline, 300 * MiB);
      assert.ok(now - baseline < 300 * MiB, `still ${Math.round((now - baseline) / MiB)} MiB above baseline`);
      assert.equal((await sb.commands.run("js-exec -c 'console.log(2)'")).stdout, "2\n");
    }
  } finally {
    await sb.kill();
  }
  const now = await settleNear(baseline, 300 * MiB);
  assert.ok(
    now - baseline < 300 * MiB,
    `still ${Math.round((now - baseline) / MiB)} MiB above baseline after kill`,
  );
});
