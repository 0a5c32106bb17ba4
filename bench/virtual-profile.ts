/**
 * Where the virtual tier's create + first exec and warm exec spend their CPU
 * beyond raw just-bash: the CPU time of this process per operation, Kiln and
 * raw alternating in three series, then a CPU profile of each (Kiln's loop and
 * raw's loop profiled separately) with self time per operation grouped by
 * file, package or native function, largest difference first. With
 * KILN_BENCH_PROFILE_DIR set, the profiles and their summaries are written
 * there as `virtual-{create,exec}-{kiln,raw}.cpuprofile` / `.txt`.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Bash } from "just-bash";
import { Kiln, type Sandbox } from "../src/index.ts";
import { profiled } from "./cpu-profile.ts";
import { type Profile, where } from "./profile-summary.ts";
import { step } from "./progress.ts";
import { ratioSpread } from "./stats.ts";

const SCRIPT = "echo hi | tr a-z A-Z";
const SERIES = 3;
const CREATES = 200;
const EXECS = 1000;

/** CPU time (user + system) of this process while `fn` runs, ms. */
async function cpuMs(fn: () => Promise<unknown>): Promise<number> {
  const c = process.cpuUsage();
  await fn();
  const d = process.cpuUsage(c);
  return (d.user + d.system) / 1000;
}

/** Self time per area (file, package, or a native function by name), µs. */
function byArea(profile: Profile): Map<string, number> {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const out = new Map<string, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const n = byId.get(profile.samples[i]!)!;
    const w = where(n.callFrame.url);
    const area = w === "(native)" ? `native ${n.callFrame.functionName || "(anonymous)"}` : w;
    out.set(area, (out.get(area) ?? 0) + (profile.timeDeltas[i + 1] ?? 0));
  }
  out.delete("native (idle)");
  return out;
}

/** The areas where Kiln spends most beyond raw, per operation. */
function gapTable(title: string, kiln: Profile, raw: Profile, ops: number): string {
  const k = byArea(kiln);
  const r = byArea(raw);
  const total = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0) / ops / 1000;
  const rows = [...new Set([...k.keys(), ...r.keys()])]
    .map((a) => ({ a, k: (k.get(a) ?? 0) / ops / 1000, r: (r.get(a) ?? 0) / ops / 1000 }))
    .sort((x, y) => y.k - y.r - (x.k - x.r))
    .slice(0, 15);
  const f = (x: number) => x.toFixed(3);
  return [
    `#### ${title}: CPU per operation by where it was spent (profiles, ${ops} operations each)`,
    "",
    "| where (self time) | Kiln | raw just-bash | Kiln - raw |",
    "|---|---|---|---|",
    ...rows.map((x) => `| ${x.a} | ${f(x.k)} ms | ${f(x.r)} ms | ${f(x.k - x.r)} ms |`),
    `| **all sampled** | **${f(total(k))} ms** | **${f(total(r))} ms** | **${f(total(k) - total(r))} ms** |`,
  ].join("\n");
}

/** Writes a profile's summary when KILN_BENCH_PROFILE_DIR is set. */
function keep(name: string, summary: string): void {
  const dir = process.env.KILN_BENCH_PROFILE_DIR;
  if (dir) writeFileSync(join(dir, `${name}.txt`), `${summary}\n`);
}

/** The CPU-time ratios (median series, spread) and the profile tables. */
export async function benchVirtualProfile(): Promise<string> {
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-bench-vprofile-"));
  const kiln = await Kiln.open({ dataDir });
  try {
    const kilnCreate = async () => {
      const sb = await kiln.create();
      await sb.commands.run(SCRIPT);
      return sb;
    };
    const rawCreate = () => new Bash().exec(SCRIPT);
    // Warm-up: the tier's code, just-bash's commands, the JIT.
    for (let i = 0; i < 30; i++) {
      await (await kilnCreate()).kill();
      await rawCreate();
    }
    const creates: [number, number][] = [];
    const execs: [number, number][] = [];
    const sb = await kiln.create();
    const bash = new Bash();
    for (let s = 0; s < SERIES; s++) {
      step(`virtual CPU per operation: series ${s + 1} of ${SERIES}`);
      let k = 0;
      let r = 0;
      for (let i = 0; i < CREATES; i++) {
        let made: Sandbox | undefined;
        k += await cpuMs(async () => {
          made = await kilnCreate();
        });
        await made!.kill();
        r += await cpuMs(rawCreate);
      }
      creates.push([k / CREATES, r / CREATES]);
      k = 0;
      r = 0;
      for (let i = 0; i < EXECS; i++) {
        k += await cpuMs(() => sb.commands.run(SCRIPT));
        r += await cpuMs(() => bash.exec(SCRIPT));
      }
      execs.push([k / EXECS, r / EXECS]);
    }
    step("virtual CPU profiles");
    const pk = await profiled("virtual-create-kiln", async () => {
      for (let i = 0; i < CREATES; i++) await (await kilnCreate()).kill();
    });
    const pr = await profiled("virtual-create-raw", async () => {
      for (let i = 0; i < CREATES; i++) await rawCreate();
    });
    const ek = await profiled("virtual-exec-kiln", async () => {
      for (let i = 0; i < EXECS; i++) await sb.commands.run(SCRIPT);
    });
    const er = await profiled("virtual-exec-raw", async () => {
      for (let i = 0; i < EXECS; i++) await bash.exec(SCRIPT);
    });
    keep("virtual-create-kiln", pk.summary);
    keep("virtual-create-raw", pr.summary);
    keep("virtual-exec-kiln", ek.summary);
    keep("virtual-exec-raw", er.summary);
    const c = ratioSpread(creates);
    const e = ratioSpread(execs);
    const f = (x: number) => x.toFixed(2);
    return [
      "### virtual tier: CPU time per operation, Kiln beside raw just-bash (interleaved)",
      "",
      "| operation | Kiln | raw | Kiln / raw |",
      "|---|---|---|---|",
      `| create + first exec (\`${SCRIPT.replaceAll("|", "\\|")}\`; Kiln's kill untimed), ${CREATES} per series | ${f(c.kiln)} ms | ${f(c.raw)} ms | ${f(c.kiln / c.raw)}x (median series; ${c.text}) |`,
      `| warm exec, ${EXECS} per series | ${f(e.kiln)} ms | ${f(e.raw)} ms | ${f(e.kiln / e.raw)}x (median series; ${e.text}) |`,
      "",
      gapTable("create + first exec (Kiln's profile includes its kill)", pk.profile, pr.profile, CREATES),
      "",
      gapTable("warm exec", ek.profile, er.profile, EXECS),
    ].join("\n");
  } finally {
    await kiln.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
