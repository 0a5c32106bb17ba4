/**
 * What mapping a sandbox's ids to a host range of its own costs (id-ranges.ts): create + first
 * exec on each real tier with the mapping and without it (`KILN_IDMAP=off`, read at each start),
 * interleaved in one run, cold (no warm pool). The "raw" column is Kiln unmapped.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kiln, type TierName } from "../src/index.ts";
import { quantile, type Row, timeInterleaved } from "./stats.ts";

const ROUNDS = 9;

/** Create + `echo hi` + kill, timed to the end of the first exec. */
async function createAndExec(kiln: Kiln, tier: TierName, mapped: boolean): Promise<number> {
  if (mapped) delete process.env.KILN_IDMAP;
  else process.env.KILN_IDMAP = "off";
  try {
    const t = performance.now();
    const sb = await kiln.create({ tier });
    const r = await sb.commands.run("echo hi");
    const ms = performance.now() - t;
    if (r.stdout !== "hi\n") throw new Error(`${tier}: echo gave ${JSON.stringify(r.stdout)}`);
    await sb.kill();
    return ms;
  } finally {
    delete process.env.KILN_IDMAP;
  }
}

/** One row per real tier that runs here and maps ids. */
export async function benchIdMapping(): Promise<Row[]> {
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-bench-idmap-"));
  const kiln = await Kiln.open({ dataDir });
  const rows: Row[] = [];
  try {
    for (const s of await kiln.doctor()) {
      if (!["namespace", "oci", "gvisor", "microvm"].includes(s.tier) || !s.available) continue;
      if (!/ids mapped/.test(s.reason)) continue;
      const tier = s.tier;
      // Both ways back to back in each round; each is timed to its first exec (the kill is not counted).
      const mapped: number[] = [];
      const plain: number[] = [];
      await timeInterleaved(
        ROUNDS,
        async () => mapped.push(await createAndExec(kiln, tier, true)),
        async () => plain.push(await createAndExec(kiln, tier, false)),
        1,
      );
      rows.push({
        metric: `${tier}: create + first exec, ids mapped, p50 of ${ROUNDS}`,
        kiln: quantile(mapped.slice(-ROUNDS), 0.5),
        raw: quantile(plain.slice(-ROUNDS), 0.5),
        unit: "ms",
        rawLabel: "the same, ids not mapped (`KILN_IDMAP=off`)",
        note: "target at most 1.10x",
      });
    }
  } finally {
    await kiln.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
  return rows;
}
