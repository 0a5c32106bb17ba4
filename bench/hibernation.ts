/**
 * Hibernation per tier: a sandbox holding a 64 MiB Python process (on the
 * real tiers) is left idle until Kiln pauses it to disk; the memory its
 * cgroup held before and holds after (with any process left of it), and the
 * first command after, with the pause image and the workspace dropped from
 * the page cache (resume from disk), split into the image's digest check and
 * the rest. On gVisor, beside `runsc restore` of a cold image of the same
 * kind of container.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { digestStateDir } from "../src/core/state-files.ts";
import { Kiln, type TierName } from "../src/index.ts";
import { step } from "./progress.ts";
import { dropFromPageCache, rawRunsc } from "./state.ts";
import { quantile, type Row } from "./stats.ts";

const RUNS = 3;
/** Idle time before the sandbox hibernates, ms. */
const IDLE_MS = 3000;
const MiB = 1024 * 1024;
const HOLD = `nohup python3 -c "import os, time; b = os.urandom(64 << 20); time.sleep(10**6)" >/dev/null 2>&1 &`;

/** Working set of a cgroup v1 memory controller directory (usage less inactive file pages), or 0 when it is gone. */
function cgroupBytes(id: string): number {
  for (const d of [`/sys/fs/cgroup/memory/kiln/${id}`, `/sys/fs/cgroup/kiln/${id}`]) {
    try {
      const v1 = d.includes("/memory/");
      const usage = Number(readFileSync(join(d, v1 ? "memory.usage_in_bytes" : "memory.current"), "utf8"));
      const stat = readFileSync(join(d, "memory.stat"), "utf8");
      const inactive = Number(/^(?:total_)?inactive_file (\d+)$/m.exec(stat)?.[1] ?? 0);
      return Math.max(0, usage - inactive);
    } catch {}
  }
  return 0;
}

/** Resident bytes of the host processes whose command line names `needle`. */
function rssOf(needle: string): number {
  let total = 0;
  for (const p of readdirSync("/proc")) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    try {
      if (!readFileSync(`/proc/${p}/cmdline`, "utf8").includes(needle)) continue;
      total += Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${p}/status`, "utf8"))?.[1] ?? 0) * 1024;
    } catch {}
  }
  return total;
}

async function until(what: string, ok: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The hibernation rows of every tier that runs here (microvm only when `KILN_BENCH_TIERS` names it). */
export async function benchHibernation(): Promise<{ tier: TierName; rows: Row[] }[]> {
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-bench-hibernate-"));
  const kiln = await Kiln.open({ dataDir });
  const out: { tier: TierName; rows: Row[] }[] = [];
  try {
    const only = process.env.KILN_BENCH_TIERS?.split(",");
    for (const status of await kiln.doctor()) {
      const tier = status.tier;
      if (!status.available || (only ? !only.includes(tier) : tier === "microvm")) continue;
      const caps = (await kiln.backend(tier)).capabilities;
      step(`${tier} tier`);
      const sb = await kiln.create({ tier, idleTimeoutMs: IDLE_MS });
      const stateDir = join(dataDir, "sandboxes", sb.id);
      const first: number[] = [];
      const digest: number[] = [];
      let before = 0;
      let after = 0;
      let imageBytes = 0;
      for (let i = 0; i < RUNS; i++) {
        if (caps.realBinaries && (i === 0 || caps.pause === "files")) {
          await sb.commands.run(HOLD);
          // Less than the idle time: the process has its 64 MiB, the sandbox has not hibernated yet.
          await new Promise((r) => setTimeout(r, 1000));
        }
        if (i === 0) before = (await sb.stats()).memoryBytes ?? 0;
        await until("hibernation", async () =>
          (await kiln.list({ state: "paused" })).some((s) => s.id === sb.id),
        );
        if (i === 0) after = cgroupBytes(sb.id) + rssOf(sb.id);
        const pauseDir = join(stateDir, "pause");
        const workspace = caps.realBinaries
          ? join(stateDir, "ws", "workspace.img")
          : join(stateDir, "workspace.db");
        if (caps.pause === "memory") {
          imageBytes = readdirSync(pauseDir).reduce((n, f) => n + statSync(join(pauseDir, f)).size, 0);
          dropFromPageCache(pauseDir);
          const t = performance.now();
          await digestStateDir(pauseDir);
          digest.push(performance.now() - t);
          dropFromPageCache(pauseDir);
        }
        dropFromPageCache(workspace);
        const t = performance.now();
        const r = await sb.commands.run("true");
        first.push(performance.now() - t);
        if (r.exitCode !== 0) throw new Error(`the first command after hibernation failed: ${r.stderr}`);
      }
      let raw = Number.NaN;
      if (caps.pause === "memory" && tier === "gvisor") {
        const probe = await kiln.create({ tier });
        await probe.commands.run(HOLD);
        await new Promise((r) => setTimeout(r, 1500));
        raw = (await rawRunsc(dataDir, probe.id, true)).restoreMs;
        await probe.kill().catch(() => {});
      }
      const d = quantile(digest, 0.5);
      const rows: Row[] = [
        {
          metric: `first command after hibernation, image and workspace read from disk (${caps.pause === "memory" ? "memory and processes restored" : "files; restarted"}), p50 of ${RUNS}`,
          kiln: quantile(first, 0.5),
          raw,
          unit: "ms",
          rawLabel: Number.isNaN(raw)
            ? "no raw equivalent"
            : "`runsc restore` of a cold image until the agent answers",
          ...(caps.pause === "memory"
            ? {
                note: `of which the digest check of the ${(imageBytes / MiB).toFixed(0)} MiB image ${d.toFixed(0)} ms`,
              }
            : {}),
        },
      ];
      if (caps.realBinaries) {
        rows.push({
          metric: "memory freed by hibernation (sandbox cgroup working set and its host processes)",
          kiln: before > 0 ? 100 * (1 - after / before) : Number.NaN,
          raw: Number.NaN,
          unit: "%",
          rawLabel: "",
          note: `${(before / MiB).toFixed(1)} MiB before, ${(after / MiB).toFixed(1)} MiB after`,
        });
      }
      out.push({ tier, rows });
      // runsc's delete can time out on a loaded machine: once more, after a pause.
      await sb.kill().catch(async () => {
        await new Promise((r) => setTimeout(r, 2000));
        await sb.kill().catch(() => {});
      });
    }
  } finally {
    await kiln.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
  return out;
}

if (import.meta.main) {
  const { markdownTable } = await import("./stats.ts");
  for (const { tier, rows } of await benchHibernation())
    process.stdout.write(`${markdownTable(`hibernation: ${tier}`, rows)}\n\n`);
}
