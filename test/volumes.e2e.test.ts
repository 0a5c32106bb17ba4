/**
 * Named volumes on every tier that mounts them: two sandboxes share one
 * volume at a path below /mnt, nosuid and nodev; concurrent writers from
 * both lose no line; a sandbox's kill, pause and fork leave the volume's
 * files alone (a fork mounts the same volume); a volume that a sandbox
 * mounts cannot be removed (`conflict`), and removing it afterwards deletes
 * its files. The virtual tier, which mounts none, says so (`unsupported`).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Kiln, type Sandbox, type TierName } from "../src/index.ts";
import { rejectsWithCode, tierRequired } from "./conformance/suite.ts";
import { mountsUnder } from "./host-state.ts";

const template = process.env.KILN_TEST_TEMPLATE ?? "default";
const REAL: TierName[] = ["namespace", "oci", "gvisor"];

/** The mount options of the mount at `path`, as the sandbox sees them. */
async function mountOptions(sb: Sandbox, path: string): Promise<string[]> {
  const r = await sb.commands.run(`awk '$5 == "${path}" { print $6 }' /proc/self/mountinfo`);
  assert.equal(r.exitCode, 0, r.stderr);
  const line = r.stdout.trim().split("\n").at(-1) ?? "";
  assert.ok(line.length > 0, `no mount at ${path}`);
  return line.split(",");
}

describe("volumes", () => {
  let root: string;
  const ready = new Map<TierName, string | true>();

  before(async () => {
    root = mkdtempSync(join(tmpdir(), "kiln-volumes-e2e-"));
    const kiln = await Kiln.open({ dataDir: join(root, "probe") });
    for (const s of await kiln.doctor()) ready.set(s.tier, s.available ? true : s.reason);
    await kiln.close();
  });
  after(() => {
    for (const line of mountsUnder(root)) spawnSync("umount", ["-l", line.split(" ")[4]!]);
    rmSync(root, { recursive: true, force: true });
  });

  const available = (tier: TierName, t: { skip(m: string): void }): boolean => {
    const status = ready.get(tier);
    if (status === true) return true;
    if (tierRequired(tier)) assert.fail(`tier ${tier} required but unavailable: ${status}`);
    t.skip(`tier ${tier} unavailable: ${status}`);
    return false;
  };

  test("bad input is refused with its code and leaves nothing", async () => {
    const kiln = await Kiln.open({ dataDir: join(root, "input") });
    try {
      await rejectsWithCode(kiln.createVolume("../up"), "invalid_argument");
      await rejectsWithCode(kiln.createVolume(""), "invalid_argument");
      const v = await kiln.createVolume("data");
      await rejectsWithCode(kiln.createVolume("data"), "conflict");
      assert.match(v.id, /^vol_[a-z0-9]{20}$/);
      const bad = async (volumes: unknown, code: string) =>
        rejectsWithCode(kiln.create({ tier: "virtual", volumes: volumes as never }), code);
      await bad([{ volume: "data", path: "/workspace/data" }], "invalid_argument");
      await bad([{ volume: "data", path: "/mnt" }], "invalid_argument");
      await bad([{ volume: "data", path: "/mnt/../etc" }], "invalid_argument");
      await bad([{ volume: "data", path: "mnt/x" }], "invalid_argument");
      await bad([{ volume: "nope", path: "/mnt/x" }], "not_found");
      await bad([{ volume: "vol_aaaaaaaaaaaaaaaaaaaa", path: "/mnt/x" }], "not_found");
      await bad(
        [
          { volume: "data", path: "/mnt/x" },
          { volume: "data", path: "/mnt/x/y" },
        ],
        "invalid_argument",
      );
      // The virtual tier mounts no volume, and says so.
      await bad([{ volume: "data", path: "/mnt/x" }], "unsupported");
      assert.deepEqual(await kiln.list(), []);
      await rejectsWithCode(kiln.removeVolume("vol_aaaaaaaaaaaaaaaaaaaa"), "not_found");
      await rejectsWithCode(kiln.removeVolume("x"), "invalid_argument");
      assert.deepEqual(
        (await kiln.volumes()).map((x) => x.name),
        ["data"],
      );
    } finally {
      await kiln.close();
    }
  });

  for (const tier of REAL) {
    test(`${tier}: shared by two sandboxes, nosuid and nodev, untouched by kill, pause and fork`, async (t) => {
      if (!available(tier, t)) return;
      const dataDir = join(root, tier);
      const kiln = await Kiln.open({ dataDir });
      try {
        const vol = await kiln.createVolume("shared");
        const volumes = [{ volume: "shared", path: "/mnt/shared" }];
        const [a, b] = await Promise.all([
          kiln.create({ tier, template, volumes }),
          kiln.create({ tier, template, volumes: [{ volume: vol.id, path: "/mnt/other/place" }] }),
        ]);
        assert.deepEqual((await a.info()).volumes, [{ id: vol.id, name: "shared", path: "/mnt/shared" }]);
        // gVisor's kernel shows no per-mount flags (its setuid void is covered in volumes.security.test.ts).
        if (tier !== "gvisor") {
          const opts = await mountOptions(a, "/mnt/shared");
          assert.ok(opts.includes("nosuid") && opts.includes("nodev"), opts.join(","));
        }
        // One sandbox's write is the other's read.
        await a.files.write("/mnt/shared/hello", "from a");
        assert.equal(await b.files.read("/mnt/other/place/hello"), "from a");
        // The rest of /mnt is not writable, and the template is not touched.
        assert.notEqual((await a.commands.run("touch /mnt/stray")).exitCode, 0);

        // Concurrent writers: each writes 50 files of its own (written whole, then renamed into place)
        // and, where the tier's kernel is the host's (locks and O_APPEND shared), appends 200 lines
        // under flock to one file. gVisor's locks are its own kernel's, per sandbox: two gVisor
        // sandboxes appending to one file can write at the same offset (docs/tiers/gvisor.md).
        const sharedLocks = tier !== "gvisor";
        const writer = [
          "import fcntl, os, sys",
          "d, n, locks = sys.argv[1], sys.argv[2], sys.argv[3] == 'locks'",
          "for i in range(1, 201 if locks else 1):",
          "    with open(d + '/log', 'a') as f:",
          "        fcntl.flock(f, fcntl.LOCK_EX); f.write(f'{n}-{i}\\n'); f.flush()",
          "for i in range(1, 51):",
          "    with open(f'{d}/.{n}-{i}', 'w') as f: f.write(n * 4096)",
          "    os.rename(f'{d}/.{n}-{i}', f'{d}/{n}-{i}.txt')",
          "",
        ].join("\n");
        const checker = [
          "import glob",
          "fs = glob.glob('/mnt/shared/*.txt')",
          "bad = [f for f in fs if open(f).read() != f.split('/')[-1][0] * 4096]",
          "print(len(fs), bad)",
          "",
        ].join("\n");
        await Promise.all([a.files.write("/tmp/w.py", writer), b.files.write("/tmp/w.py", writer)]);
        await a.files.write("/tmp/check.py", checker);
        const locks = sharedLocks ? "locks" : "no";
        const [ra, rb] = await Promise.all([
          a.commands.run(`python3 /tmp/w.py /mnt/shared a ${locks}`, { timeoutMs: 300_000 }),
          b.commands.run(`python3 /tmp/w.py /mnt/other/place b ${locks}`, { timeoutMs: 300_000 }),
        ]);
        assert.equal(ra.exitCode, 0, ra.stderr);
        assert.equal(rb.exitCode, 0, rb.stderr);
        if (sharedLocks) {
          const log = (await b.files.read("/mnt/other/place/log")).split("\n").filter(Boolean);
          assert.equal(log.length, 400);
          for (const w of ["a", "b"]) {
            const mine = log.filter((l) => l.startsWith(`${w}-`)).map((l) => Number(l.slice(2)));
            assert.deepEqual(
              mine,
              Array.from({ length: 200 }, (_, i) => i + 1),
              `${w}'s lines in order, whole`,
            );
          }
        }
        const whole = await a.commands.run("python3 /tmp/check.py");
        assert.equal(whole.stdout.trim(), "100 []", whole.stderr);

        // A fork mounts the same volume: its write is the parent's read.
        const [fork] = await a.fork(1);
        assert.deepEqual((await fork!.info()).volumes, (await a.info()).volumes);
        await fork!.files.write("/mnt/shared/from-fork.txt", "fork");
        assert.equal(await a.files.read("/mnt/shared/from-fork.txt"), "fork");

        // A pause (and the resume of the next call) keeps the volume mounted and its files.
        await b.pause();
        assert.equal(await b.files.read("/mnt/other/place/from-fork.txt"), "fork");

        // Mounted: not removable. Killing the sandboxes leaves its files.
        await rejectsWithCode(kiln.removeVolume(vol.id), "conflict");
        await Promise.all([a.kill(), b.kill(), fork!.kill()]);
        const c = await kiln.create({ tier, template, volumes });
        assert.equal(await c.files.read("/mnt/shared/hello"), "from a");
        assert.equal((await c.commands.run("test -f /mnt/shared/a-50.txt")).exitCode, 0);
        // The virtual tier mounts no volume: a sandbox with one cannot move there, and stays.
        await rejectsWithCode(kiln.move(c.id, "virtual"), "unsupported");
        assert.equal((await c.info()).tier, tier);
        await c.kill();
        await kiln.removeVolume(vol.id);
        assert.deepEqual(await kiln.volumes(), []);
        assert.deepEqual(readdirSync(join(dataDir, "volumes")), []);
        assert.equal(existsSync(join(dataDir, "volumes", vol.id)), false);
      } finally {
        await kiln.close();
      }
    });
  }
});
