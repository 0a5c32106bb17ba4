/**
 * Virtual tier benchmark: Kiln (persistent SQLite workspace, audit log) beside
 * raw just-bash with its in-memory filesystem, in the same process and run.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Bash } from "just-bash";
import { Kiln } from "../src/index.ts";
import { step } from "./progress.ts";
import { quantile, type Row, ratioSpread, timeInterleaved, timeIt } from "./stats.ts";

const SCRIPT = "echo hi | tr a-z A-Z";
/** Separate series per ratio. */
const RUNS = 3;

/** Runs the virtual-tier measurements and returns table rows. */
export async function benchVirtual(): Promise<Row[]> {
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-bench-virtual-"));
  const kiln = await Kiln.open({ dataDir });
  const rows: Row[] = [];
  try {
    // Each ratio three times (separate interleaved series), so its spread shows what the noise is.
    const creates: [number, number][] = [];
    for (let run = 0; run < RUNS; run++) {
      step(`create + first exec: round ${run + 1} of ${RUNS}`);
      const [kilnCreate, rawCreate] = await timeInterleaved(
        60,
        async () => {
          const sb = await kiln.create();
          await sb.commands.run(SCRIPT);
          return sb;
        },
        async () => {
          await new Bash().exec(SCRIPT);
        },
        run === 0 ? 20 : 5,
        // Killed untimed: sandboxes left open would make later creates slower than a server's.
        (sb) => sb.kill(),
      );
      creates.push([quantile(kilnCreate, 0.5), quantile(rawCreate, 0.5)]);
    }
    rows.push({
      metric: "create + first exec, p50",
      kiln: ratioSpread(creates).kiln,
      raw: ratioSpread(creates).raw,
      unit: "ms",
      rawLabel: "`new Bash()` + `exec`, in-memory fs",
      note: `the run with the median ratio; ${ratioSpread(creates).text}`,
    });

    const sb = await kiln.create();
    const bash = new Bash();
    const warm: [number[], number[]][] = [];
    for (let run = 0; run < RUNS; run++) {
      step(`warm exec: round ${run + 1} of ${RUNS}`);
      warm.push(
        await timeInterleaved(
          200,
          () => sb.commands.run(SCRIPT),
          () => bash.exec(SCRIPT),
          10,
        ),
      );
    }
    const p50s = warm.map(([k, r]): [number, number] => [quantile(k, 0.5), quantile(r, 0.5)]);
    const p95s = warm.map(([k, r]): [number, number] => [quantile(k, 0.95), quantile(r, 0.95)]);
    rows.push({
      metric: "warm exec, p50",
      kiln: ratioSpread(p50s).kiln,
      raw: ratioSpread(p50s).raw,
      unit: "ms",
      rawLabel: "`bash.exec` on one instance",
      note: `the run with the median ratio; ${ratioSpread(p50s).text}`,
    });
    rows.push({
      metric: "warm exec, p95",
      kiln: ratioSpread(p95s).kiln,
      raw: ratioSpread(p95s).raw,
      unit: "ms",
      rawLabel: "`bash.exec` on one instance",
      note: `the run with the median ratio; ${ratioSpread(p95s).text}`,
    });

    step("warm Python");
    const code = "x = sum(range(1000)); print(x)";
    await sb.runCode("import json");
    const kilnRepl = await timeIt(30, () => sb.runCode(code), 2);
    const kilnPyCmd = await timeIt(20, () => sb.commands.run(`python3 -c '${code}'`), 2);
    const pyBash = new Bash({ python: true });
    const rawPy = await timeIt(5, () => pyBash.exec(`python3 -c '${code}'`), 1);
    rows.push({
      metric: "warm Python, `runCode`, p50",
      kiln: quantile(kilnRepl, 0.5),
      raw: quantile(rawPy, 0.5),
      unit: "ms",
      rawLabel: "just-bash `python3 -c` (fresh interpreter per call)",
    });
    rows.push({
      metric: "warm Python, `python3 -c` in the shell, p50",
      kiln: quantile(kilnPyCmd, 0.5),
      raw: quantile(rawPy, 0.5),
      unit: "ms",
      rawLabel: "just-bash `python3 -c` (fresh interpreter per call)",
    });
  } finally {
    await kiln.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
  return rows;
}

/** Idle memory per sandbox: 1,000 sandboxes kept open in one process (run in its own process). */
export async function benchVirtualMemory(count = 1000): Promise<{ kilnBytes: number; rawBytes: number }> {
  const gc = (globalThis as { gc?: () => void }).gc;
  const settle = () => {
    gc?.();
    gc?.();
    return process.memoryUsage().rss;
  };
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-bench-mem-"));
  const kiln = await Kiln.open({ dataDir });
  try {
    const warm = await kiln.create();
    await warm.commands.run("true");
    new Bash();
    const before = settle();
    const kept: unknown[] = [];
    for (let i = 0; i < count; i++) kept.push(await kiln.create());
    const kilnBytes = (settle() - before) / count;
    const beforeRaw = settle();
    const raw: Bash[] = [];
    for (let i = 0; i < count; i++) raw.push(new Bash());
    const rawBytes = (settle() - beforeRaw) / count;
    return { kilnBytes, rawBytes: Math.max(rawBytes, 1) + kept.length * 0 };
  } finally {
    await kiln.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
