/**
 * Real-binary tiers (namespace, oci, gvisor): Kiln beside the raw runtime it
 * wraps, on the same `default` template, in the same run:
 *  - create + first exec: Kiln `create` + `run("echo hi")` vs the raw tool running `echo hi` once,
 *    cold (the runtime starts on create) and with a warm pool (create takes a started sandbox);
 *  - warm exec through the agent vs the raw tool's own start (what each exec would cost without an agent);
 *  - idle memory of a running sandbox (RSS of its whole process tree) vs the raw tool idling on `sleep`;
 *  - 50 sandboxes at once: create and exec in all, concurrently.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kiln, type TierName } from "../src/index.ts";
import { defaultTemplateDir, TemplateStore } from "../src/templates/template-store.ts";
import { quantile, type Row, timeIt } from "./stats.ts";

const exited = (c: ChildProcess) => new Promise((r) => c.once("exit", r));

/** RSS in bytes of `root` and all its descendants. */
function treeRss(roots: number[]): number {
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
function pidsMentioning(needle: string): number[] {
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

/** The raw runtime of a tier, running a command on the template's rootfs. */
function rawTool(tier: TierName, rootfs: string, scratch: string): (args: string[]) => ChildProcess {
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
  return (args) =>
    spawn(
      "runsc",
      [
        "--root",
        join(scratch, "runsc"),
        "--network=none",
        "--platform=ptrace",
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

/** Runs the measurements for every real tier that is ready here; rows per tier. */
export async function benchRealTiers(): Promise<{ tier: TierName; rows: Row[] }[]> {
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-bench-real-"));
  const scratch = mkdtempSync(join(tmpdir(), "kiln-bench-raw-"));
  const kiln = await Kiln.open({ dataDir });
  const out: { tier: TierName; rows: Row[] }[] = [];
  try {
    const ready = (await kiln.doctor()).filter(
      (s) => s.available && s.tier !== "virtual" && s.tier !== "microvm",
    );
    if (ready.length === 0) return out;
    // Build (or find) the template before timing anything.
    const warm = await kiln.create({ tier: ready[0]!.tier });
    await warm.kill();
    const rootfs = (await new TemplateStore(defaultTemplateDir(dataDir)).get("default")).rootfs;
    for (const { tier } of ready) {
      const raw = rawTool(tier, rootfs, scratch);
      const n = tier === "gvisor" ? 8 : 15;
      const rawRun = await timeIt(
        n,
        async () => {
          await exited(raw(["/bin/echo", "hi"]));
        },
        2,
      );
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
      // The same with warm sandboxes (Kiln.open({ warmPool: 1 })): create takes a started one.
      const warmKiln = await Kiln.open({ dataDir, warmPool: 1 });
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
      const sb = created[0]!;
      const warmExec = await timeIt(100, () => sb.commands.run("echo hi"), 5);
      const stateDir = join(dataDir, "sandboxes", sb.id);
      const kilnIdle = treeRss(pidsMentioning(stateDir).slice(0, 1));
      const idle = raw(["/bin/sleep", "30"]);
      await new Promise((r) => setTimeout(r, tier === "gvisor" ? 1500 : 300));
      const rawIdle = treeRss([idle.pid!]);
      idle.kill("SIGKILL");
      await exited(idle);
      for (const s of created) await s.kill();

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
      const rawT50 = performance.now();
      await Promise.all(Array.from({ length: fifty }, () => exited(raw(["/bin/echo", "hi"]))));
      const raw50 = performance.now() - rawT50;
      for (const s of many) await s.kill();

      const label = { namespace: "`bwrap`", oci: "`runc run`", gvisor: "`runsc do`" }[tier as "namespace"];
      out.push({
        tier,
        rows: [
          {
            metric: "create + first exec, p50",
            kiln: quantile(createTimes, 0.5),
            raw: quantile(rawRun, 0.5),
            unit: "ms",
            rawLabel: `${label} running echo`,
          },
          {
            metric: "create + first exec, warm pool, p50",
            kiln: quantile(warmTimes, 0.5),
            raw: quantile(rawRun, 0.5),
            unit: "ms",
            rawLabel: `${label} running echo`,
          },
          {
            metric: "warm exec, p50",
            kiln: quantile(warmExec, 0.5),
            raw: quantile(rawRun, 0.5),
            unit: "ms",
            rawLabel: `${label} running echo (no agent: a start per exec)`,
          },
          {
            metric: "warm exec, p95",
            kiln: quantile(warmExec, 0.95),
            raw: quantile(rawRun, 0.95),
            unit: "ms",
            rawLabel: `${label} running echo`,
          },
          {
            metric: "idle memory per sandbox (RSS of its processes)",
            kiln: kilnIdle / 2 ** 20,
            raw: rawIdle / 2 ** 20,
            unit: "MiB",
            rawLabel: `${label} idling on sleep`,
          },
          {
            metric: "50 sandboxes at once: create + exec in all",
            kiln: kiln50,
            raw: raw50,
            unit: "ms",
            rawLabel: `50 concurrent ${label} echo`,
          },
        ],
      });
    }
  } finally {
    await kiln.close();
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(scratch, { recursive: true, force: true });
  }
  return out;
}
