/**
 * Real-binary tiers (namespace, oci, gvisor): Kiln beside the raw runtime it
 * wraps, on the same `default` template, in the same run:
 *  - create + first exec: Kiln `create` + `run("echo hi")` vs the raw tool running `echo hi` once,
 *    cold (the runtime starts on create) and with a warm pool (create takes a started sandbox);
 *  - warm exec through the agent vs the raw tool's own start (what each exec would cost without an agent);
 *  - idle memory of a running sandbox (RSS of its whole process tree) vs the raw tool idling on `sleep`;
 *  - 50 sandboxes at once: create and exec in all, concurrently.
 * Each ratio is measured in three separate rounds; the table shows the round with the median
 * ratio and the spread. gvisor is measured once per runsc build that runs here (systrap, ptrace).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kiln, type TierName } from "../src/index.ts";
import { defaultTemplateDir, TemplateStore } from "../src/templates/template-store.ts";
import { locate } from "../src/tiers/common/oci-runtime-choice.ts";
import { runscBuilds } from "../src/tiers/gvisor/runtimes.ts";
import { step } from "./progress.ts";
import { quantile, type Row, ratioSpread, timeIt } from "./stats.ts";

/** Separate rounds per ratio. */
const ROUNDS = 3;

const exited = (c: ChildProcess) => new Promise((r) => c.once("exit", r));

/** RSS in bytes of `root` and all its descendants. */
export function treeRss(roots: number[]): number {
  const children = new Map<number, number[]>();
  for (const p of readdirSync("/proc")) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const stat = readFileSync(`/proc/${p}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(p)]);
    } catch {
      // Gone meanwhile.
    }
  }
  let total = 0;
  const seen = new Set<number>();
  const walk = (pid: number) => {
    if (seen.has(pid)) return;
    seen.add(pid);
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      if (m) total += Number(m[1]) * 1024;
    } catch {
      return;
    }
    for (const c of children.get(pid) ?? []) walk(c);
  };
  for (const r of roots) walk(r);
  return total;
}

/** Pids whose command line mentions `needle` (the sandbox's state dir appears in every runtime's arguments). */
export function pidsMentioning(needle: string): number[] {
  return readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid)
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, "utf8").includes(needle);
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** One thing measured: a tier, and for gvisor one platform (its runsc build). */
export interface Target {
  tier: TierName;
  /** What the table's title calls the tool. */
  tool: string;
  /** `KILN_GVISOR_PLATFORM` while Kiln opens this target's backend. */
  platform?: "systrap" | "ptrace";
}

/** The raw runtime of a target, running a command on the template's rootfs. */
export function rawTool(target: Target, rootfs: string, scratch: string): (args: string[]) => ChildProcess {
  const { tier } = target;
  if (tier === "namespace") {
    return (args) =>
      spawn(
        "bwrap",
        [
          "--unshare-all",
          "--unshare-user",
          "--die-with-parent",
          "--ro-bind",
          rootfs,
          "/",
          "--proc",
          "/proc",
          "--dev",
          "/dev",
          "--",
          ...args,
        ],
        { stdio: "ignore" },
      );
  }
  if (tier === "oci") {
    let n = 0;
    return (args) => {
      const bundle = join(scratch, `bundle-${n}`);
      mkdirSync(bundle, { recursive: true });
      writeFileSync(join(bundle, "config.json"), JSON.stringify(minimalOciConfig(rootfs, args)));
      return spawn(
        "runc",
        ["--root", join(scratch, "runc"), "run", "--bundle", bundle, `raw-${process.pid}-${n++}`],
        {
          stdio: "ignore",
        },
      );
    };
  }
  // The same runsc build and platform as Kiln's sandboxes of this target.
  const build = runscBuilds({ KILN_GVISOR_PLATFORM: target.platform }).at(0)!;
  const binary = locate(build) ?? build.binary;
  return (args) =>
    spawn(
      binary,
      [
        "--root",
        join(scratch, build.stateName),
        "--network=none",
        ...build.flags,
        "do",
        "-root",
        rootfs,
        ...args,
      ],
      {
        stdio: "ignore",
      },
    );
}

/** The smallest OCI config that runs `args` read-only on `rootfs`, as `runc spec` would start it. */
function minimalOciConfig(rootfs: string, args: string[]): Record<string, unknown> {
  return {
    ociVersion: "1.0.2",
    process: { terminal: false, user: { uid: 0, gid: 0 }, args, env: ["PATH=/usr/bin:/bin"], cwd: "/" },
    root: { path: rootfs, readonly: true },
    mounts: [
      { destination: "/proc", type: "proc", source: "proc" },
      { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755"] },
    ],
    linux: { namespaces: ["pid", "network", "ipc", "uts", "mount"].map((type) => ({ type })) },
  };
}

/** Opens Kiln on `dataDir` for a target (for gvisor: with only that platform's runsc build). */
export async function openFor(target: Target, dataDir: string, warmPool?: number): Promise<Kiln> {
  const before = process.env.KILN_GVISOR_PLATFORM;
  if (target.platform) process.env.KILN_GVISOR_PLATFORM = target.platform;
  try {
    const kiln = await Kiln.open({ dataDir, ...(warmPool ? { warmPool } : {}) });
    // The backend reads the variable when it is made: make it now.
    if (target.platform) await kiln.backend("gvisor");
    return kiln;
  } finally {
    if (before === undefined) delete process.env.KILN_GVISOR_PLATFORM;
    else process.env.KILN_GVISOR_PLATFORM = before;
  }
}

/** The real tiers that run here (`KILN_BENCH_TIERS` picks some), gvisor once per platform that runs. */
export async function targets(dataDir: string): Promise<Target[]> {
  const only = process.env.KILN_BENCH_TIERS?.split(",");
  const out: Target[] = [];
  const kiln = await Kiln.open({ dataDir });
  try {
    for (const s of await kiln.doctor()) {
      if (!s.available || s.tier === "virtual" || s.tier === "microvm") continue;
      if (s.tier === "namespace") out.push({ tier: s.tier, tool: "bubblewrap" });
      if (s.tier === "oci") out.push({ tier: s.tier, tool: "runc" });
    }
  } finally {
    await kiln.close();
  }
  if (only && !only.includes("gvisor")) return out.filter((t) => only.includes(t.tier));
  for (const platform of ["systrap", "ptrace"] as const) {
    const k = await openFor({ tier: "gvisor", tool: "", platform }, dataDir);
    try {
      const s = (await k.doctor()).find((x) => x.tier === "gvisor");
      if (s?.available)
        out.push({
          tier: "gvisor",
          tool: `gVisor ${s.reason.split(",")[0]}, platform ${platform}`,
          platform,
        });
      else step(`gvisor on ${platform}: not measured (${s?.reason})`);
    } finally {
      await k.close();
    }
  }
  return only ? out.filter((t) => only.includes(t.tier)) : out;
}

/** What one round measured, ms (memory in bytes). */
interface Round {
  raw: number[];
  create: number[];
  warmPool: number[];
  warmExec: number[];
  kilnIdle: number;
  rawIdle: number;
  kiln50: number;
  raw50: number;
}

/** One round of every measurement of a target. */
async function round(
  target: Target,
  dataDir: string,
  rootfs: string,
  scratch: string,
  n: number,
): Promise<Round> {
  const { tier } = target;
  const raw = rawTool(target, rootfs, scratch);
  step("raw tool");
  const rawRun = await timeIt(
    n,
    async () => {
      await exited(raw(["/bin/echo", "hi"]));
    },
    2,
  );
  const kiln = await openFor(target, dataDir);
  try {
    step("create + first exec, cold");
    const created: Awaited<ReturnType<Kiln["create"]>>[] = [];
    // A pause between creates lets the workspace pool refill, as it would between requests.
    const createTimes: number[] = [];
    for (let i = 0; i < n; i++) {
      await new Promise((r) => setTimeout(r, 400));
      const t = performance.now();
      const sb = await kiln.create({ tier });
      await sb.commands.run("echo hi");
      createTimes.push(performance.now() - t);
      created.push(sb);
    }
    step("create + first exec, warm pool");
    // The same with warm sandboxes (Kiln.open({ warmPool: 1 })): create takes a started one.
    const warmKiln = await openFor(target, dataDir, 1);
    const warmTimes: number[] = [];
    try {
      await warmKiln.prewarm({ tier });
      for (let i = 0; i < n; i++) {
        await new Promise((r) => setTimeout(r, 400));
        await warmKiln.warmed();
        const t = performance.now();
        const w = await warmKiln.create({ tier });
        await w.commands.run("echo hi");
        warmTimes.push(performance.now() - t);
        await w.kill();
      }
    } finally {
      await warmKiln.close();
    }
    step("warm exec");
    const sb = created[0]!;
    const warmExec = await timeIt(60, () => sb.commands.run("echo hi"), 5);
    step("idle memory");
    const stateDir = join(dataDir, "sandboxes", sb.id);
    const kilnIdle = treeRss(pidsMentioning(stateDir).slice(0, 1));
    const idle = raw(["/bin/sleep", "30"]);
    await new Promise((r) => setTimeout(r, tier === "gvisor" ? 1500 : 300));
    const rawIdle = treeRss([idle.pid!]);
    idle.kill("SIGKILL");
    await exited(idle);
    for (const s of created) await s.kill();

    step("50 sandboxes at once");
    const fifty = 50;
    const t50 = performance.now();
    const many = await Promise.all(
      Array.from({ length: fifty }, async () => {
        const s = await kiln.create({ tier });
        await s.commands.run("echo hi");
        return s;
      }),
    );
    const kiln50 = performance.now() - t50;
    step("50 raw tools at once");
    const rawT50 = performance.now();
    await Promise.all(Array.from({ length: fifty }, () => exited(raw(["/bin/echo", "hi"]))));
    const raw50 = performance.now() - rawT50;
    for (const s of many) await s.kill();
    return {
      raw: rawRun,
      create: createTimes,
      warmPool: warmTimes,
      warmExec,
      kilnIdle,
      rawIdle,
      kiln50,
      raw50,
    };
  } finally {
    await kiln.close();
  }
}

/** A row of the run with the median ratio of `pair` over the rounds, with the spread. */
function spreadRow(
  rounds: Round[],
  pair: (r: Round) => [number, number],
  row: Omit<Row, "kiln" | "raw" | "note">,
): Row {
  const s = ratioSpread(rounds.map(pair));
  return { ...row, kiln: s.kiln, raw: s.raw, note: `median round; ${s.text}` };
}

/** Runs the measurements for every real tier that is ready here; rows per tier (gvisor: per platform). */
export async function benchRealTiers(): Promise<{ tier: TierName; tool: string; rows: Row[] }[]> {
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-bench-real-"));
  const scratch = mkdtempSync(join(tmpdir(), "kiln-bench-raw-"));
  const out: { tier: TierName; tool: string; rows: Row[] }[] = [];
  try {
    step("probing the tiers");
    const ready = await targets(dataDir);
    if (ready.length === 0) return out;
    // Build (or find) the template before timing anything.
    const kiln = await openFor(ready[0]!, dataDir);
    try {
      const warm = await kiln.create({ tier: ready[0]!.tier });
      await warm.kill();
    } finally {
      await kiln.close();
    }
    const rootfs = (await new TemplateStore(defaultTemplateDir(dataDir)).get("default")).rootfs;
    for (const target of ready) {
      const rounds: Round[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        step(`${target.tier}${target.platform ? ` (${target.platform})` : ""}: round ${r + 1} of ${ROUNDS}`);
        rounds.push(await round(target, dataDir, rootfs, scratch, target.tier === "gvisor" ? 5 : 8));
      }
      const label = { namespace: "`bwrap`", oci: "`runc run`", gvisor: "`runsc do`" }[
        target.tier as "namespace"
      ];
      const p = (xs: number[], q = 0.5) => quantile(xs, q);
      out.push({
        tier: target.tier,
        tool: target.tool,
        rows: [
          spreadRow(rounds, (r) => [p(r.create), p(r.raw)], {
            metric: "create + first exec, p50",
            unit: "ms",
            rawLabel: `${label} running echo`,
          }),
          spreadRow(rounds, (r) => [p(r.warmPool), p(r.raw)], {
            metric: "create + first exec, warm pool, p50",
            unit: "ms",
            rawLabel: `${label} running echo`,
          }),
          spreadRow(rounds, (r) => [p(r.warmExec), p(r.raw)], {
            metric: "warm exec, p50",
            unit: "ms",
            rawLabel: `${label} running echo (no agent: a start per exec)`,
          }),
          spreadRow(rounds, (r) => [p(r.warmExec, 0.95), p(r.raw, 0.95)], {
            metric: "warm exec, p95",
            unit: "ms",
            rawLabel: `${label} running echo`,
          }),
          spreadRow(rounds, (r) => [r.kilnIdle / 2 ** 20, r.rawIdle / 2 ** 20], {
            metric: "idle memory per sandbox (RSS of its processes)",
            unit: "MiB",
            rawLabel: `${label} idling on sleep`,
          }),
          spreadRow(rounds, (r) => [r.kiln50, r.raw50], {
            metric: "50 sandboxes at once: create + exec in all",
            unit: "ms",
            rawLabel: `50 concurrent ${label} echo`,
          }),
        ],
      });
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(scratch, { recursive: true, force: true });
  }
  return out;
}
