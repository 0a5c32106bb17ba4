/**
 * The microvm tier's fast create path: after a first cold create, the tier
 * saves a booted, idle VM of the template (in the background), and the next
 * creates restore it instead of booting. Two sandboxes restored from one
 * state share the saved guest's boot id (the sign that they were restored,
 * not booted: two boots never share one), but not their hostname, their
 * random numbers or a stale clock; files, commands and limits work as on a
 * booted guest. Skipped with its reason when the tier cannot run here;
 * KILN_REQUIRE_TIERS=microvm makes that a failure.
 */
import assert from "node:assert/strict";
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Kiln, type Sandbox } from "../src/index.ts";
import type { MicrovmBackend } from "../src/tiers/microvm/backend.ts";
import { BOOT_ID_FILE } from "../src/tiers/microvm/boot-state.ts";
import { microvmCacheDir } from "../src/tiers/microvm/guest.ts";
import { tierRequired } from "./conformance/suite.ts";

const template = process.env.KILN_TEST_TEMPLATE ?? "default";

async function out(sb: Sandbox, command: string): Promise<string> {
  const r = await sb.commands.run(command);
  assert.equal(r.exitCode, 0, `${command}: ${r.stderr}`);
  return r.stdout.trim();
}

describe("microvm boot state", () => {
  let dataDir = "";
  let kiln: Kiln;
  let status: true | string = "not probed";
  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "kiln-microvm-boot-state-"));
    kiln = await Kiln.open({ dataDir });
    const s = (await kiln.doctor()).find((x) => x.tier === "microvm");
    status = s?.available ? true : (s?.reason ?? "not listed by doctor");
  });
  after(async () => {
    await kiln?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** The saved boot id of the state the sandboxes were restored from. */
  let savedBootId = "";

  test("creates restore the saved boot state, each made its own sandbox", { timeout: 240_000 }, async (t) => {
    if (status !== true) {
      if (tierRequired("microvm")) assert.fail(`tier microvm required but unavailable: ${status}`);
      t.skip(`tier microvm unavailable: ${status}`);
      return;
    }
    const limits = { pids: 40 };
    // The first create of this machine boots (unless an earlier run saved its state) and has it saved.
    await (await kiln.create({ tier: "microvm", template, limits })).kill();
    await ((await kiln.backend("microvm")) as MicrovmBackend).bootStatesBuilt();

    const [a, b] = [
      await kiln.create({ tier: "microvm", template, limits }),
      await kiln.create({ tier: "microvm", template, limits }),
    ];
    try {
      const bootId = "cat /proc/sys/kernel/random/boot_id";
      const [idA, idB] = [await out(a, bootId), await out(b, bootId)];
      assert.equal(idA, idB, "both were restored from one saved guest");
      savedBootId = idA;
      process.env.KILN_MICROVM_BOOT_STATE = "off";
      const cold = await kiln.create({ tier: "microvm", template, limits });
      delete process.env.KILN_MICROVM_BOOT_STATE;
      assert.notEqual(await out(cold, bootId), idA, "a booted guest has a boot id of its own");
      await cold.kill();

      const [hostA, hostB] = [await out(a, "hostname"), await out(b, "hostname")];
      assert.equal(hostA, a.id.replace(/_/g, "-"));
      assert.equal(hostB, b.id.replace(/_/g, "-"));
      assert.equal(await out(a, "cat /etc/hostname"), hostA);
      assert.match(await out(a, "getent hosts $(hostname)"), /^127\.0\.1\.1\s/);

      const random = "head -c16 /dev/urandom | od -An -tx1";
      assert.notEqual(await out(a, random), await out(b, random), "the two share their random pool");

      const before = Date.now();
      const guestMs = Number(await out(a, "date +%s%3N"));
      assert.ok(Math.abs(guestMs - before) < 2000, `guest clock off by ${guestMs - before} ms`);

      // Files both ways, and the workspace is each sandbox's own (copied from the saved image).
      await a.files.write("/workspace/note.txt", "from the host\n");
      assert.equal(await out(a, "cat /workspace/note.txt"), "from the host");
      await out(a, "echo from the guest > /workspace/back.txt");
      assert.equal(await a.files.read("/workspace/back.txt", { format: "text" }), "from the guest\n");
      assert.equal((await b.commands.run("test -e /workspace/note.txt")).exitCode, 1);
      const r = await a.commands.run("echo err >&2; exit 3");
      assert.deepEqual([r.exitCode, r.stderr], [3, "err\n"]);

      // The process limit is this sandbox's, re-applied over the saved guest's; the exit status is
      // 1 either way, and only a fork the guest's cgroup refused names the limit. The sleeps hold
      // their slots long enough for the loop to ask for more than 40 at once.
      assert.equal(await out(a, "cat /sys/fs/cgroup/kiln/pids.max"), "40");
      await assert.rejects(a.commands.run("for i in $(seq 60); do sleep 8 & done; exit 1"), (e: unknown) => {
        const err = e as { code?: string; limit?: string };
        return err.code === "limit_exceeded" && err.limit === "pids";
      });
    } finally {
      await a.kill();
      await b.kill();
    }
  });

  test("a saved state that does not load means a cold boot, and is built again", {
    timeout: 240_000,
  }, async (t) => {
    if (status !== true || savedBootId === "") {
      t.skip(status === true ? "no saved state from the test before" : `tier microvm unavailable: ${status}`);
      return;
    }
    const root = join(microvmCacheDir(dataDir), "boot-state");
    const dir = readdirSync(root)
      .map((n) => join(root, n))
      .find((d) => {
        const f = join(d, BOOT_ID_FILE);
        return existsSync(f) && readFileSync(f, "utf8").trim() === savedBootId;
      });
    assert.ok(dir, "the state is in the cache, with its boot id");
    // Replaced, not written over: a QEMU restoring it elsewhere reads the old file to its end.
    writeFileSync(join(dir, "vm-state.garbage"), "not a migration stream\n".repeat(100));
    renameSync(join(dir, "vm-state.garbage"), join(dir, "vm-state"));
    const sb = await kiln.create({ tier: "microvm", template, limits: { pids: 40 } });
    try {
      assert.notEqual(await out(sb, "cat /proc/sys/kernel/random/boot_id"), savedBootId, "it booted");
      assert.equal(await out(sb, "hostname"), sb.id.replace(/_/g, "-"));
    } finally {
      await sb.kill();
    }
    await ((await kiln.backend("microvm")) as MicrovmBackend).bootStatesBuilt();
    const again = readFileSync(join(dir, BOOT_ID_FILE), "utf8").trim();
    assert.notEqual(again, savedBootId, "the state was built again");
  });
});
