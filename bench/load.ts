/**
 * Load test of `kiln serve`: many concurrent clients, each with its own
 * sandbox, each running a series of commands through the client SDK over
 * loopback HTTP. Bounded in count and time (aborted after `deadlineMs`).
 *
 *   node bench/load.ts [--clients 200] [--commands 20] [--inline | --library] [--baseline]
 *
 * With KILN_BENCH_PROFILE_DIR set, the child server writes a V8 CPU profile
 * there (summarise it with `node bench/profile-summary.ts FILE`).
 *
 * By default the server is a separate `kiln serve` process (so client and
 * server do not share an event loop); `--inline` runs it in this process.
 * `runLoad()` is exported for bench/main.ts and the CI-sized test.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { KilnClient } from "../src/client/index.ts";
import { Kiln } from "../src/index.ts";
import { KeyStore, startServer } from "../src/server/index.ts";
import { quantile } from "./stats.ts";

/** Options of {@link runLoad}. */
export interface LoadOptions {
  /** Concurrent clients, each with its own sandbox; default 200. */
  clients?: number;
  /** Commands per client; default 20. */
  commandsPerClient?: number;
  /** Hard deadline for the whole run, ms; default 5 minutes. */
  deadlineMs?: number;
  /** Run the server in this process instead of a child `kiln serve`. */
  inline?: boolean;
  /** No server: the same clients call the library (`Kiln`) in this process; the baseline. */
  library?: boolean;
}

/** What {@link runLoad} measured. */
export interface LoadReport {
  clients: number;
  commandsPerClient: number;
  /** Commands that completed with the expected output. */
  completed: number;
  /** Failed calls (create, run, kill), and wrong outputs. */
  errors: number;
  /** First few error messages. */
  errorSamples: string[];
  /** Wall time of the command phase, ms (sandbox creation excluded). */
  durationMs: number;
  /** Commands per second over the command phase. */
  throughput: number;
  /** Latency of one command (request to exit event), ms. */
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  /** Time to create all sandboxes concurrently, ms. */
  createMs: number;
  /** CPU time of the server (inline and library: of this whole process) per command, ms. */
  cpuMsPerCommand: number;
  /** CPU time of the clients (this process) per command, ms; with a child server only. */
  clientCpuMsPerCommand: number | undefined;
  server: "child process" | "inline" | "none (library)";
}

/** A server under test (or, for the baseline, the library itself in `kiln`). */
export interface Target {
  url: string;
  key: string;
  kiln?: Kiln;
  /** CPU time (user + system) the server has used so far, ms: robust where wall time is not (a shared machine). */
  cpuMs(): number;
  stop(): Promise<void>;
}

/** This process's CPU time so far, ms. */
function ownCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** Another process's CPU time so far, ms (Linux: /proc/PID/stat, utime + stime in clock ticks of 10 ms). */
function processCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return Number.NaN;
  }
}

/** The baseline: no server, the library in this process on `dataDir`. */
async function libraryTarget(dataDir: string): Promise<Target> {
  const kiln = await Kiln.open({ dataDir });
  return { url: "", key: "", kiln, cpuMs: ownCpuMs, stop: () => kiln.close() };
}

const root = join(import.meta.dirname, "..");

/** Room for every client's sandbox, whatever this machine's RAM: the bench measures speed, not admission. */
function budgetFor(clients: number): { maxSandboxes: number; maxMemoryBytes: number } {
  return { maxSandboxes: clients * 2, maxMemoryBytes: clients * 2 * 1024 ** 3 };
}

/** A server (child `kiln serve`, or inline) on `dataDir` with room for `clients` sandboxes, and its key. */
export async function startTarget(dataDir: string, inline: boolean, clients: number): Promise<Target> {
  const budget = budgetFor(clients);
  if (inline) {
    const s = await startServer({ dataDir, port: 0, host: "127.0.0.1", budget });
    const { key } = s.keys.create({ name: "load", ...budget });
    return { url: s.url, key, cpuMs: ownCpuMs, stop: async () => void (await s.close(2000)) };
  }
  const keys = new KeyStore(dataDir);
  const { key } = keys.create({ name: "load", ...budget });
  keys.close();
  // KILN_BENCH_PROFILE_DIR: the server writes a CPU profile there when it exits (`node --cpu-prof`).
  const profileDir = process.env.KILN_BENCH_PROFILE_DIR;
  const child: ChildProcess = spawn(
    process.execPath,
    [
      ...(profileDir ? ["--cpu-prof", "--cpu-prof-dir", profileDir] : []),
      join(root, "src", "cli", "main.ts"),
      "--data-dir",
      dataDir,
      "serve",
      "--port",
      "0",
      "--host",
      "127.0.0.1",
      "--json",
      "--max-sandboxes",
      String(budget.maxSandboxes),
      "--max-memory-bytes",
      String(budget.maxMemoryBytes),
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once("line", resolve);
    child.once("exit", () => reject(new Error("kiln serve exited before listening")));
  });
  return {
    url: JSON.parse(line).url,
    key,
    cpuMs: () => processCpuMs(child.pid!),
    stop: async () => {
      child.kill("SIGTERM");
      await exited;
    },
  };
}

/** Runs the load test and returns its figures. */
export async function runLoad(options: LoadOptions = {}): Promise<LoadReport> {
  const clients = options.clients ?? 200;
  const perClient = options.commandsPerClient ?? 20;
  const signal = AbortSignal.timeout(options.deadlineMs ?? 5 * 60_000);
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-load-"));
  const target = options.library
    ? await libraryTarget(dataDir)
    : await startTarget(dataDir, options.inline ?? false, clients);
  const latencies: number[] = [];
  const errorSamples: string[] = [];
  let errors = 0;
  let completed = 0;
  const fail = (e: unknown) => {
    errors++;
    if (errorSamples.length < 5) errorSamples.push(String((e as Error)?.message ?? e));
  };
  try {
    const kiln = target.kiln ?? (await KilnClient.open({ url: target.url, apiKey: target.key }));
    const t0 = performance.now();
    const sandboxes = await Promise.all(
      Array.from({ length: clients }, () =>
        kiln.create({ tier: "virtual", signal }).catch((e) => void fail(e)),
      ),
    );
    const createMs = performance.now() - t0;
    const t1 = performance.now();
    const cpu0 = target.cpuMs();
    const clientCpu0 = ownCpuMs();
    await Promise.all(
      sandboxes.map(async (sb, c) => {
        if (!sb) return;
        for (let i = 0; i < perClient && !signal.aborted; i++) {
          const start = performance.now();
          try {
            const r = await sb.commands.run(`echo client${c} cmd${i} | tr a-z A-Z`, { signal });
            latencies.push(performance.now() - start);
            if (r.exitCode === 0 && r.stdout === `CLIENT${c} CMD${i}\n`) completed++;
            else
              fail(
                new Error(`client ${c} command ${i}: exit ${r.exitCode}, stdout ${JSON.stringify(r.stdout)}`),
              );
          } catch (e) {
            fail(e);
          }
        }
      }),
    );
    const durationMs = performance.now() - t1;
    const cpuMsPerCommand = (target.cpuMs() - cpu0) / Math.max(1, completed);
    const clientCpuMs = ownCpuMs() - clientCpu0;
    await Promise.all(sandboxes.map((sb) => sb?.kill({ signal }).catch(fail)));
    return {
      clients,
      commandsPerClient: perClient,
      completed,
      errors,
      errorSamples,
      durationMs,
      throughput: completed / (durationMs / 1000),
      p50Ms: quantile(latencies, 0.5),
      p95Ms: quantile(latencies, 0.95),
      p99Ms: quantile(latencies, 0.99),
      createMs,
      cpuMsPerCommand,
      clientCpuMsPerCommand:
        options.library || options.inline ? undefined : clientCpuMs / Math.max(1, completed),
      server: options.library ? "none (library)" : options.inline ? "inline" : "child process",
    };
  } finally {
    await target.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** The report as a markdown table; with `baseline` (the library alone, same run), a column for it and the ratio. */
export function loadTable(r: LoadReport, baseline?: LoadReport): string {
  const rows: [string, (x: LoadReport) => string][] = [
    ["clients (one virtual sandbox each)", (x) => String(x.clients)],
    ["commands per client", (x) => String(x.commandsPerClient)],
    ["commands completed", (x) => `${x.completed} / ${x.clients * x.commandsPerClient}`],
    ["errors", (x) => String(x.errors)],
    ["create all sandboxes (concurrent)", (x) => `${x.createMs.toFixed(0)} ms`],
    ["command phase wall time", (x) => `${x.durationMs.toFixed(0)} ms`],
    ["throughput", (x) => `${x.throughput.toFixed(0)} commands/s`],
    ["latency p50", (x) => `${x.p50Ms.toFixed(1)} ms`],
    ["latency p95", (x) => `${x.p95Ms.toFixed(1)} ms`],
    ["latency p99", (x) => `${x.p99Ms.toFixed(1)} ms`],
    [
      "CPU per command (server process; library: the whole process)",
      (x) => `${x.cpuMsPerCommand.toFixed(2)} ms`,
    ],
    [
      "CPU per command (the clients' process)",
      (x) => (x.clientCpuMsPerCommand === undefined ? "-" : `${x.clientCpuMsPerCommand.toFixed(2)} ms`),
    ],
    ["server", (x) => x.server],
  ];
  if (!baseline) {
    return ["| metric | value |", "|---|---|", ...rows.map(([k, f]) => `| ${k} | ${f(r)} |`)].join("\n");
  }
  return [
    "| metric | `kiln serve` | library alone (same clients, no server) |",
    "|---|---|---|",
    ...rows.map(([k, f]) => `| ${k} | ${f(r)} | ${f(baseline)} |`),
    `| server throughput / library throughput | ${((100 * r.throughput) / baseline.throughput).toFixed(0)}% | |`,
    `| p99 / p50 | ${(r.p99Ms / r.p50Ms).toFixed(1)}x | ${(baseline.p99Ms / baseline.p50Ms).toFixed(1)}x |`,
  ].join("\n");
}

if (import.meta.main) {
  const arg = (name: string, d: number) => {
    const i = process.argv.indexOf(name);
    return i >= 0 ? Number(process.argv[i + 1]) : d;
  };
  const opts = { clients: arg("--clients", 200), commandsPerClient: arg("--commands", 20) };
  // --library: the library alone; --baseline: the library alone first, then the server, side by side.
  const baseline = process.argv.includes("--baseline")
    ? await runLoad({ ...opts, library: true })
    : undefined;
  const r = await runLoad({
    ...opts,
    inline: process.argv.includes("--inline"),
    library: process.argv.includes("--library"),
  });
  const machine = `${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.versions.node}`;
  process.stdout.write(
    `## Load run of ${new Date().toISOString().slice(0, 10)} (${machine}, load average ${loadavg()[0]!.toFixed(1)})\n\n${loadTable(r, baseline)}\n`,
  );
  if (r.errorSamples.length)
    process.stdout.write(`\nerrors:\n${r.errorSamples.map((s) => `- ${s}`).join("\n")}\n`);
  process.exitCode = r.errors === 0 && r.completed === r.clients * r.commandsPerClient ? 0 : 1;
}
