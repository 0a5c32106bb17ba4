/** The process table's bounds, on the virtual tier (the same table serves every tier). */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Kiln } from "../index.ts";
import { ENDED_RETAIN_MAX, HOLD_MAX_CHARS } from "./commands.ts";

let dataDir: string;
let kiln: Kiln;

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "kiln-commands-"));
  kiln = await Kiln.open({ dataDir });
});

after(async () => {
  await kiln?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

test("ended commands are kept up to ENDED_RETAIN_MAX, the oldest forgotten first", async () => {
  const sb = await kiln.create({ tier: "virtual" });
  const pids: number[] = [];
  for (let i = 0; i < ENDED_RETAIN_MAX + 6; i++)
    pids.push((await sb.commands.run("true", { background: true })).pid);
  for (const pid of pids) await (await sb.commands.connect(pid)).wait().catch(() => {});
  const kept = (await sb.commands.list({ ended: true })).map((p) => p.pid);
  assert.equal(kept.length, ENDED_RETAIN_MAX);
  assert.deepEqual(
    kept.sort((a, b) => a - b),
    pids.slice(-ENDED_RETAIN_MAX).sort((a, b) => a - b),
  );
  const oldest = pids[0]!;
  await assert.rejects(sb.commands.connect(oldest), (e: { code?: string }) => e.code === "not_found");
  await sb.kill();
});

test("output held for the first subscriber stops at HOLD_MAX_CHARS and is a prefix; the result keeps all", async () => {
  const sb = await kiln.create({ tier: "virtual" });
  const n = HOLD_MAX_CHARS + 1000;
  await sb.files.write("/workspace/big.txt", "a".repeat(n));
  const h = await sb.commands.run("cat big.txt; echo tail", { background: true });
  // A plain wait does not take the held output; after the end, all a subscriber gets is what was held.
  const r = await h.wait();
  assert.equal(r.stdout.length, n + 5);
  let held = "";
  await (await sb.commands.connect(h.pid)).wait({
    held: true,
    onStdout: (d) => {
      held += d;
    },
  });
  assert.ok(held.length <= HOLD_MAX_CHARS, `held ${held.length} characters`);
  assert.equal(held, "a".repeat(held.length), "what is held is a prefix of the output");
  await sb.kill();
});

test("an abort while the command is being started still ends it", async () => {
  const sb = await kiln.create({ tier: "virtual" });
  const ac = new AbortController();
  const run = sb.commands.run("sleep 20", { signal: ac.signal, timeoutMs: 10_000 });
  // Past the synchronous check, while the instance is looked up and the process spawned.
  await Promise.resolve();
  ac.abort();
  await assert.rejects(run, (e: { code?: string }) => e.code === "aborted");
  await sb.kill();
});
