/**
 * Cold create + first exec on each real tier (namespace, oci, gvisor) split
 * into steps: Kiln's from its own timing points (the `kiln:step` tracing
 * channel, src/core/trace.ts), the raw tool's as its start (for runc: the
 * bundle written too) and its run to exit. Kiln and the raw tool alternate,
 * one create then one raw run, in three rounds; the ratio is shown for the
 * median round with the spread. This process is CPU-profiled over each tier's
 * rounds (bench/cpu-profile.ts): with KILN_BENCH_PROFILE_DIR set, the profile
 * and its summary are written there as `cold-<tier>.cpuprofile` / `.txt`.
 */
import { tracingChannel } from "node:diagnostics_channel";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { STEP_CHANNEL, type StepContext } from "../src/core/trace.ts";
import { defaultTemplateDir, TemplateStore } from "../src/templates/template-store.ts";
import { profiled } from "./cpu-profile.ts";
import { step } from "./progress.ts";
import { openFor, rawTool, type Target, targets } from "./real-tiers.ts";
import { quantile, ratioSpread } from "./stats.ts";

/** Rounds per tier, and creates (each beside a raw run) per round. */
const ROUNDS = 3;

/** A step's context as this bench stamps it. */
type Stamped = StepContext & { t0?: number; endAt?: number; asyncEndAt?: number };

/** Kiln's steps in the order a create takes them; the tier's steps are inside `create.tier`. */
const ORDER = [
  "create.state-dir",
  "create.template",
  "create.sweep-pools",
  "create.workspace",
  "create.cgroup-clear",
  "create.cgroup",
  "create.bundle",
  "create.mount",
  "runtime.spawn",
  "agent.handshake",
  "create.record",
] as const;

/** What each step is, for the table. */
const LABEL: Record<string, string> = {
  core: "core: checks, ids, admission, sandbox object (create less its traced steps)",
  "create.state-dir": "state directory and its stamp",
  "create.template": "template lookup (rootfs)",
  "create.sweep-pools": "sweep of stale workspace pools",
  "create.workspace": "workspace image (from the warm pool)",
  "create.cgroup-clear": "cgroup: clear a stale one",
  "create.cgroup": "cgroup: create and set limits",
  "create.bundle": "OCI bundle (config.json, id-mapped stage)",
  "create.mount": "workspace mount",
  "runtime.spawn": "runtime spawned",
  "agent.handshake": "runtime start to the agent's HELLO",
  "tier.rest": "tier: the rest (create.tier less its traced steps)",
  "create.record": "record in kiln.db",
  "first exec": "first exec (`echo hi`)",
};

interface Sample {
  /** Step name to ms. */
  steps: Map<string, number>;
  total: number;
}

/** Collects the steps of every sandbox while subscribed (the `kiln:step` channel). */
export class StepLog {
  private readonly contexts: Stamped[] = [];
  private readonly channel = tracingChannel<unknown, Stamped>(STEP_CHANNEL);
  private readonly handlers = {
    start: (c: Stamped) => {
      c.t0 = performance.now();
      this.contexts.push(c);
    },
    end: (c: Stamped) => {
      c.endAt = performance.now();
    },
    asyncStart: () => {},
    asyncEnd: (c: Stamped) => {
      c.asyncEndAt = performance.now();
    },
    error: () => {},
  };

  subscribe(): void {
    this.channel.subscribe(this.handlers);
  }

  unsubscribe(): void {
    this.channel.unsubscribe(this.handlers);
  }

  /** The steps of sandbox `id` (ms each; a step taken twice is summed), forgotten after. */
  take(id: string): Map<string, number> {
    const out = new Map<string, number>();
    for (const c of this.contexts) {
      if (c.sandboxId !== id || c.t0 === undefined) continue;
      const end = c.asyncEndAt ?? c.endAt;
      if (end !== undefined) out.set(c.step, (out.get(c.step) ?? 0) + end - c.t0);
    }
    this.contexts.splice(0, this.contexts.length, ...this.contexts.filter((c) => c.sandboxId !== id));
    return out;
  }
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One tier's rounds: Kiln's samples and the raw tool's, per round. */
async function measure(
  target: Target,
  dataDir: string,
  rootfs: string,
  scratch: string,
  perRound: number,
): Promise<{ kiln: Sample[][]; raw: Sample[][] }> {
  const kilnRounds: Sample[][] = [];
  const rawRounds: Sample[][] = [];
  const log = new StepLog();
  const raw = rawTool(target, rootfs, scratch);
  const kiln = await openFor(target, dataDir);
  log.subscribe();
  try {
    // Untimed: the first create loads the tier's code and fills the workspace pool.
    for (let i = 0; i < 2; i++) await (await kiln.create({ tier: target.tier })).kill();
    for (let r = 0; r < ROUNDS; r++) {
      step(`${target.tier}: round ${r + 1} of ${ROUNDS}`);
      const ks: Sample[] = [];
      const rs: Sample[] = [];
      for (let i = 0; i < perRound; i++) {
        // A pause before each lets the workspace pool refill, as it would between requests.
        await pause(400);
        const t = performance.now();
        const sb = await kiln.create({ tier: target.tier });
        const created = performance.now();
        await sb.commands.run("echo hi");
        const done = performance.now();
        const steps = log.take(sb.id);
        const inTier = ORDER.filter((s) => s !== "create.state-dir" && s !== "create.record");
        const tierRest =
          (steps.get("create.tier") ?? 0) - inTier.reduce((a, s) => a + (steps.get(s) ?? 0), 0);
        steps.set("tier.rest", tierRest);
        steps.set(
          "core",
          created -
            t -
            (steps.get("create.tier") ?? 0) -
            (steps.get("create.state-dir") ?? 0) -
            (steps.get("create.record") ?? 0),
        );
        steps.set("first exec", done - created);
        ks.push({ steps, total: done - t });
        await sb.kill();
        await pause(400);
        const t0 = performance.now();
        const child = raw(["/bin/echo", "hi"]);
        const spawned = performance.now();
        await new Promise((res) => child.once("exit", res));
        const exited = performance.now();
        rs.push({
          steps: new Map([
            ["start", spawned - t0],
            ["run", exited - spawned],
          ]),
          total: exited - t0,
        });
      }
      kilnRounds.push(ks);
      rawRounds.push(rs);
    }
  } finally {
    log.unsubscribe();
    await kiln.close();
  }
  return { kiln: kilnRounds, raw: rawRounds };
}

const f = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

/** The table of one tier: each step's p50 over all rounds, then the totals and the ratio. */
function table(target: Target, kiln: Sample[][], raw: Sample[][]): string {
  const all = kiln.flat();
  const rawAll = raw.flat();
  const p50 = (xs: Sample[], name: string) =>
    quantile(
      xs.map((s) => s.steps.get(name) ?? 0),
      0.5,
    );
  const total = (xs: Sample[]) =>
    quantile(
      xs.map((s) => s.total),
      0.5,
    );
  const tool = { namespace: "`bwrap`", oci: "`runc run`", gvisor: "`runsc do`" }[target.tier as "namespace"];
  const rows = ["core", ...ORDER, "tier.rest", "first exec"]
    .filter((s) => all.some((x) => x.steps.has(s) && (x.steps.get(s) ?? 0) > 0))
    .map((s) => `| ${LABEL[s] ?? s} | ${f(p50(all, s))} ms | |`);
  const spread = ratioSpread(kiln.map((k, i) => [total(k), total(raw[i]!)]));
  const rawStart = target.tier === "oci" ? "start (bundle's config.json written, runc spawned)" : "spawned";
  return [
    `### cold create + first exec by step: ${target.tier} (${target.tool}), ${all.length} creates`,
    "",
    `| step | Kiln p50 | ${tool} p50 |`,
    "|---|---|---|",
    ...rows,
    `| raw tool: ${rawStart} | | ${f(p50(rawAll, "start"))} ms |`,
    `| raw tool: run to exit | | ${f(p50(rawAll, "run"))} ms |`,
    `| **total** (p50 of the whole, not the sum of the p50s) | **${f(total(all))} ms** | **${f(total(rawAll))} ms** |`,
    "",
    `Kiln / raw: ${(spread.kiln / spread.raw).toFixed(2)}x in the median round (${f(spread.kiln)} / ${f(spread.raw)} ms; ${spread.text}).`,
  ].join("\n");
}

/** The step tables of every real tier that runs here (`KILN_BENCH_TIERS` picks some; gvisor on its first platform). */
export async function benchColdSteps(): Promise<string[]> {
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-bench-cold-"));
  const scratch = mkdtempSync(join(tmpdir(), "kiln-bench-cold-raw-"));
  const out: string[] = [];
  try {
    step("probing the tiers");
    const seen = new Set<string>();
    const ready = (await targets(dataDir)).filter((t) => !seen.has(t.tier) && seen.add(t.tier));
    if (ready.length === 0) return out;
    const kiln = await openFor(ready[0]!, dataDir);
    try {
      await (await kiln.create({ tier: ready[0]!.tier })).kill();
    } finally {
      await kiln.close();
    }
    const rootfs = (await new TemplateStore(defaultTemplateDir(dataDir)).get("default")).rootfs;
    for (const target of ready) {
      const perRound = target.tier === "gvisor" ? 4 : 6;
      const { value, summary } = await profiled(`cold-${target.tier}`, () =>
        measure(target, dataDir, rootfs, scratch, perRound),
      );
      const dir = process.env.KILN_BENCH_PROFILE_DIR;
      if (dir) writeFileSync(join(dir, `cold-${target.tier}.txt`), `${summary}\n`);
      out.push(table(target, value.kiln, value.raw));
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(scratch, { recursive: true, force: true });
  }
  return out;
}
