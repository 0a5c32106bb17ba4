/**
 * The gvisor tier run by an ordinary user: the test runs as root and starts Kiln as
 * `KILN_TEST_USER` (default `kiln-test`, the user CI makes). Seen from the host, every process
 * of the sandbox (runsc's Sentry, Gofer and stubs) has that user's uid and gid, real, effective,
 * saved and filesystem alike, never 0; they are in the user's delegated cgroup when the host
 * gives one. Inside, the sandbox's processes are root of gVisor's kernel. A create that does
 * not opt in to the limits that cannot hold is refused naming them, and one asking for egress
 * is refused as unsupported.
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

function hostPids(): number[] {
  return readdirSync("/proc")
    .filter((n) => /^\d+$/.test(n))
    .map(Number);
}

function readOr(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/** Real, effective, saved and filesystem uids and gids of a host process. */
function hostIds(pid: number): { uids: number[]; gids: number[] } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (k: string) =>
    (new RegExp(`^${k}:\\s+(.*)$`, "m").exec(status)?.[1] ?? "").trim().split(/\s+/).map(Number);
  return { uids: field("Uid"), gids: field("Gid") };
}

let started: OrdinaryUser | undefined;
after(() => started?.dispose());

test("gvisor as an ordinary user: every host process of the sandbox has the user's ids; missing limits and egress refused", async (t) => {
  const got = ordinaryUser("kiln-rootless-gvisor-");
  if (typeof got === "string") {
    if (tierRequired("gvisor") && process.getuid?.() === 0) assert.fail(got);
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
const status = (await kiln.doctor()).find((s) => s.tier === "gvisor");
const codeOf = (p) => p.then((s) => s.kill().then(() => "created"), (e) => ({ code: e.code, limits: (e.limits ?? []).map((l) => l.limit) }));
const refused = await codeOf(kiln.create({ tier: "gvisor" }));
const egress = await codeOf(kiln.create({ tier: "gvisor", allowUnenforcedLimits: true, network: { allow: ["example.test:443"] } }));
const sb = await kiln.create({ tier: "gvisor", allowUnenforcedLimits: true });
await sb.commands.run("sleep 600", { background: true });
const inside = (await sb.commands.run("id -u; id -g")).stdout.trim().split("\\n");
const info = await sb.info();
console.log(JSON.stringify({ status, refused, egress, inside, id: sb.id, unenforced: info.unenforcedLimits }));
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
      refused: { code: string; limits: string[] } | string;
      egress: { code: string } | string;
      inside: string[];
      id: string;
      unenforced: { limit: string }[];
    };
    assert.equal(r.status.available, true, r.status.reason);
    const lacking = (r.status.unenforcedLimits ?? []).map((l) => l.limit);
    assert.ok(lacking.includes("diskBytes"), "the disk limit is said not to hold");
    assert.deepEqual(r.refused, { code: "unenforced_limits", limits: lacking });
    assert.deepEqual(r.egress, { code: "unsupported", limits: [] }, "no egress as an ordinary user");
    assert.deepEqual(
      r.unenforced.map((l) => l.limit),
      lacking,
    );
    assert.deepEqual(r.inside, ["0", "0"], "root of gVisor's kernel inside");
    // runsc's processes of this sandbox: by its cgroup (the delegated one), else by the container id they name.
    const delegated = !lacking.includes("memoryBytes");
    const pids = hostPids().filter((p) =>
      delegated
        ? readOr(`/proc/${p}/cgroup`).includes(`/kiln-user-${uid}/${r.id}\n`)
        : readOr(`/proc/${p}/cmdline`).includes(`kiln-${r.id}`),
    );
    // At least runsc's Sentry and Gofer (and the systrap or ptrace stubs).
    assert.ok(pids.length >= 2, `the sandbox's runsc processes are found on the host (${pids.length})`);
    assert.ok(
      pids.some((p) => readOr(`/proc/${p}/cmdline`).includes("runsc")),
      "runsc itself is among them",
    );
    for (const p of pids) {
      const ids = hostIds(p);
      assert.deepEqual(
        ids,
        { uids: [uid, uid, uid, uid], gids: [gid, gid, gid, gid] },
        `host ids of pid ${p}`,
      );
    }
  } finally {
    child.stdin!.end();
    if (child.exitCode === null && child.signalCode === null) await new Promise((r) => child.once("exit", r));
  }
});
