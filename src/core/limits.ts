/**
 * Every limit Kiln enforces, in one place, with its default. Limits are on by
 * default on every tier; a tier that cannot enforce one says so through its
 * capabilities and docs/tiers/<tier>.md.
 */
import { InvalidArgumentError } from "./errors.ts";

/** Resource and execution limits of one sandbox. */
export interface Limits {
  /** Wall time of one command, in ms; default 60,000. 0 means none. */
  timeoutMs: number;
  /** Bytes of stdout plus stderr kept per command; default 16 MiB. */
  maxOutputBytes: number;
  /** Iterations of one shell loop, and words of one brace expansion (virtual tier); default 100,000. */
  maxLoopIterations: number;
  /** Commands run by one script (virtual tier); default 100,000. */
  maxCommandCount: number;
  /** Depth of shell function recursion (virtual tier); default 100. */
  maxCallDepth: number;
  /** Memory of the sandbox, in bytes; default 512 MiB. */
  memoryBytes: number;
  /** CPUs the sandbox may use (fractions allowed); default 1. */
  cpuCount: number;
  /** Processes and threads in the sandbox; default 256. */
  pids: number;
  /** Bytes the workspace may hold; default 1 GiB. */
  diskBytes: number;
  /** Bytes of one file written through the files API; default 256 MiB. */
  maxFileBytes: number;
}

const MiB = 1024 * 1024;

/** The defaults: the `normal` profile. */
export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  timeoutMs: 60_000,
  maxOutputBytes: 16 * MiB,
  maxLoopIterations: 100_000,
  maxCommandCount: 100_000,
  maxCallDepth: 100,
  memoryBytes: 512 * MiB,
  cpuCount: 1,
  pids: 256,
  diskBytes: 1024 * MiB,
  maxFileBytes: 256 * MiB,
});

/** Named limit profiles. `hardened` suits code from an untrusted model. */
export const LIMIT_PROFILES: Readonly<Record<"normal" | "hardened", Readonly<Limits>>> = Object.freeze({
  normal: DEFAULT_LIMITS,
  hardened: Object.freeze({
    timeoutMs: 10_000,
    maxOutputBytes: 1 * MiB,
    maxLoopIterations: 10_000,
    maxCommandCount: 10_000,
    maxCallDepth: 50,
    memoryBytes: 128 * MiB,
    cpuCount: 0.5,
    pids: 64,
    diskBytes: 128 * MiB,
    maxFileBytes: 32 * MiB,
  }),
});

/** Longest command wall time, ms: the longest delay a Node timer can wait (about 24.8 days). */
export const MAX_COMMAND_TIMEOUT_MS = 2 ** 31 - 1;

/** Longest sandbox lifetime, ms: 100 years, well inside what a Date can hold. */
export const MAX_SANDBOX_TIMEOUT_MS = 100 * 365 * 24 * 3600 * 1000;

/**
 * Checks a wall-time value in ms: a finite number from 0 (none) to `max`.
 * @throws InvalidArgumentError (`invalid_argument`)
 */
export function checkTimeoutMs(name: string, value: unknown, max: number): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || value > max)
    throw new InvalidArgumentError(`${name} must be a number from 0 to ${max}, got ${String(value)}`);
  return value;
}

/**
 * Fills in defaults and checks each value.
 * @throws InvalidArgumentError (`invalid_argument`) for an unknown key, a value that is not a
 * non-negative number, or a `timeoutMs` over {@link MAX_COMMAND_TIMEOUT_MS}.
 */
export function resolveLimits(
  partial: Partial<Limits> = {},
  base: Readonly<Limits> = DEFAULT_LIMITS,
): Limits {
  const out: Limits = { ...base };
  for (const [key, value] of Object.entries(partial)) {
    if (!(key in DEFAULT_LIMITS)) throw new InvalidArgumentError(`unknown limit: ${key}`);
    if (value === undefined) continue;
    if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
      throw new InvalidArgumentError(`limit ${key} must be a non-negative number, got ${String(value)}`);
    }
    out[key as keyof Limits] = value;
  }
  checkTimeoutMs("limit timeoutMs", out.timeoutMs, MAX_COMMAND_TIMEOUT_MS);
  if (out.cpuCount <= 0) throw new InvalidArgumentError("limit cpuCount must be greater than 0");
  return out;
}
