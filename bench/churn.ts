/**
 * Sandbox churn under load: many clients, each creating a virtual sandbox,
 * running one command in it and killing it, round after round, all at once
 * through `kiln serve` on loopback. Records p50/p95/p99 of each step, so that
 * a queue or a lock in the create/kill path shows up as a tail; the same
 * from the second round on, apart from a fresh server's cold start.
 *
 *   node bench/churn.ts [--clients 100] [--rounds 10] [--inline]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { KilnClient } from "../src/client/index.ts";
import { startTarget } from "./load.ts";
import { quantile } from "./stats.ts";

/** Options of {@link runChurn}. */
export interface ChurnOptions {
  /** Concurrent clients; default 100. */
  clients?: number;
  /** Create + exec + kill rounds per client; default 10. */
  rounds?: number;
  /** Hard deadline for the whole run, ms; default 10 minutes. */
  deadlineMs?: number;
  /** Run the server in this process instead of a child `kiln serve`. */
  inline?: boolean;
}

/** What {@link runChurn} measured: latencies of each step, ms. */
export interface ChurnReport {
  clients: number;
  rounds: number;
  errors: number;
  errorSamples: string[];
  wallMs: number;
  create: number[];
  exec: number[];
  kill: number[];
  /** The same from the second round on (a fresh server's first round pays its cold start). */
  warm: { create: number[]; exec: number[]; kill: number[] };
}

/** Runs the churn and returns its figures. */
export async function runChurn(options: ChurnOptions = {}): Promise<ChurnReport> {
  const clients = options.clients ?? 100;
  const rounds = options.rounds ?? 10;
  const signal = AbortSignal.timeout(options.deadlineMs ?? 10 * 60_000);
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-churn-"));
  const target = await startTarget(dataDir, options.inline ?? false, clients);
  const report: ChurnReport = {
    clients,
    rounds,
    errors: 0,
    errorSamples: [],
    wallMs: 0,
    create: [],
    exec: [],
    kill: [],
    warm: { create: [], exec: [], kill: [] },
  };
  const fail = (e: unknown) => {
    report.errors++;
    if (report.errorSamples.length < 5) report.errorSamples.push(String((e as Error)?.message ?? e));
  };
  const timed = async <T>(
    step: "create" | "exec" | "kill",
    round: number,
    fn: () => Promise<T>,
  ): Promise<T> => {
    const t = performance.now();
    const r = await fn();
    report[step].push(performance.now() - t);
    if (round > 0) report.warm[step].push(performance.now() - t);
    return r;
  };
  try {
    const kiln = await KilnClient.open({ url: target.url, apiKey: target.key });
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: clients }, async (_, c) => {
        for (let i = 0; i < rounds && !signal.aborted; i++) {
          try {
            const sb = await timed("create", i, () => kiln.create({ tier: "virtual", signal }));
            const r = await timed("exec", i, () =>
              sb.commands.run(`echo c${c} r${i} | tr a-z A-Z`, { signal }),
            );
            if (r.stdout !== `C${c} R${i}\n`)
              fail(new Error(`client ${c} round ${i}: ${JSON.stringify(r.stdout)}`));
            await timed("kill", i, () => sb.kill({ signal }));
          } catch (e) {
            fail(e);
          }
        }
      }),
    );
    report.wallMs = performance.now() - t0;
    return report;
  } finally {
    await target.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** The report as a markdown table: p50/p95/p99/max of each step. */
export function churnTable(r: ChurnReport): string {
  const ms = (v: number) => `${v.toFixed(0)} ms`;
  const row = (name: string, xs: number[]) =>
    `| ${name} | ${xs.length} | ${ms(quantile(xs, 0.5))} | ${ms(quantile(xs, 0.95))} | ${ms(quantile(xs, 0.99))} | ${ms(Math.max(...xs))} |`;
  return [
    `${r.clients} clients x ${r.rounds} rounds of create + exec + kill (virtual tier); errors: ${r.errors}; wall time ${ms(r.wallMs)}`,
    "",
    "| step | count | p50 | p95 | p99 | max |",
    "|---|---|---|---|---|---|",
    row("create", r.create),
    row("exec", r.exec),
    row("kill", r.kill),
    ...(r.rounds > 1
      ? [
          row("create, from round 2 on", r.warm.create),
          row("exec, from round 2 on", r.warm.exec),
          row("kill, from round 2 on", r.warm.kill),
        ]
      : []),
  ].join("\n");
}

if (import.meta.main) {
  const arg = (name: string, d: number) => {
    const i = process.argv.indexOf(name);
    return i >= 0 ? Number(process.argv[i + 1]) : d;
  };
  const r = await runChurn({
    clients: arg("--clients", 100),
    rounds: arg("--rounds", 10),
    inline: process.argv.includes("--inline"),
  });
  const machine = `${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.versions.node}`;
  process.stdout.write(
    `## Churn run of ${new Date().toISOString().slice(0, 10)} (${machine})\n\n${churnTable(r)}\n`,
  );
  if (r.errorSamples.length)
    process.stdout.write(`\nerrors:\n${r.errorSamples.map((s) => `- ${s}`).join("\n")}\n`);
  process.exitCode = r.errors === 0 ? 0 : 1;
}
