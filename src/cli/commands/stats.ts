/**
 * `kiln stats ID`: a sandbox's CPU, memory and disk in use, live like
 * `docker stats` (one new sample a second, redrawn in place on a terminal,
 * one line each otherwise) until interrupted; `--no-stream` prints one
 * sample. CPU is the share of one core over the last interval (200% is two
 * cores busy). A figure the tier cannot measure is `-` (see docs/tiers/).
 */
import type { Command } from "commander";
import type { InstanceStats } from "../../core/backend.ts";
import { InvalidArgumentError } from "../../core/errors.ts";
import { printTable } from "../output.ts";
import { withSandbox } from "../sandbox-access.ts";

const MiB = 1024 * 1024;

/** One row of `kiln stats`, from two samples `intervalMs` apart. */
export interface StatsRow {
  id: string;
  /** CPU over the interval, percent of one core; undefined when not measured. */
  cpuPct: number | undefined;
  memoryBytes: number | undefined;
  memoryLimitBytes: number;
  diskBytes: number | undefined;
  diskLimitBytes: number;
}

/** CPU percent of one core between two samples taken `ms` apart. */
export function cpuPercent(a: InstanceStats, b: InstanceStats, ms: number): number | undefined {
  if (a.cpuMs === undefined || b.cpuMs === undefined || ms <= 0) return undefined;
  return Math.max(0, ((b.cpuMs - a.cpuMs) / ms) * 100);
}

const mib = (n: number | undefined) => (n === undefined ? "-" : `${(n / MiB).toFixed(1)}MiB`);

/** Registers `stats`. */
export function registerStats(program: Command): void {
  program
    .command("stats")
    .description("show a sandbox's CPU, memory and disk use, live (like docker stats)")
    .argument("<id>", "sandbox id")
    .option("--no-stream", "print one sample and exit")
    .option("--interval <ms>", "time between samples", "1000")
    .option("--server <url>", "through a `kiln serve` (key in $KILN_API_KEY)", process.env.KILN_SERVER)
    .action(
      async (id: string, flags: { stream: boolean; interval: string; server?: string }, cmd: Command) => {
        const intervalMs = Number(flags.interval);
        if (!Number.isInteger(intervalMs) || intervalMs < 100 || intervalMs > 3_600_000)
          throw new InvalidArgumentError("--interval must be an integer of ms from 100 to 3600000");
        await withSandbox(cmd, id, flags.server, async (sb, g) => {
          const { limits } = await sb.info();
          const stop = new AbortController();
          const onSignal = () => stop.abort();
          process.once("SIGINT", onSignal);
          process.once("SIGTERM", onSignal);
          const tty = process.stdout.isTTY && !g.json;
          try {
            let prev = await sb.stats();
            let prevAt = performance.now();
            for (let n = 0; !stop.signal.aborted; n++) {
              await sleep(flags.stream ? intervalMs : Math.min(intervalMs, 500), stop.signal);
              if (stop.signal.aborted) break;
              const cur = await sb.stats();
              const at = performance.now();
              const row: StatsRow = {
                id,
                cpuPct: cpuPercent(prev, cur, at - prevAt),
                memoryBytes: cur.memoryBytes,
                memoryLimitBytes: limits.memoryBytes,
                diskBytes: cur.diskBytes,
                diskLimitBytes: limits.diskBytes,
              };
              prev = cur;
              prevAt = at;
              if (g.json) process.stdout.write(`${JSON.stringify(row)}\n`);
              else {
                if (tty) process.stdout.write("\x1b[2J\x1b[H");
                if (tty || n === 0)
                  printTable(
                    ["SANDBOX", "CPU %", "MEM USAGE / LIMIT", "MEM %", "DISK / LIMIT"],
                    [cells(row)],
                  );
                else process.stdout.write(`${cells(row).join("  ")}\n`);
              }
              if (!flags.stream) break;
            }
          } finally {
            process.off("SIGINT", onSignal);
            process.off("SIGTERM", onSignal);
          }
        });
      },
    );
}

function cells(r: StatsRow): string[] {
  return [
    r.id,
    r.cpuPct === undefined ? "-" : `${r.cpuPct.toFixed(2)}%`,
    `${mib(r.memoryBytes)} / ${mib(r.memoryLimitBytes)}`,
    r.memoryBytes === undefined ? "-" : `${((r.memoryBytes / r.memoryLimitBytes) * 100).toFixed(2)}%`,
    `${mib(r.diskBytes)} / ${mib(r.diskLimitBytes)}`,
  ];
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
