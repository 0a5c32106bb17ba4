/** What the tests look up on the host: processes and mounts a sandbox may have left behind. */
import { readdirSync, readFileSync } from "node:fs";

/** Pids of processes (other than this one) whose command line mentions `needle`. */
export function processesMentioning(needle: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync("/proc")) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${p}/cmdline`, "utf8").includes(needle)) out.push(Number(p));
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

/** Lines of /proc/self/mountinfo whose mount point is under `dir`. */
export function mountsUnder(dir: string): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter((l) => l.split(" ")[4]?.startsWith(dir));
}
