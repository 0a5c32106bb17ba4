/**
 * 50 sandboxes at once on each real tier (namespace, oci, gvisor): Kiln
 * creating 50 sandboxes concurrently and running `echo hi` in each, beside 50
 * raw tools (`bwrap`, `runc run`, `runsc do`) running `echo hi` concurrently.
 * The two alternate, three rounds each; the ratio is shown for the median
 * round with the spread, and Kiln's steps (bench/cold-steps.ts) are shown as
 * p50 and max over the 150 creates, to say where the time under concurrency goes.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Sandbox } from "../src/index.ts";
import { defaultTemplateDir, TemplateStore } from "../src/templates/template-store.ts";
import { StepLog } from "./cold-steps.ts";
import { step } from "./progress.ts";
import { openFor, rawTool, targets } from "./real-tiers.ts";
import { quantile, ratioSpread } from "./stats.ts";

const ROUNDS = 3;
const AT_ONCE = 50;
/**
 * Pause before each side of a round, ms (`KILN_BENCH_SETTLE_MS`, default 1000): with a larger
 * workspace pool (`KILN_WORKSPACE_POOL`), long enough for it to refill.
 */
const SETTLE_MS = Number(process.env.KILN_BENCH_SETTLE_MS ?? 1000);

const f = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));

/** One table per real tier that runs here (`KILN_BENCH_TIERS` picks some; gvisor on its first platform). */
export async function benchFifty(): Promise<string[]> {
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-bench-fifty-"));
  const scratch = mkdtempSync(join(tmpdir(), "kiln-bench-fifty-raw-"));
  const out: string[] = [];
  try {
    step("probing the tiers");
    const seen = new Set<string>();
    const ready = (await targets(dataDir)).filter((t) => !seen.has(t.tier) && seen.add(t.tier));
    if (ready.length === 0) return out;
    const rootfs = (await new TemplateStore(defaultTemplateDir(dataDir)).get("default")).rootfs;
    for (const target of ready) {
      const raw = rawTool(target, rootfs, scratch);
      const kiln = await openFor(target, dataDir);
      const log = new StepLog();
      const pairs: [number, number][] = [];
      const steps = new Map<string, number[]>();
      try {
        await (await kiln.create({ tier: target.tier })).kill();
        log.subscribe();
        for (let r = 0; r < ROUNDS; r++) {
          step(`${target.tier}: round ${r + 1} of ${ROUNDS}`);
          await new Promise((res) => setTimeout(res, SETTLE_MS));
          const t = performance.now();
          const many: Sandbox[] = await Promise.all(
            Array.from({ length: AT_ONCE }, async () => {
              const s = await kiln.create({ tier: target.tier });
              const created = performance.now();
              await s.commands.run("echo hi");
              const ms = log.take(s.id);
              ms.set("first exec", performance.now() - created);
              for (const [k, v] of ms) steps.set(k, [...(steps.get(k) ?? []), v]);
              return s;
            }),
          );
          const kilnMs = performance.now() - t;
          for (let i = 0; i < many.length; i += 10)
            await Promise.all(many.slice(i, i + 10).map((s) => s.kill()));
          await new Promise((res) => setTimeout(res, SETTLE_MS));
          const t0 = performance.now();
          await Promise.all(
            Array.from(
              { length: AT_ONCE },
              () => new Promise((res) => raw(["/bin/echo", "hi"]).once("exit", res)),
            ),
          );
          pairs.push([kilnMs, performance.now() - t0]);
        }
      } finally {
        log.unsubscribe();
        await kiln.close();
      }
      const s = ratioSpread(pairs);
      const tool = { namespace: "`bwrap`", oci: "`runc run`", gvisor: "`runsc do`" }[
        target.tier as "namespace"
      ];
      const order = [
        "create.workspace",
        "create.cgroup",
        "create.bundle",
        "create.mount",
        "runtime.spawn",
        "agent.handshake",
        "create.record",
        "first exec",
      ];
      out.push(
        [
          `### 50 sandboxes at once: ${target.tier} (${target.tool})`,
          "",
          `Kiln ${f(s.kiln)} ms, 50 concurrent ${tool} ${f(s.raw)} ms: ${(s.kiln / s.raw).toFixed(2)}x (median round; ${s.text}).`,
          "",
          "| Kiln's step, over the creates of all rounds | p50 | max |",
          "|---|---|---|",
          ...order
            .filter((k) => steps.has(k))
            .map(
              (k) => `| ${k} | ${f(quantile(steps.get(k)!, 0.5))} ms | ${f(Math.max(...steps.get(k)!))} ms |`,
            ),
        ].join("\n"),
      );
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(scratch, { recursive: true, force: true });
  }
  return out;
}
