/**
 * Saved state is restored only as Kiln wrote it: a snapshot or pause image
 * changed on disk (a byte flipped, a file swapped for a link) is refused with
 * `internal` before a tier (and, on gVisor, runsc with its privileges) reads
 * it, and nothing is made from it. Images are mode 0600 in 0700 folders.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, unlinkSync } from "node:fs";
import { open, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Kiln } from "../../src/index.ts";
import { rejectsWithCode, tierRequired } from "../conformance/suite.ts";

let dir: string;
let kiln: Kiln;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "kiln-state-sec-"));
  kiln = await Kiln.open({ dataDir: dir });
});
after(async () => {
  await kiln.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Flips one byte of `path` at `offset` (counted from the end when negative). */
async function flip(path: string, offset: number): Promise<void> {
  const fh = await open(path, "r+");
  try {
    const size = (await fh.stat()).size;
    const at = offset < 0 ? size + offset : offset;
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, at);
    b[0] = b[0]! ^ 0xff;
    await fh.write(b, 0, 1, at);
  } finally {
    await fh.close();
  }
}

test("a snapshot changed on disk is refused; restoring it byte for byte makes it good again", async () => {
  const sb = await kiln.create({ tier: "virtual" });
  await sb.files.write("/workspace/secret.txt", "mine");
  const snap = await sb.snapshot();
  const folder = join(dir, "snapshots", snap.id);
  assert.equal(statSync(folder).mode & 0o777, 0o700);
  for (const f of readdirSync(folder)) assert.equal(statSync(join(folder, f)).mode & 0o777, 0o600);
  const image = join(folder, "workspace.db");
  const good = await readFile(image);
  const before = (await kiln.list()).length;
  await flip(image, -100);
  await rejectsWithCode(kiln.create({ snapshot: snap.id }), "internal");
  await rejectsWithCode(kiln.create({ snapshot: snap.id, tier: "namespace" }), "internal");
  assert.equal((await kiln.list()).length, before, "nothing was made from it");
  // A link where the image was: refused, never followed.
  unlinkSync(image);
  symlinkSync("/etc/passwd", image);
  await rejectsWithCode(kiln.create({ snapshot: snap.id }), "internal");
  unlinkSync(image);
  await writeFile(image, good, { mode: 0o600 });
  const copy = await kiln.create({ snapshot: snap.id });
  assert.equal(await copy.files.read("/workspace/secret.txt"), "mine");
  await copy.kill();
  await sb.kill();
  await kiln.removeSnapshot(snap.id);
});

for (const tier of ["gvisor", "microvm"] as const) {
  test(`${tier}: a pause image changed on disk is refused and the sandbox stays paused`, async (t) => {
    const status = (await kiln.doctor()).find((s) => s.tier === tier);
    if (!status?.available) {
      if (tierRequired(tier)) assert.fail(`${tier} required but unavailable: ${status?.reason}`);
      t.skip(`tier ${tier} unavailable: ${status?.reason}`);
      return;
    }
    const sb = await kiln.create({ tier });
    await sb.commands.run("sleep 600 >/dev/null 2>&1 &");
    await sb.pause();
    const pauseDir = join(dir, "sandboxes", sb.id, "pause");
    const files = readdirSync(pauseDir);
    assert.ok(files.length > 0);
    for (const f of files) assert.equal(statSync(join(pauseDir, f)).mode & 0o777, 0o600);
    const image = join(pauseDir, files[0]!);
    await flip(image, 64);
    await rejectsWithCode(sb.resume(), "internal");
    assert.equal((await sb.info()).state, "paused");
    await flip(image, 64);
    await sb.resume();
    assert.equal((await sb.commands.run("pgrep -x sleep >/dev/null && echo alive")).stdout, "alive\n");
    await sb.kill();
  });
}

test("fork's own snapshot (kept unhashed, never recorded) is no snapshot to callers: not listed, named, restored or removed", async () => {
  const sb = await kiln.create({});
  await sb.files.write("/workspace/f.txt", "parent");
  // The snapshot fork makes for itself, made as fork makes it.
  const states = (
    kiln as unknown as {
      states: {
        forkSource(id: string): Promise<{ rec: { id: string }; dir: string }>;
        removeForkSource(dir: string): Promise<void>;
      };
    }
  ).states;
  const own = await states.forkSource(sb.id);
  assert.ok(!(await kiln.snapshots()).some((s) => s.id === own.rec.id));
  await rejectsWithCode(kiln.snapshotInfo(own.rec.id), "not_found");
  await rejectsWithCode(kiln.create({ snapshot: own.rec.id }), "not_found");
  await rejectsWithCode(kiln.removeSnapshot(own.rec.id), "not_found");
  await states.removeForkSource(own.dir);
  // fork itself works, and leaves no snapshot of its own behind.
  const [f] = await sb.fork(1);
  assert.equal(await f!.files.read("/workspace/f.txt"), "parent");
  assert.deepEqual(readdirSync(join(dir, "snapshots")), []);
});
