/**
 * The namespace tier run by an ordinary user: the test runs as root and starts
 * Kiln as `KILN_TEST_USER` (default `kiln-test`, the user CI makes). The
 * sandbox's processes have that user's own host uid and gid, never 0; they
 * are in the user's delegated cgroup when the host gives one
 * (`scripts/delegate-cgroups.sh`); and a create or move that does not opt in
 * to the limits that cannot hold (the disk limit at least) is refused, naming them.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, test } from "node:test";
import { tierRequired } from "./conformance/suite.ts";
import { type OrdinaryUser, ordinaryUser } from "./ordinary-user.ts";

const templates = process.env.KILN_TEMPLATE_DIR ?? "/var/cache/kiln/templates";

/** The host pids of the processes in a cgroup v1 or v2 path ending in `/<id>`. */
function pidsInCgroupOf(id: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cgroup`, "utf8").includes(`/${id}\n`)) out.push(Number(name));
    } catch {}
  }
  return out;
}

function parentOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
}

function hostIds(pid: number): { uid: number; gid: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, "m").exec(status)?.[1]);
  return { uid: field("Uid"), gid: field("Gid") };
}

let started: OrdinaryUser | undefined;
after(() => started?.dispose());

test("namespace as an ordinary user: the user's own host ids, its delegated cgroup, no silent missing limit", async (t) => {
  const got = ordinaryUser("kiln-rootless-");
  if (typeof got === "string") {
    if (tierRequired("namespace") && process.getuid?.() === 0) assert.fail(got);
    t.skip(got);
    return;
  }
  started = got;
  const { user, uid, gid, home: dir, repo, node } = got;
  const script = join(dir, "kiln-as-user.ts");
  writeFileSync(
    script,
    `import { Kiln } from ${JSON.stringify(join(repo, "src", "index.ts"))};
const kiln = await Kiln.open({ dataDir: ${JSON.stringify(join(dir, "data"))} });
const status = (await kiln.doctor()).find((s) => s.tier === "namespace");
let refused;
try {
  await kiln.create({ tier: "namespace" });
} catch (e) {
  refused = { code: e.code, limits: (e.limits ?? []).map((l) => l.limit) };
}
const moving = await kiln.create({ tier: "virtual" });
await moving.files.write("/workspace/moved.txt", "moved");
let moveRefused;
try {
  await moving.move("namespace");
} catch (e) {
  moveRefused = e.code;
}
await moving.move("namespace", { allowUnenforcedLimits: true });
const moved = { ...(await moving.info()), read: await moving.files.read("/workspace/moved.txt") };
await moving.kill();
const sb = await kiln.create({ tier: "namespace", allowUnenforcedLimits: true });
await sb.commands.run("sleep 600", { background: true });
const info = await sb.info();
console.log(JSON.stringify({ status, refused, moveRefused, moved, id: sb.id, unenforced: info.unenforcedLimits }));
for await (const _ of process.stdin);
await sb.kill();
await kiln.close();
`,
  );
  chmodSync(script, 0o644);
  const child = spawn(
    "runuser",
    ["-u", user, "--", "env", `HOME=${dir}`, `KILN_TEMPLATE_DIR=${templates}`, node, script],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  try {
    const line = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once("line", resolve);
      child.once("exit", (code) => reject(new Error(`Kiln as ${user} exited with ${code}`)));
    });
    const r = JSON.parse(line) as {
      status: { available: boolean; reason: string; unenforcedLimits?: { limit: string }[] };
      refused?: { code: string; limits: string[] };
      moveRefused?: string;
      moved: { tier: string; read: string; unenforcedLimits?: { limit: string }[] };
      id: string;
      unenforced: { limit: string }[];
    };
    assert.equal(r.status.available, true, r.status.reason);
    const lacking = (r.status.unenforcedLimits ?? []).map((l) => l.limit);
    assert.ok(lacking.includes("diskBytes"), "the disk limit is said not to hold");
    assert.deepEqual(r.refused, { code: "unenforced_limits", limits: lacking });
    assert.equal(
      r.moveRefused,
      "unenforced_limits",
      "a move onto the tier is refused without the opt-in too",
    );
    assert.deepEqual(
      [r.moved.tier, r.moved.read, r.moved.unenforcedLimits?.map((l) => l.limit)],
      ["namespace", "moved", lacking],
    );
    assert.deepEqual(
      r.unenforced.map((l) => l.limit),
      lacking,
    );
    // The sandbox's processes, found from the host by their cgroup (the delegated one) or, without
    // delegation, from the user's process running sleep 600.
    const delegated = !lacking.includes("memoryBytes");
    const sleeps = readdirSync("/proc")
      .filter((n) => /^\d+$/.test(n))
      .map(Number)
      .filter((p) => {
        try {
          return (
            readFileSync(`/proc/${p}/cmdline`, "utf8") === "sleep\u0000600\u0000" && hostIds(p).uid === uid
          );
        } catch {
          return false;
        }
      });
    // Without delegation: the user's sleep and its parent (the agent, or the shell it started).
    const pids = delegated ? pidsInCgroupOf(r.id) : [...sleeps, ...sleeps.map(parentOf)];
    assert.ok(pids.length >= 2, `the agent and sleep are found on the host (${pids.length})`);
    for (const p of pids) assert.deepEqual(hostIds(p), { uid, gid }, `host ids of pid ${p}`);
    if (delegated) {
      const cg = readFileSync(`/proc/${pids[0]}/cgroup`, "utf8");
      assert.match(cg, new RegExp(`/kiln-user-${uid}/${r.id}\\n`), "in the user's delegated subtree");
    }
  } finally {
    child.stdin!.end();
    if (child.exitCode === null && child.signalCode === null) await new Promise((r) => child.once("exit", r));
  }
});
