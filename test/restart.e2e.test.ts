/**
 * A Kiln process killed with SIGKILL in the middle of a write and with a
 * command running leaves no orphan processes behind. The next process, on
 * opening the data directory (before anyone connects), releases what the
 * dead one held: the sandbox's workspace mount and cgroups, and the
 * temporary file of the unfinished write (which no longer counts against
 * the disk); the running command is `interrupted` in the audit log. It then
 * reopens the sandbox from its workspace (files and audit log intact) and
 * sweeps the dead process's warm pool; `kill` leaves no mounts, cgroups or
 * state directory. Runs on every tier that can run here.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Kiln, TIER_NAMES, type TierName } from "../src/index.ts";
import { tierRequired } from "./conformance/suite.ts";
import { mountsUnder, processesMentioning } from "./host-state.ts";

const template = process.env.KILN_TEST_TEMPLATE ?? "default";

const CHILD = `
import { Kiln } from ${JSON.stringify(join(import.meta.dirname, "..", "src", "index.ts"))};
const kiln = await Kiln.open({ dataDir: process.argv[1] });
const sb = await kiln.create({ tier: process.argv[2], template: process.argv[3] });
await sb.files.write("/workspace/before-crash.txt", "written before the crash");
await sb.commands.run("echo ran before the crash");
await sb.commands.run("sleep 1000", { background: true });
// A write that never finishes: 8 MiB sent, then the stream waits for ever.
const chunk = new Uint8Array(1024 * 1024).fill(120);
let sent = 0;
const endless = new ReadableStream({
  async pull(c) {
    if (sent < 8) { sent++; c.enqueue(chunk); } else await new Promise(() => {});
  },
});
sb.files.write("/workspace/unfinished.bin", endless).catch(() => {});
// Written (to the temporary file) once the disk shows it.
for (let i = 0; i < 1200; i++) {
  if (((await sb.stats()).diskBytes ?? 0) >= 8 * 1024 * 1024) break;
  await new Promise((r) => setTimeout(r, 50));
}
process.stdout.write(sb.id + "\\n");
setInterval(() => {}, 1000);
`;

describe("a killed Kiln process", () => {
  let dataDir: string;
  const ready = new Map<TierName, string | true>();

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "kiln-restart-"));
    const kiln = await Kiln.open({ dataDir });
    for (const s of await kiln.doctor()) ready.set(s.tier, s.available ? true : s.reason);
    await kiln.close();
  });
  after(() => {
    // A failed run may leave mounts: unmount them rather than delete through them.
    for (const line of mountsUnder(dataDir)) spawnSync("umount", ["-l", line.split(" ")[4]!]);
    rmSync(dataDir, { recursive: true, force: true });
  });

  for (const tier of TIER_NAMES) {
    test(`${tier}: no orphans after SIGKILL; the sandbox reopens intact; kill cleans up`, async (t) => {
      const status = ready.get(tier);
      if (status !== true) {
        if (tierRequired(tier)) assert.fail(`tier ${tier} required but unavailable: ${status}`);
        t.skip(`tier ${tier} unavailable: ${status}`);
        return;
      }
      const child = spawn(process.execPath, ["--input-type=module", "-e", CHILD, dataDir, tier, template], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      const id = await new Promise<string>((resolve, reject) => {
        let buf = "";
        child.stdout.on("data", (d) => {
          buf += d;
          const m = /(sb_[a-z0-9]{20})\n/.exec(buf);
          if (m) resolve(m[1]!);
        });
        child.once("exit", (code) => reject(new Error(`child exited early (${code})`)));
      });
      const stateDir = join(dataDir, "sandboxes", id);
      child.kill("SIGKILL");
      await new Promise((r) => child.once("exit", r));
      for (let i = 0; i < 100 && processesMentioning(stateDir).length > 0; i++)
        await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(
        processesMentioning(stateDir),
        [],
        "processes of the sandbox outlived the Kiln process",
      );

      const kiln = await Kiln.open({ dataDir });
      try {
        // Opening the data directory released what the dead process held, before any connect.
        assert.deepEqual(mountsUnder(stateDir), [], "the dead process's workspace mount was left");
        for (const c of ["memory", "pids", "cpu"]) {
          assert.equal(existsSync(`/sys/fs/cgroup/${c}/kiln/${id}`), false, `its cgroup ${c} was left`);
        }
        const sb = await kiln.connect(id);
        const names = (await sb.files.list("/workspace")).map((e) => e.name);
        assert.deepEqual(
          names.filter((n) => n.includes("kiln")),
          [],
          "the unfinished write's temporary file was left",
        );
        assert.equal(names.includes("unfinished.bin"), false, "an unfinished write became a file");
        const disk = (await sb.stats()).diskBytes;
        if (disk !== undefined)
          assert.ok(
            disk < 4 * 1024 * 1024,
            `the unfinished write still counts against the disk: ${disk} bytes`,
          );
        const sleeping = (await sb.logs()).find((l) => l.command === "sleep 1000");
        assert.equal(
          sleeping?.status,
          "interrupted",
          "the command cut off by the crash is not marked interrupted",
        );
        assert.equal(await sb.files.read("/workspace/before-crash.txt"), "written before the crash");
        assert.equal((await sb.commands.run("echo after")).stdout, "after\n");
        assert.ok(
          (await sb.logs()).some((l) => l.command === "echo ran before the crash" && l.exitCode === 0),
        );
        await sb.kill();
      } finally {
        await kiln.close();
      }
      assert.equal(existsSync(stateDir), false, "the state directory was not removed");
      assert.ok(!readFileSync("/proc/self/mountinfo", "utf8").includes(stateDir), "a mount was left behind");
      // Nor any mount of the killed process's warm pool: the next process swept it.
      assert.ok(
        !readFileSync("/proc/self/mountinfo", "utf8").includes(dataDir),
        "a pool mount was left behind",
      );
      for (const c of ["memory", "pids", "cpu"]) {
        assert.equal(existsSync(`/sys/fs/cgroup/${c}/kiln/${id}`), false, `cgroup ${c} was left behind`);
      }
    });
  }
});
