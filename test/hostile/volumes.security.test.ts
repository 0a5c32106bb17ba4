/**
 * Hostile use of a shared volume, on every tier that mounts volumes. Sandbox
 * A plants symlinks in a volume it shares with sandbox B: to its own
 * workspace, to the host paths of its workspace and of B's, and to a host
 * directory. Following them from B reaches only B's own files (a symlink
 * resolves in the mount namespace of the process that follows it), never
 * A's or the host's; removing the volume deletes the links, not what they
 * name. A setuid-root copy of `id` left in the volume grants nothing (the
 * mount is nosuid, every process has no_new_privs and an empty capability
 * bounding set), no device node can be made there, and on the host the
 * volumes sit in a directory only root can enter.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Kiln, type TierName } from "../../src/index.ts";
import { tierRequired } from "../conformance/suite.ts";
import { mountsUnder } from "../host-state.ts";

const template = process.env.KILN_TEST_TEMPLATE ?? "default";

describe("volumes against a hostile sandbox", () => {
  let root: string;
  const ready = new Map<TierName, string | true>();

  before(async () => {
    root = mkdtempSync(join(tmpdir(), "kiln-volumes-sec-"));
    const kiln = await Kiln.open({ dataDir: join(root, "probe") });
    for (const s of await kiln.doctor()) ready.set(s.tier, s.available ? true : s.reason);
    await kiln.close();
  });
  after(() => {
    for (const line of mountsUnder(root)) spawnSync("umount", ["-l", line.split(" ")[4]!]);
    rmSync(root, { recursive: true, force: true });
  });

  for (const tier of ["namespace", "oci", "gvisor"] as const) {
    test(`${tier}: planted symlinks reach only the follower's own files; setuid and devices void`, async (t) => {
      const status = ready.get(tier);
      if (status !== true) {
        if (tierRequired(tier)) assert.fail(`tier ${tier} required but unavailable: ${status}`);
        t.skip(`tier ${tier} unavailable: ${status}`);
        return;
      }
      const dataDir = join(root, tier);
      const canary = join(root, `${tier}-canary`);
      mkdirSync(canary);
      writeFileSync(join(canary, "keep.txt"), "host file");
      const kiln = await Kiln.open({ dataDir });
      try {
        const vol = await kiln.createVolume("shared");
        const volumes = [{ volume: "shared", path: "/mnt/v" }];
        const [a, b] = await Promise.all([
          kiln.create({ tier, template, volumes }),
          kiln.create({ tier, template, volumes }),
        ]);
        await a.files.write("/workspace/secret.txt", "A's secret");
        await b.files.write("/workspace/secret.txt", "B's own");
        const hostA = join(dataDir, "sandboxes", a.id);
        const plant = await a.commands.run(
          [
            "ln -s /workspace/secret.txt /mnt/v/to-workspace",
            "ln -s /workspace /mnt/v/to-workspace-dir",
            `ln -s ${hostA} /mnt/v/to-host-a`,
            `ln -s ${join(dataDir, "sandboxes", b.id)} /mnt/v/to-host-b`,
            `ln -s ${canary} /mnt/v/to-canary`,
            "mkdir -p /mnt/v/deep && ln -s ../../../../../../../../ /mnt/v/deep/up",
          ].join(" && "),
        );
        assert.equal(plant.exitCode, 0, plant.stderr);

        // Followed from B, each link resolves in B's own root.
        assert.equal((await b.commands.run("cat /mnt/v/to-workspace")).stdout, "B's own");
        assert.equal((await b.commands.run("cat /mnt/v/to-workspace-dir/secret.txt")).stdout, "B's own");
        for (const link of ["to-host-a", "to-host-b", "to-canary"]) {
          const r = await b.commands.run(`cat /mnt/v/${link}/* /mnt/v/${link}/*/* 2>/dev/null; true`);
          assert.doesNotMatch(r.stdout, /A's secret|host file/, link);
        }
        const up = await b.commands.run("cat /mnt/v/deep/up/workspace/secret.txt");
        assert.equal(up.stdout, "B's own");
        // Writes through a link land in B's own workspace, not A's.
        assert.equal((await b.commands.run("echo overwritten > /mnt/v/to-workspace")).exitCode, 0);
        assert.equal(await a.files.read("/workspace/secret.txt"), "A's secret");
        assert.equal(await b.files.read("/workspace/secret.txt"), "overwritten\n");

        // A setuid-root binary left in the volume grants nothing.
        const suid = await a.commands.run("cp /usr/bin/id /mnt/v/id && chmod 4755 /mnt/v/id");
        assert.equal(suid.exitCode, 0, suid.stderr);
        const status = (await b.commands.run("grep -E '^(NoNewPrivs|CapBnd|CapEff):' /proc/self/status"))
          .stdout;
        // gVisor's /proc lists no NoNewPrivs line; where listed, it is set.
        if (/NoNewPrivs/.test(status)) assert.match(status, /NoNewPrivs:\s+1/);
        assert.match(status, /CapBnd:\s+0+\n/);
        assert.match(status, /CapEff:\s+0+\n/);
        const viaSuid = await b.commands.run("/mnt/v/id -u; grep CapEff /proc/self/status");
        assert.match(viaSuid.stdout, /^0\nCapEff:\s+0+\n$/, "no capability gained through the setuid file");
        if (tier !== "gvisor") {
          // gVisor's kernel lists no per-mount flags; the host kernel's do.
          const opts = (await b.commands.run("awk '$5 == \"/mnt/v\" { print $6 }' /proc/self/mountinfo"))
            .stdout;
          assert.match(opts, /nosuid/);
          assert.match(opts, /nodev/);
        }
        // No device node can be made in the volume.
        assert.notEqual((await a.commands.run("mknod /mnt/v/mem c 1 1")).exitCode, 0);

        // Only root enters the volumes on the host.
        assert.equal(statSync(join(dataDir, "volumes")).mode & 0o777, 0o700);
        assert.equal(statSync(join(dataDir, "volumes", vol.id)).mode & 0o777, 0o700);

        // Removing the volume removes the links, never what they name.
        await Promise.all([a.kill(), b.kill()]);
        await kiln.removeVolume(vol.id);
        assert.equal(readFileSync(join(canary, "keep.txt"), "utf8"), "host file");
      } finally {
        await kiln.close();
      }
    });
  }
});
