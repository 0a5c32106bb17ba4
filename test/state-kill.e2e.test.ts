/**
 * A Kiln process killed with SIGKILL in the middle of a snapshot or of a fork.
 * The next Kiln on the data directory finds the source sandbox whole and
 * usable (its files, commands), lists no half-made snapshot and no sandbox of
 * the unfinished fork (a fork gives all its sandboxes or none), leaves on disk
 * nothing that is not listed, and no process, mount or cgroup of a sandbox the
 * fork was making; a new snapshot and a new fork then succeed. The kill lands
 * at a moment seen on disk: while a snapshot's image is being written, and
 * while the fork's sandboxes are being made. Runs on every tier that can run
 * here but microvm, whose forks take tens of seconds each under emulation.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Kiln, type Sandbox, TIER_NAMES, type TierName } from "../src/index.ts";
import { tierRequired } from "./conformance/suite.ts";
import { mountsUnder, processesMentioning } from "./host-state.ts";

const template = process.env.KILN_TEST_TEMPLATE ?? "default";

/** Forks asked for by the killed Kiln. */
const FORKS = 3;

/**
 * The child Kiln: a sandbox with a small file and a large one (so that a copy of it takes a while),
 * and a snapshot taken before; prints the ids, then `go`, then snapshots or forks it.
 */
const CHILD = `
import { Kiln } from ${JSON.stringify(join(import.meta.dirname, "..", "src", "index.ts"))};
const [dataDir, tier, template, mode, forks] = process.argv.slice(1);
const kiln = await Kiln.open({ dataDir });
const sb = await kiln.create({ tier, template });
await sb.files.write("/workspace/kept.txt", "written before the crash");
const big = new Uint8Array(24 * 1024 * 1024);
for (let i = 0; i < big.length; i += 65536) crypto.getRandomValues(big.subarray(i, i + 65536));
await sb.files.write("/workspace/big.bin", big);
const before = await sb.snapshot({ name: "before" });
process.stdout.write("id " + sb.id + " " + before.id + "\\n");
process.stdout.write("go\\n");
if (mode === "snapshot") await sb.snapshot({ name: "during" });
else await sb.fork(Number(forks));
process.stdout.write("done\\n");
setInterval(() => {}, 1000);
`;

/**
 * Where the kill lands: the first moment the data directory shows it (a snapshot's image being
 * written; a fork's sandbox being made; a fork's sandbox made, recorded and opened, others not yet).
 */
type At = "snapshot image" | "fork sandboxes" | "a fork made";

/** Names in a directory ([] when it does not exist). */
function names(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Cgroup directories of sandbox `id` (v1 controllers and v2). */
function cgroupsOf(id: string): string[] {
  return ["memory/kiln", "pids/kiln", "cpu/kiln", "cpuacct/kiln", "kiln"]
    .map((c) => `/sys/fs/cgroup/${c}/${id}`)
    .filter((p) => existsSync(p));
}

/** SHA-256 of a workspace file, in hex. */
async function digestOf(sb: Sandbox, path: string): Promise<string> {
  const bytes = await sb.files.read(path, { format: "bytes" });
  const { createHash } = await import("node:crypto");
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * Runs the child until it prints `go`, then watches the data directory and kills it with SIGKILL
 * at `at`. Returns the source's id, the earlier snapshot's, every sandbox directory seen meanwhile
 * (the fork's, made or half-made), and whether the kill landed where asked (else after `done`).
 */
async function killDuring(
  dataDir: string,
  tier: TierName,
  mode: "snapshot" | "fork",
  at: At,
): Promise<{ id: string; before: string; seen: Set<string>; landed: boolean }> {
  const child: ChildProcess = spawn(
    process.execPath,
    ["--input-type=module", "-e", CHILD, dataDir, tier, template, mode, String(FORKS)],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  let buf = "";
  child.stdout!.on("data", (d) => {
    buf += d;
  });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  while (!buf.includes("go\n")) {
    if (gone()) throw new Error(`child exited early: ${buf}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  const m = /id (sb_[a-z0-9]{20}) (snap_[a-z0-9]{20})\n/.exec(buf)!;
  const id = m[1]!;
  const sandboxes = join(dataDir, "sandboxes");
  const snapshots = join(dataDir, "snapshots");
  const seen = new Set<string>();
  let landed = false;
  for (;;) {
    if (buf.includes("done\n") || gone()) break;
    for (const n of names(sandboxes)) if (n !== id) seen.add(n);
    if (at === "snapshot image") landed = names(snapshots).some((n) => n.startsWith(".partial-"));
    else if (at === "fork sandboxes") landed = seen.size > 0;
    else landed = [...seen].some((n) => names(join(sandboxes, n, "open-by")).length > 0);
    if (landed) break;
    await new Promise((r) => setImmediate(r));
  }
  child.kill("SIGKILL");
  await exited;
  for (const n of names(sandboxes)) if (n !== id) seen.add(n);
  return { id, before: m[2]!, seen, landed };
}

describe("SIGKILL of Kiln during a snapshot or a fork", () => {
  let root: string;
  const ready = new Map<TierName, string | true>();

  before(async () => {
    root = mkdtempSync(join(tmpdir(), "kiln-state-kill-"));
    const kiln = await Kiln.open({ dataDir: join(root, "probe") });
    for (const s of await kiln.doctor()) ready.set(s.tier, s.available ? true : s.reason);
    await kiln.close();
  });
  after(() => {
    for (const line of mountsUnder(root)) spawnSync("umount", ["-l", line.split(" ")[4]!]);
    rmSync(root, { recursive: true, force: true });
  });

  const cases: [mode: "snapshot" | "fork", at: At][] = [
    ["snapshot", "snapshot image"],
    ["fork", "snapshot image"],
    ["fork", "fork sandboxes"],
    ["fork", "a fork made"],
  ];
  for (const tier of TIER_NAMES) {
    for (const [mode, at] of cases) {
      test(`${tier}: SIGKILL during ${mode} (${at}): the source whole, nothing half-made left`, async (t) => {
        if (tier === "microvm") {
          t.skip("microvm: a fork boots a guest per sandbox, tens of seconds each under emulation");
          return;
        }
        const status = ready.get(tier);
        if (status !== true) {
          if (tierRequired(tier)) assert.fail(`tier ${tier} required but unavailable: ${status}`);
          t.skip(`tier ${tier} unavailable: ${status}`);
          return;
        }
        const dataDir = join(root, `${tier}-${mode}-${at.replaceAll(" ", "-")}`);
        const { id, before, seen, landed } = await killDuring(dataDir, tier, mode, at);
        if (!landed) t.diagnostic(`the ${mode} ended before the kill could land at: ${at}`);

        const kiln = await Kiln.open({ dataDir });
        try {
          // Opening the directory finished or rolled back the operation, before any connect.
          assert.deepEqual(
            (await kiln.list()).map((s) => s.id),
            [id],
            "a sandbox of the unfinished fork is listed",
          );
          const listed = (await kiln.snapshots()).map((s) => s.id);
          assert.equal(listed[0], before, "the earlier snapshot is gone");
          if (mode === "fork" || landed) assert.deepEqual(listed, [before], "a half-made snapshot is listed");
          assert.deepEqual(
            names(join(dataDir, "snapshots")).sort(),
            [...listed].sort(),
            "the snapshot directory holds what no listed snapshot is",
          );
          assert.deepEqual(
            names(join(dataDir, "sandboxes")),
            [id],
            "the sandbox directory holds what no listed sandbox is",
          );
          // (The dead process's warm workspace pool is swept when the next sandbox starts: checked at the end.)
          assert.deepEqual(
            mountsUnder(join(dataDir, "sandboxes")),
            [],
            "a sandbox mount of the dead process was left",
          );
          for (const fork of seen) {
            assert.deepEqual(cgroupsOf(fork), [], `a cgroup of the fork ${fork} was left`);
            let left = processesMentioning(fork);
            for (let i = 0; i < 100 && left.length > 0; i++) {
              await new Promise((r) => setTimeout(r, 50));
              left = processesMentioning(fork);
            }
            assert.deepEqual(left, [], `processes of the fork ${fork} were left`);
          }

          const sb = await kiln.connect(id);
          assert.equal(await sb.files.read("/workspace/kept.txt"), "written before the crash");
          const digest = await digestOf(sb, "/workspace/big.bin");
          assert.equal((await sb.commands.run("echo usable")).stdout, "usable\n");

          const snap = await sb.snapshot({ name: "after" });
          const forks = await sb.fork(2);
          assert.equal(forks.length, 2);
          for (const f of forks) {
            assert.equal(await f.files.read("/workspace/kept.txt"), "written before the crash");
            await f.kill();
          }
          const fromBefore = await kiln.create({ snapshot: before });
          assert.equal(await digestOf(fromBefore, "/workspace/big.bin"), digest);
          await fromBefore.kill();
          await kiln.removeSnapshot(snap.id);
          await kiln.removeSnapshot(before);
          await sb.kill();
          assert.deepEqual(names(join(dataDir, "snapshots")), []);
          assert.deepEqual(names(join(dataDir, "sandboxes")), []);
        } finally {
          await kiln.close();
        }
        assert.deepEqual(mountsUnder(dataDir), [], "a mount was left behind");
      });
    }
  }
});
