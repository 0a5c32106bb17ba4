/**
 * A token that names one running process for as long as it runs: its pid and
 * its start time (clock ticks since boot), so that a pid the kernel reuses is
 * not mistaken for the process that once had it. State a process leaves on
 * disk (a warm pool, a pre-started sandbox) is stamped with its token, and the
 * next process can tell whether the owner is gone.
 */
import { readFileSync } from "node:fs";

/** A process's start time, or undefined when it is not running. */
function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The fields after the command name (which may hold spaces); starttime is field 22.
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

/** The token of process `pid` (`<pid>-<start time>`), or undefined when it is not running. */
export function processToken(pid: number): string | undefined {
  const start = startTimeOf(pid);
  return start === undefined ? undefined : `${pid}-${start}`;
}

/** This process's token. */
export const OWN_PROCESS_TOKEN = processToken(process.pid) ?? `${process.pid}-0`;

/** True when `token` names a process that is still running. */
export function processAlive(token: string): boolean {
  const m = /^(\d+)-(\d+)$/.exec(token);
  return m !== null && processToken(Number(m[1])) === token;
}
