/**
 * A microvm's pause keeps its memory: the guest's clock, which stands still
 * while the VM's state is saved, is set to the host's when it is restored
 * (a guest paused for a minute must not run a minute late). Skipped with its
 * reason when the tier cannot run here; KILN_REQUIRE_TIERS=microvm makes
 * that a failure. A process streaming output through Kiln while the VM is
 * saved does not cut a frame in two (the next Kiln would read garbage and
 * boot the guest afresh). (Processes and files across pause are the
 * conformance suite's and state-cycles' tests.)
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Kiln } from "../src/index.ts";
import { tierRequired } from "./conformance/suite.ts";

const template = process.env.KILN_TEST_TEMPLATE ?? "default";

describe("microvm pause", () => {
  let dataDir = "";
  let kiln: Kiln;
  let status: true | string = "not probed";
  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "kiln-microvm-pause-"));
    kiln = await Kiln.open({ dataDir });
    const s = (await kiln.doctor()).find((x) => x.tier === "microvm");
    status = s?.available ? true : (s?.reason ?? "not listed by doctor");
  });
  after(async () => {
    await kiln?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test("a process writing output without pause is restored running: no frame was cut by the save", async (t) => {
    if (status !== true) {
      if (tierRequired("microvm")) assert.fail(`tier microvm required but unavailable: ${status}`);
      t.skip(`tier microvm unavailable: ${status}`);
      return;
    }
    const sb = await kiln.create({ tier: "microvm", template });
    try {
      // Output frames of every size stream to Kiln while the VM is stopped and saved.
      await sb.commands.run("cat /dev/zero | tr '\\0' x", { background: true });
      await sb.commands.run("nohup sleep 100000 >/dev/null 2>&1 &");
      for (let i = 0; i < 3; i++) {
        await sb.pause();
        await sb.resume();
        const r = await sb.commands.run("pgrep -x sleep >/dev/null && echo alive");
        assert.equal(r.stdout, "alive\n", `cycle ${i}: the guest was booted afresh (${r.stderr})`);
      }
    } finally {
      await sb.kill();
    }
  });

  test("a restored guest's clock is the host's, not the clock it stopped with", async (t) => {
    if (status !== true) {
      if (tierRequired("microvm")) assert.fail(`tier microvm required but unavailable: ${status}`);
      t.skip(`tier microvm unavailable: ${status}`);
      return;
    }
    const sb = await kiln.create({ tier: "microvm", template });
    try {
      await sb.commands.run("nohup sleep 100000 >/dev/null 2>&1 &");
      await sb.pause();
      await new Promise((r) => setTimeout(r, 5000));
      await sb.resume();
      const before = Date.now();
      const r = await sb.commands.run("date +%s%3N");
      const afterMs = Date.now();
      assert.equal(r.exitCode, 0, r.stderr);
      const guest = Number(r.stdout.trim());
      assert.ok(
        guest >= before - 1500 && guest <= afterMs + 1500,
        `guest clock off by ${guest - afterMs} ms`,
      );
      assert.equal((await sb.commands.run("pgrep -x sleep")).exitCode, 0, "the process ran on");
    } finally {
      await sb.kill();
    }
  });
});
