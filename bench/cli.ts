/**
 * The `kiln` command as agents and scripts call it: whole processes, each
 * started the way a user starts it (bin/kiln), beside Node's own floor
 * (`node -e 0`), raw bubblewrap and Anthropic's sandbox-runtime (`srt`).
 * Every command runs once per round, round after round, so that all of them
 * see the same machine; the table gives the median wall time and the peak
 * memory (the largest process's maximum resident set, from GNU time).
 * `npm run bench -- cli` runs this section alone.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kiln } from "../src/index.ts";
import { quantile } from "./stats.ts";

const ROOT = join(import.meta.dirname, "..");
const KILN = join(ROOT, "bin", "kiln");
const GNU_TIME = "/usr/bin/time";
/** Where GNU time writes each run's peak memory. */
const TIME_OUT = join(tmpdir(), `kiln-bench-time-${process.pid}`);

/** One command of the table. */
interface Probe {
  label: string;
  cmd: string;
  args: string[];
  env?: Record<string, string>;
  /** Target, as the text shown in the table. */
  target?: string;
  /** Whether the measured median (ms) and peak memory (MiB) meet the target. */
  met?: (wallMs: number, peakMiB: number, medianOf: (label: string) => number) => boolean;
  /** Fewer rounds for slow commands. */
  everyOther?: boolean;
  wallMs: number[];
  peakKiB: number[];
}

/** Runs `cmd` once; resolves to its wall time in ms and peak RSS in KiB (NaN without GNU time). */
function runOnce(p: Probe): Promise<{ wallMs: number; peakKiB: number }> {
  const haveTime = existsSync(GNU_TIME);
  const [cmd, args] = haveTime ? [GNU_TIME, ["-f", "%M", "-o", TIME_OUT, p.cmd, ...p.args]] : [p.cmd, p.args];
  const t = performance.now();
  const child = spawn(cmd, args, { env: { ...process.env, ...p.env }, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => {
      const wallMs = performance.now() - t;
      if (code !== 0) return reject(new Error(`${p.label}: exit ${code}: ${stderr.trim().slice(-400)}`));
      const peakKiB = haveTime
        ? Number(readFileSync(TIME_OUT, "utf8").trim().split("\n").at(-1))
        : Number.NaN;
      resolve({ wallMs, peakKiB });
    });
  });
}

function kilnSync(dataDir: string, args: string[]): string {
  const r = spawnSync(KILN, ["--data-dir", dataDir, ...args], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`kiln ${args.join(" ")}: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

/** Why `srt echo hi` cannot run here, or undefined when it can. */
function srtUnavailable(srt: string): string | undefined {
  if (!existsSync(srt)) return "sandbox-runtime is not installed (npm install)";
  const r = spawnSync(srt, ["echo", "hi"], { encoding: "utf8", timeout: 60_000 });
  if (r.status === 0 && r.stdout === "hi\n") return undefined;
  return (r.stderr || r.error?.message || `exit ${r.status}`).trim().split("\n").at(-1);
}

/**
 * Where a `kiln exec` on a real tier spends its time, measured in this
 * process with the library: no process keeps a real-tier sandbox running
 * between two CLI calls (the runtime ends with the Kiln that started it), so
 * each call reopens it (workspace image mounted, cgroup, runtime and agent
 * started), runs the command, and stops it again.
 */
async function execBreakdown(dataDir: string, ids: Map<string, string>, rounds: number): Promise<string[]> {
  const rows: string[] = [];
  for (const [tier, id] of ids) {
    const open: number[] = [];
    const reopenRun: number[] = [];
    const warmRun: number[] = [];
    const close: number[] = [];
    for (let i = -1; i < rounds; i++) {
      let t = performance.now();
      const kiln = await Kiln.open({ dataDir });
      const tOpen = performance.now() - t;
      t = performance.now();
      const sb = await kiln.connect(id);
      await sb.commands.run("true");
      const tReopen = performance.now() - t;
      t = performance.now();
      await sb.commands.run("true");
      const tWarm = performance.now() - t;
      t = performance.now();
      await kiln.close();
      const tClose = performance.now() - t;
      if (i < 0) continue;
      open.push(tOpen);
      reopenRun.push(tReopen);
      warmRun.push(tWarm);
      close.push(tClose);
    }
    const p50 = (xs: number[]) => `${fmtMs(quantile(xs, 0.5))} ms`;
    rows.push(`| ${tier} | ${p50(open)} | ${p50(reopenRun)} | ${p50(warmRun)} | ${p50(close)} |`);
  }
  return rows;
}

const fmtMs = (ms: number) => (ms >= 100 ? ms.toFixed(0) : ms.toFixed(1));
const fmtMiB = (kib: number) => (Number.isNaN(kib) ? "n/a" : (kib / 1024).toFixed(0));

/**
 * Measures the CLI rows; `rounds` runs of each fast command (half as many of
 * the slow ones). Prints a note on stderr for every row it leaves out.
 */
export async function benchCli(rounds = 10): Promise<string> {
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-bench-cli-"));
  const notes: string[] = [];
  const probes: Probe[] = [];
  const add = (p: Omit<Probe, "wallMs" | "peakKiB">) => probes.push({ ...p, wallMs: [], peakKiB: [] });
  const created = new Map<string, string>();
  let breakdown: string[] = [];
  try {
    const nodeFloor = "`node -e 0`";
    add({ label: nodeFloor, cmd: process.execPath, args: ["-e", "0"] });
    const within = (x: number) => (ms: number, _m: number, median: (l: string) => number) =>
      ms <= x * median(nodeFloor);
    add({
      label: "`kiln --version`",
      cmd: KILN,
      args: ["--version"],
      target: "≤ 1.3x `node -e 0`",
      met: within(1.3),
    });
    add({
      label: "`kiln --help`",
      cmd: KILN,
      args: ["--help"],
      target: "≤ 1.3x `node -e 0`",
      met: within(1.3),
    });
    // What the compiled build and the compile cache buy: the same command without them.
    add({
      label: "`kiln --version`, compiled, compile cache off",
      cmd: KILN,
      args: ["--version"],
      env: { NODE_DISABLE_COMPILE_CACHE: "1" },
    });
    add({
      label: "`kiln --version`, from the TypeScript sources, compile cache off",
      cmd: process.execPath,
      args: [join(ROOT, "src", "cli", "main.ts"), "--version"],
      env: { NODE_DISABLE_COMPILE_CACHE: "1" },
    });
    add({
      label: "`kiln run -- echo hi` (virtual)",
      cmd: KILN,
      args: ["--data-dir", dataDir, "run", "--", "echo", "hi"],
      target: "< 250 ms, < 80 MiB",
      met: (ms, mib) => ms < 250 && mib < 80,
    });

    const doctor = JSON.parse(kilnSync(dataDir, ["--json", "doctor"])) as {
      tiers: { tier: string; available: boolean; reason: string }[];
    };
    const available = new Set<string>();
    for (const tier of ["namespace", "oci", "gvisor"]) {
      const t = doctor.tiers.find((x) => x.tier === tier);
      if (t?.available) available.add(tier);
      else notes.push(`${tier} rows left out: ${t?.reason ?? "not listed by kiln doctor"}`);
    }
    const srt = join(ROOT, "node_modules", ".bin", "srt");
    const srtWhy = srtUnavailable(srt);
    if (srtWhy) notes.push(`\`srt echo hi\` left out: ${srtWhy}`);
    if (available.has("namespace")) {
      add({
        label: "`kiln run --tier namespace -- echo hi`",
        cmd: KILN,
        args: ["--data-dir", dataDir, "run", "--tier", "namespace", "--", "echo", "hi"],
        ...(srtWhy
          ? {}
          : {
              target: "≤ 0.5x `srt echo hi`",
              met: (ms: number, _m: number, median: (l: string) => number) =>
                ms <= 0.5 * median("`srt echo hi`"),
            }),
      });
    }
    for (const tier of available) {
      let id: string;
      try {
        id = kilnSync(dataDir, ["create", "--tier", tier]);
      } catch (e) {
        notes.push(`\`kiln exec\` (${tier}) left out: ${(e as Error).message}`);
        continue;
      }
      created.set(tier, id);
      add({
        label: `\`kiln exec ID -- true\` (${tier})`,
        cmd: KILN,
        args: ["--data-dir", dataDir, "exec", id, "--", "true"],
        target: "< 150 ms",
        met: (ms) => ms < 150,
        everyOther: tier === "gvisor",
      });
    }
    add({
      label: "`bwrap --ro-bind / / --unshare-all echo hi`",
      cmd: "bwrap",
      args: ["--ro-bind", "/", "/", "--unshare-all", "echo", "hi"],
    });
    if (!srtWhy) add({ label: "`srt echo hi`", cmd: srt, args: ["echo", "hi"] });
    if (!existsSync(GNU_TIME)) notes.push(`peak memory left out: no ${GNU_TIME}`);

    // Two untimed rounds first (caches, page cache, the compile cache's first write).
    for (let round = -2; round < rounds; round++) {
      for (const p of probes) {
        if (p.everyOther && round % 2 !== 0) continue;
        const r = await runOnce(p);
        if (round < 0) continue;
        p.wallMs.push(r.wallMs);
        p.peakKiB.push(r.peakKiB);
      }
    }
    breakdown = await execBreakdown(dataDir, created, 5);
  } finally {
    for (const id of created.values())
      spawnSync(KILN, ["--data-dir", dataDir, "rm", id], { stdio: "ignore" });
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(TIME_OUT, { force: true });
  }

  const median = (label: string) => quantile(probes.find((p) => p.label === label)?.wallMs ?? [], 0.5);
  const floor = median("`node -e 0`");
  const lines = [
    "### the `kiln` command (whole process, bin/kiln)",
    "",
    "| command | wall, p50 | / `node -e 0` | peak memory | target | met |",
    "|---|---|---|---|---|---|",
    ...probes.map((p) => {
      const ms = quantile(p.wallMs, 0.5);
      const mib = quantile(p.peakKiB, 0.5) / 1024;
      const met = p.met ? (p.met(ms, mib, median) ? "yes" : "**no**") : "";
      return `| ${p.label} | ${fmtMs(ms)} ms | ${(ms / floor).toFixed(2)}x | ${fmtMiB(quantile(p.peakKiB, 0.5))} MiB | ${p.target ?? ""} | ${met} |`;
    }),
  ];
  if (breakdown.length)
    lines.push(
      "",
      "Where `kiln exec` on a real tier goes (in-process, p50): the sandbox is stopped between CLI calls, so each call reopens it.",
      "",
      "| tier | `Kiln.open` | reopen + first `true` | a second `true` (sandbox running) | close (stop, unmount) |",
      "|---|---|---|---|---|",
      ...breakdown,
    );
  for (const n of notes) process.stderr.write(`bench cli: ${n}\n`);
  if (notes.length) lines.push("", ...notes.map((n) => `- ${n}`));
  return lines.join("\n");
}
