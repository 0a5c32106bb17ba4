/** Kiln limits in just-bash's terms, and just-bash's limit reports in Kiln's. */
import type { BashOptions } from "just-bash";
import type { LimitName } from "../../core/errors.ts";
import { type Limits, MAX_COMMAND_TIMEOUT_MS } from "../../core/limits.ts";

/** just-bash execution limits derived from a sandbox's Kiln limits. */
export function toJustBashLimits(l: Limits): NonNullable<BashOptions["executionLimits"]> {
  return {
    maxLoopIterations: l.maxLoopIterations,
    maxAwkIterations: l.maxLoopIterations,
    maxSedIterations: l.maxLoopIterations,
    maxJqIterations: l.maxLoopIterations,
    // A brace range ({1..N}) is as many words as a loop's iterations, and is most often one's list;
    // just-bash also caps the steps of one expansion at min(this, 100,000), about two per word.
    maxBraceExpansionResults: l.maxLoopIterations,
    maxCommandCount: l.maxCommandCount,
    maxCallDepth: l.maxCallDepth,
    maxOutputSize: l.maxOutputBytes,
    maxStringLength: Math.min(l.maxOutputBytes * 4, 64 * 1024 * 1024),
    maxFileSystemBytes: l.diskBytes,
    maxLiveBytes: l.memoryBytes,
    // Time limits are core's alone: its clock aborts the exec's signal, which just-bash and its
    // js-exec, sqlite and python workers honour. just-bash's own clocks (30 s, 10 s, 5 s by
    // default) would cut a command whose limit is longer or none, so they are set past the
    // longest limit core accepts.
    maxExecutionTimeMs: MAX_COMMAND_TIMEOUT_MS,
    maxPythonTimeoutMs: MAX_COMMAND_TIMEOUT_MS,
    maxJsTimeoutMs: MAX_COMMAND_TIMEOUT_MS,
    maxSqliteTimeoutMs: MAX_COMMAND_TIMEOUT_MS,
  };
}

/** just-bash limit names, as its messages spell them, mapped to Kiln's. */
const NAMES: Record<string, LimitName> = {
  maxLoopIterations: "maxLoopIterations",
  maxAwkIterations: "maxLoopIterations",
  maxSedIterations: "maxLoopIterations",
  maxJqIterations: "maxLoopIterations",
  maxCommandCount: "maxCommandCount",
  maxCallDepth: "maxCallDepth",
  maxOutputSize: "maxOutputBytes",
  maxExecutionTimeMs: "timeoutMs",
  maxLiveBytes: "memoryBytes",
  maxStringLength: "memoryBytes",
  maxFileSystemBytes: "diskBytes",
};

/** Messages of just-bash limits that do not name their setting. */
const PATTERNS: [RegExp, LimitName][] = [
  [/output size limit exceeded/, "maxOutputBytes"],
  [/maximum loop iterations|too many loop iterations/i, "maxLoopIterations"],
  // Brace expansion: too many words, or too many steps to make them (about two per word of a range).
  [
    /brace expansion result limit exceeded|brace_operations work limit exceeded|iteration limit exceeded/,
    "maxLoopIterations",
  ],
  [/maximum call depth|recursion depth/i, "maxCallDepth"],
];

/**
 * The limit a just-bash run ended on. just-bash reports these only as text
 * ("... increase executionLimits.maxCommandCount"), so this is the one place
 * that reads its messages.
 */
export function limitFromStderr(
  stderr: string,
  limits: Limits,
): { limit: LimitName; value: number; message: string } | undefined {
  const m = /executionLimits\.(\w+)/.exec(stderr);
  let limit: LimitName | undefined = m ? NAMES[m[1]!] : undefined;
  if (!limit) limit = PATTERNS.find(([re]) => re.test(stderr))?.[1];
  if (!limit) return undefined;
  const line = stderr.split("\n").find((l) => l.includes("limit") || l.includes("executionLimits")) ?? stderr;
  return { limit, value: limits[limit as keyof Limits] as number, message: line.trim() };
}
