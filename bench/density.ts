/**
 * Density: how many idle sandboxes of each tier this machine holds before
 * anything degrades, and what one idle sandbox's memory is made of.
 *
 * Per tier, sandboxes are started in steps (each runs `echo hi` once, then
 * idles); after each step one more sandbox is created and used (create +
 * first exec, median of 3, killed after) and a held one runs 10 warm execs.
 * A step degrades when either latency is more than twice what it was with no
 * sandboxes, or when the host's available memory falls below the floor
 * (the larger of 4 GiB and 20% of memory); the run stops there, or at the
 * last step (200 on the real tiers, 2,000 on virtual). Bounded on purpose: it
 * must not take a shared machine down.
 *
 * The memory of one idle sandbox on a real tier is read after the first step:
 * each host process of the sandbox (the runtime, the agent, gVisor's Sentry
 * and Gofer) with its RSS and PSS (`/proc/PID/smaps_rollup`; PSS shares a
 * page between the processes that map it, so a template's shared page cache
 * counts once over all sandboxes), and the sandbox cgroup's charge.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { Kiln, type Sandbox, type TierName } from "../src/index.ts";
import { SandboxCgroup } from "../src/tiers/common/cgroups.ts";
import { step } from "./progress.ts";
import { quantile } from "./stats.ts";

/** Idle sandboxes after each step. */
const STEPS: Record<string, number[]> = {
  virtual: [1, 100, 250, 500, 1000, 2000],
  real: [1, 10, 25, 50, 100, 150, 200],
};

/** Below this much available memory the run stops, bytes. */
const FLOOR_BYTES = Math.max(4 * 2 ** 30, 0.2 * totalmem());

/** `MemAvailable` of /proc/meminfo, bytes. */
function memAvailable(): number {
  const m = /MemAvailable:\s+(\d+) kB/.exec(readFileSync("/proc/meminfo", "utf8"));
  return Number(m?.[1] ?? 0) * 1024;
}

/** A host process of a sandbox: name, RSS and PSS in bytes. */
interface Proc {
  pid: number;
  name: string;
  rss: number;
  pss: number;
}

function readProc(pid: number): Proc | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
    const kb = (re: RegExp, s: string) => Number(re.exec(s)?.[1] ?? 0) * 1024;
    const args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
    // A process without arguments (gVisor's systrap stubs) is named by its comm.
    const exe = (args[0] ?? "").split("/").at(-1) || `(${readFileSync(`/proc/${pid}/comm`, "utf8").trim()})`;
    // runsc names its processes by their first argument after the flags: `boot` (Sentry), `gofer`.
    const role = args.find((a) => a === "boot" || a === "gofer" || a === "run" || a === "--idmap-exec");
    return {
      pid,
      name: `${exe}${role ? ` ${role}` : ""}`,
      rss: kb(/VmRSS:\s+(\d+) kB/, status),
      pss: kb(/^Pss:\s+(\d+) kB/m, rollup),
    };
  } catch {
    return undefined;
  }
}

/** One reading of /proc: each process's parent and command line. */
class ProcTable {
  private readonly children = new Map<number, number[]>();
  private readonly cmdlines = new Map<number, string>();

  constructor() {
    for (const p of readdirSync("/proc")) {
      if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
      try {
        const stat = readFileSync(`/proc/${p}/stat`, "utf8");
        const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
        this.children.set(ppid, [...(this.children.get(ppid) ?? []), Number(p)]);
        this.cmdlines.set(Number(p), readFileSync(`/proc/${p}/cmdline`, "utf8"));
      } catch {
        // Gone meanwhile.
      }
    }
  }

  /**
   * The host processes of sandbox `id` (state directory `stateDir`): those in its cgroup, those
   * whose arguments name its state directory (a runtime outside the cgroup), and their descendants.
   */
  sandbox(id: string, stateDir: string): Proc[] {
    const roots = [...this.cmdlines].filter(([, c]) => c.includes(stateDir)).map(([p]) => p);
    const cg = new SandboxCgroup(id).dirs();
    const dir = cg.find((d) => d.includes("/memory/")) ?? cg[0];
    try {
      if (dir)
        roots.push(
          ...readFileSync(join(dir, "cgroup.procs"), "utf8").split("\n").filter(Boolean).map(Number),
        );
    } catch {
      // No cgroup (yet, or any more).
    }
    const out: Proc[] = [];
    const seen = new Set<number>();
    const walk = (pid: number) => {
      if (seen.has(pid)) return;
      seen.add(pid);
      const p = readProc(pid);
      if (p) out.push(p);
      for (const c of this.children.get(pid) ?? []) walk(c);
    };
    for (const r of roots) walk(r);
    return out;
  }
}

/** utime + stime of `pid`, clock ticks (0 when it is gone). */
function cpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}

/** CPU used by `pids` (all their threads) over 3 s, % of one core (clock ticks of 10 ms). */
async function idleCpu(pids: number[]): Promise<number> {
  const before = pids.map(cpuTicks);
  const t = performance.now();
  await new Promise((r) => setTimeout(r, 3000));
  const ticks = pids.reduce((a, p, i) => a + Math.max(0, cpuTicks(p) - before[i]!), 0);
  return (ticks * 10 * 100) / (performance.now() - t);
}

/** The sandbox cgroup's charge (v1 `memory.usage_in_bytes` / v2 `memory.current`) and its working set, bytes. */
function cgroupMemory(id: string): { usage: number; workingSet: number } | undefined {
  const cg = new SandboxCgroup(id);
  const workingSet = cg.memoryBytes();
  if (workingSet === undefined) return undefined;
  for (const f of ["memory/kiln", "kiln"]) {
    for (const name of ["memory.usage_in_bytes", "memory.current"]) {
      try {
        const usage = Number(readFileSync(join("/sys/fs/cgroup", f, id, name), "utf8"));
        return { usage, workingSet };
      } catch {
        // Not this layout.
      }
    }
  }
  return { usage: Number.NaN, workingSet };
}

const mib = (b: number) => (b / 2 ** 20).toFixed(1);
const ms = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));

/** One step's reading. */
interface Reading {
  count: number;
  createMs: number;
  execMs: number;
  availableBytes: number;
  perSandboxBytes: number;
  /** Real tiers: CPU time of all sandboxes' host processes over 3 s of idling, % of one core. */
  idleCpuPercent?: number;
  /** Real tiers: PSS of all sandboxes' host processes and the sum of their cgroups' charges, per sandbox. */
  pssPerSandbox?: number;
  chargePerSandbox?: number;
  load: number;
  degraded?: string;
}

/** Starts `n` sandboxes, `parallel` at a time, each used once. */
async function startMany(kiln: Kiln, tier: TierName, n: number, parallel: number): Promise<Sandbox[]> {
  const out: Sandbox[] = [];
  let left = n;
  await Promise.all(
    Array.from({ length: Math.min(parallel, n) }, async () => {
      while (left > 0) {
        left--;
        const sb = await kiln.create({ tier });
        await sb.commands.run("echo hi");
        out.push(sb);
      }
    }),
  );
  return out;
}

/** Create + first exec (median of 3, each killed after) and warm exec p50 of 10 on `held`. */
async function probe(
  kiln: Kiln,
  tier: TierName,
  held: Sandbox,
): Promise<{ createMs: number; execMs: number }> {
  const creates: number[] = [];
  for (let i = 0; i < 3; i++) {
    // A pause before each lets the workspace pool refill, as it would between requests.
    if (tier !== "virtual") await new Promise((r) => setTimeout(r, 400));
    const t = performance.now();
    const sb = await kiln.create({ tier });
    await sb.commands.run("echo hi");
    creates.push(performance.now() - t);
    await sb.kill();
  }
  const execs: number[] = [];
  for (let i = 0; i < 10; i++) {
    const t = performance.now();
    await held.commands.run("echo hi");
    execs.push(performance.now() - t);
  }
  return { createMs: quantile(creates, 0.5), execMs: quantile(execs, 0.5) };
}

/** The garbage collector, for the virtual tier's heap readings. */
function gc(): () => void {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}

/** One tier's steps and, on a real tier, one idle sandbox's processes. */
async function densityOf(tier: TierName): Promise<string> {
  const dataDir = mkdtempSync(join(tmpdir(), `kiln-bench-density-${tier}-`));
  const kiln = await Kiln.open({ dataDir });
  const held: Sandbox[] = [];
  const readings: Reading[] = [];
  let parts = "";
  const collect = tier === "virtual" ? gc() : () => {};
  try {
    // Untimed: loads the tier's code, fills the workspace pool.
    await (await kiln.create({ tier })).kill();
    held.push(...(await startMany(kiln, tier, 1, 1)));
    collect();
    const base = await probe(kiln, tier, held[0]!);
    const baseAvailable = memAvailable();
    const baseHeap = process.memoryUsage().rss;
    const steps = STEPS[tier === "virtual" ? "virtual" : "real"]!.slice(1);
    for (const count of steps) {
      step(`${tier}: ${count} idle sandboxes`);
      held.push(...(await startMany(kiln, tier, count - held.length, tier === "virtual" ? 1 : 4)));
      collect();
      // Let the runtimes settle into idle before reading memory.
      await new Promise((r) => setTimeout(r, tier === "virtual" ? 100 : 2000));
      if (!parts && tier !== "virtual") parts = composition(held[0]!, dataDir);
      const available = memAvailable();
      const grown = tier === "virtual" ? process.memoryUsage().rss - baseHeap : baseAvailable - available;
      const p = await probe(kiln, tier, held[held.length - 1]!);
      const reading: Reading = {
        count,
        ...p,
        availableBytes: available,
        perSandboxBytes: grown / (count - 1),
        load: loadavg()[0]!,
      };
      if (tier !== "virtual") {
        const table = new ProcTable();
        let pss = 0;
        let charge = 0;
        for (const sb of held) {
          pss += table.sandbox(sb.id, join(dataDir, "sandboxes", sb.id)).reduce((a, x) => a + x.pss, 0);
          charge += cgroupMemory(sb.id)?.usage ?? 0;
        }
        reading.pssPerSandbox = pss / held.length;
        reading.idleCpuPercent = await idleCpu(
          held.flatMap((sb) => table.sandbox(sb.id, join(dataDir, "sandboxes", sb.id)).map((x) => x.pid)),
        );
        reading.chargePerSandbox = charge / held.length;
      }
      if (p.createMs > 2 * base.createMs)
        reading.degraded = `create + first exec ${ms(p.createMs)} ms > 2x ${ms(base.createMs)} ms`;
      else if (p.execMs > 2 * base.execMs)
        reading.degraded = `warm exec ${ms(p.execMs)} ms > 2x ${ms(base.execMs)} ms`;
      else if (available < FLOOR_BYTES)
        reading.degraded = `available memory ${mib(available)} MiB below the floor`;
      readings.push(reading);
      if (reading.degraded) break;
    }
    const perLabel =
      tier === "virtual"
        ? "RSS growth of this process per sandbox"
        : "per sandbox: PSS of its host processes / cgroup charge / fall in available memory";
    const table = [
      `### density: ${tier} tier (with none: create + first exec ${ms(base.createMs)} ms, warm exec ${ms(base.execMs)} ms; floor ${mib(FLOOR_BYTES)} MiB available)`,
      "",
      `| idle sandboxes | create + first exec p50 | warm exec p50 | ${perLabel} | available memory | idle CPU of all | load average | degraded |`,
      "|---|---|---|---|---|---|---|---|",
      ...readings.map(
        (r) =>
          `| ${r.count} | ${ms(r.createMs)} ms | ${ms(r.execMs)} ms | ${
            tier === "virtual"
              ? `${(r.perSandboxBytes / 1024).toFixed(0)} KiB`
              : `${mib(r.pssPerSandbox ?? 0)} / ${mib(r.chargePerSandbox ?? 0)} / ${mib(r.perSandboxBytes)} MiB`
          } | ${mib(r.availableBytes)} MiB | ${r.idleCpuPercent === undefined ? "n/a" : `${r.idleCpuPercent.toFixed(0)}% of a core`} | ${r.load.toFixed(1)} | ${r.degraded ?? "no"} |`,
      ),
    ].join("\n");
    return parts ? `${table}\n\n${parts}` : table;
  } finally {
    step(`${tier}: stopping ${held.length} sandboxes`);
    for (let i = 0; i < held.length; i += 8)
      await Promise.all(held.slice(i, i + 8).map((s) => s.kill().catch(() => {})));
    await kiln.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** What one idle sandbox's memory is made of: its host processes and its cgroup. */
function composition(sb: Sandbox, dataDir: string): string {
  const procs = new ProcTable().sandbox(sb.id, join(dataDir, "sandboxes", sb.id));
  const cg = cgroupMemory(sb.id);
  const rows = procs.map((p) => `| ${p.pid} | \`${p.name}\` | ${mib(p.rss)} MiB | ${mib(p.pss)} MiB |`);
  const sum = (k: "rss" | "pss") => procs.reduce((a, p) => a + p[k], 0);
  return [
    "| pid | process | RSS | PSS |",
    "|---|---|---|---|",
    ...rows,
    `| | **all** | **${mib(sum("rss"))} MiB** | **${mib(sum("pss"))} MiB** |`,
    "",
    cg
      ? `Sandbox cgroup: ${mib(cg.usage)} MiB charged, ${mib(cg.workingSet)} MiB working set (charge less inactive file pages).`
      : "Sandbox cgroup: no memory controller readable.",
  ].join("\n");
}

/** The density tables of every tier that runs here (`KILN_BENCH_TIERS` picks some). */
export async function benchDensity(): Promise<string[]> {
  const only = process.env.KILN_BENCH_TIERS?.split(",");
  const probeDir = mkdtempSync(join(tmpdir(), "kiln-bench-density-probe-"));
  const tiers: TierName[] = [];
  try {
    const kiln = await Kiln.open({ dataDir: probeDir });
    try {
      for (const s of await kiln.doctor()) {
        if (!s.available || s.tier === "microvm") continue;
        if (!only || only.includes(s.tier)) tiers.push(s.tier);
        else continue;
      }
    } finally {
      await kiln.close();
    }
  } finally {
    rmSync(probeDir, { recursive: true, force: true });
  }
  const out: string[] = [];
  for (const tier of tiers) out.push(await densityOf(tier));
  return out;
}
