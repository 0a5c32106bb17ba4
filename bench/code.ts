/**
 * Code cells: `sandbox.runCode` through Kiln beside `python3 -c` started
 * fresh in the same sandbox, per tier (the real tiers with the
 * `code-interpreter` template, the virtual tier with its WASM Python): a warm
 * cell (`1+1`), the first cell of a new context, and a cell that draws a
 * matplotlib chart as PNG (real tiers).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kiln, type Sandbox, type TierName } from "../src/index.ts";
import { step } from "./progress.ts";
import { quantile, type Row, timeIt } from "./stats.ts";

const PLOT =
  "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [2, 4, 8])\nplt.title('bench')\nplt.show()";
const PLOT_SCRIPT =
  "import io, matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt; " +
  "plt.plot([1, 2, 3], [2, 4, 8]); plt.title('bench'); plt.savefig(io.BytesIO(), format='png')";

async function rows(sb: Sandbox, scientific: boolean): Promise<Row[]> {
  const fresh = (code: string) => sb.commands.run(`python3 -c "${code}"`, { timeoutMs: 120_000 });
  const warm = await timeIt(200, () => sb.runCode("1+1"), 5);
  const raw = await timeIt(20, () => fresh("1+1"), 2);
  const first = await timeIt(
    8,
    async () => {
      const ctx = await sb.codeContexts.create({ language: "python" });
      await sb.runCode("1+1", { context: ctx.id });
      await sb.codeContexts.remove(ctx.id);
    },
    1,
  );
  const out: Row[] = [
    {
      metric: "runCode('1+1'), warm context, p50",
      kiln: quantile(warm, 0.5),
      raw: quantile(raw, 0.5),
      unit: "ms",
      rawLabel: "`python3 -c 1+1` started fresh in the sandbox, p50",
    },
    {
      metric: "runCode('1+1'), warm context, p95",
      kiln: quantile(warm, 0.95),
      raw: quantile(raw, 0.95),
      unit: "ms",
      rawLabel: "`python3 -c 1+1`, p95",
    },
    {
      metric: "first cell of a new context (create + '1+1'), p50",
      kiln: quantile(first, 0.5),
      raw: quantile(raw, 0.5),
      unit: "ms",
      rawLabel: "`python3 -c 1+1`, p50",
    },
  ];
  if (scientific) {
    await sb.runCode(PLOT);
    const plot = await timeIt(10, () => sb.runCode(PLOT), 1);
    const rawPlot = await timeIt(5, () => fresh(PLOT_SCRIPT), 1);
    out.push({
      metric: "a matplotlib line chart as PNG (pyplot imported), p50",
      kiln: quantile(plot, 0.5),
      raw: quantile(rawPlot, 0.5),
      unit: "ms",
      rawLabel: "`python3 -c` importing matplotlib and saving the PNG, p50",
    });
  }
  return out;
}

/** One table per tier that runs here (`KILN_BENCH_TIERS` picks some). */
export async function benchCode(): Promise<{ tier: TierName; template: string; rows: Row[] }[]> {
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-bench-code-"));
  const kiln = await Kiln.open({ dataDir });
  const out: { tier: TierName; template: string; rows: Row[] }[] = [];
  try {
    const only = process.env.KILN_BENCH_TIERS?.split(",");
    for (const status of await kiln.doctor()) {
      const tier = status.tier;
      if (!status.available || (only && !only.includes(tier))) continue;
      step(`${tier} tier`);
      const templates = (await kiln.backend(tier)).capabilities.templates;
      const template = templates ? "code-interpreter" : "default";
      let sb: Sandbox;
      try {
        sb = await kiln.create({ tier, template, limits: { timeoutMs: 600_000 } });
      } catch (e) {
        process.stderr.write(`bench: code cells on ${tier} skipped: ${(e as Error).message}\n`);
        continue;
      }
      try {
        out.push({ tier, template, rows: await rows(sb, templates) });
      } finally {
        await sb.kill();
      }
    }
  } finally {
    await kiln.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
  return out;
}

if (import.meta.main) {
  const { markdownTable } = await import("./stats.ts");
  for (const { tier, template, rows: r } of await benchCode()) {
    process.stdout.write(`${markdownTable(`code cells: ${tier} tier, template \`${template}\``, r)}\n\n`);
  }
}
