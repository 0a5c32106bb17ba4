/**
 * Load test of `kiln serve`: many concurrent clients, each with its own
 * sandbox, each running a series of commands through the client SDK over
 * loopback HTTP. Bounded in count and time (aborted after `deadlineMs`).
 *
 *   node bench/load.ts [--clients 200] [--commands 20] [--inline]
 *
 * By default the server is a separate `kiln serve` process (so client and
 * server do not share an event loop); `--inline` runs it in this process.
 * `runLoad()` is exported for bench/main.ts and the CI-sized test.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { KilnClient } from "../src/client/index.ts";
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
  server: "child process" | "inline";
}

/** A server under test. */
export interface Target {
  url: string;
  key: string;
  stop(): Promise<void>;
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
    return { url: s.url, key, stop: async () => void (await s.close(2000)) };
  }
  const keys = new KeyStore(dataDir);
  const { key } = keys.create({ name: "load", ...budget });
  keys.close();
  const child: ChildProcess = spawn(
    process.execPath,
    [
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
  const target = await startTarget(dataDir, options.inline ?? false, clients);
  const latencies: number[] = [];
  const errorSamples: string[] = [];
  let errors = 0;
  let completed = 0;
  const fail = (e: unknown) => {
    errors++;
    if (errorSamples.length < 5) errorSamples.push(String((e as Error)?.message ?? e));
  };
  try {
    const kiln = await KilnClient.open({ url: target.url, apiKey: target.key });
    const t0 = performance.now();
    const sandboxes = await Promise.all(
      Array.from({ length: clients }, () =>
        kiln.create({ tier: "virtual", signal }).catch((e) => void fail(e)),
      ),
    );
    const createMs = performance.now() - t0;
    const t1 = performance.now();
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
      server: options.inline ? "inline" : "child process",
    };
  } finally {
    await target.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** The report as a markdown table. */
export function loadTable(r: LoadReport): string {
  const rows: [string, string][] = [
    ["clients (one virtual sandbox each)", String(r.clients)],
    ["commands per client", String(r.commandsPerClient)],
    ["commands completed", `${r.completed} / ${r.clients * r.commandsPerClient}`],
    ["errors", String(r.errors)],
    ["create all sandboxes (concurrent)", `${r.createMs.toFixed(0)} ms`],
    ["command phase wall time", `${r.durationMs.toFixed(0)} ms`],
    ["throughput", `${r.throughput.toFixed(0)} commands/s`],
    ["latency p50", `${r.p50Ms.toFixed(1)} ms`],
    ["latency p95", `${r.p95Ms.toFixed(1)} ms`],
    ["latency p99", `${r.p99Ms.toFixed(1)} ms`],
    ["server", r.server],
  ];
  return ["| metric | value |", "|---|---|", ...rows.map(([k, v]) => `| ${k} | ${v} |`)].join("\n");
}

if (import.meta.main) {
  const arg = (name: string, d: number) => {
    const i = process.argv.indexOf(name);
    return i >= 0 ? Number(process.argv[i + 1]) : d;
  };
  const r = await runLoad({
    clients: arg("--clients", 200),
    commandsPerClient: arg("--commands", 20),
    inline: process.argv.includes("--inline"),
  });
  const machine = `${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.versions.node}`;
  process.stdout.write(
    `## Load run of ${new Date().toISOString().slice(0, 10)} (${machine})\n\n${loadTable(r)}\n`,
  );
  if (r.errorSamples.length)
    process.stdout.write(`\nerrors:\n${r.errorSamples.map((s) => `- ${s}`).join("\n")}\n`);
  process.exitCode = r.errors === 0 && r.completed === r.clients * r.commandsPerClient ? 0 : 1;
}
