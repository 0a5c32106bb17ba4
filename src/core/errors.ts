import type { CommandResult } from "./command-result.ts";

/**
 * Kiln's errors. Every error Kiln throws is a {@link KilnError} with a stable
 * snake_case `code`; callers and tests branch on `code`, never on message text.
 * The HTTP status for each code is mapped in one place, in the server.
 */

/** The stable error codes. */
export type ErrorCode =
  | "not_found"
  | "invalid_argument"
  | "timeout"
  | "limit_exceeded"
  | "tier_unavailable"
  | "conflict"
  | "aborted"
  | "sandbox_stopped"
  | "unsupported"
  | "unauthenticated"
  | "port_closed"
  | "unenforced_limits"
  | "internal";

/** Options common to every Kiln error. */
export interface KilnErrorOptions {
  /** The underlying error, if any. */
  cause?: unknown;
  /** The tier the error applies to, if any. */
  tier?: string;
}

/** The base of every error Kiln throws. */
export class KilnError extends Error {
  /** Stable machine-readable code. */
  readonly code: ErrorCode;
  /** Tier the error applies to, when it applies to one. */
  readonly tier: string | undefined;
  /** For a command that timed out or hit a limit: its output up to that point. */
  result?: CommandResult;

  constructor(code: ErrorCode, message: string, options: KilnErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "KilnError";
    this.code = code;
    this.tier = options.tier;
  }

  /** A plain object for JSON output: `{ code, message, tier?, ...extra }`. */
  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, ...(this.tier ? { tier: this.tier } : {}) };
  }
}

/** What kind of thing was not found, where the thrower knows it. */
export type NotFoundResource = "sandbox" | "template" | "file" | "process" | "key" | "port";

/** A sandbox, process, file or template that does not exist. */
export class NotFoundError extends KilnError {
  /** What was not found, when the thrower says (callers branch on it, never on the message). */
  readonly resource: NotFoundResource | undefined;

  constructor(message: string, options: KilnErrorOptions & { resource?: NotFoundResource } = {}) {
    super("not_found", message, options);
    this.name = "NotFoundError";
    this.resource = options.resource;
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), ...(this.resource ? { resource: this.resource } : {}) };
  }
}

/** A malformed argument: bad path, bad option, unknown tier name. */
export class InvalidArgumentError extends KilnError {
  constructor(message: string, options?: KilnErrorOptions) {
    super("invalid_argument", message, options);
    this.name = "InvalidArgumentError";
  }
}

/** An operation that did not finish within its deadline. */
export class TimeoutError extends KilnError {
  /** The deadline that passed, in milliseconds. */
  readonly timeoutMs: number;
  constructor(message: string, timeoutMs: number, options?: KilnErrorOptions) {
    super("timeout", message, options);
    this.name = "TimeoutError";
    this.timeoutMs = timeoutMs;
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), timeoutMs: this.timeoutMs };
  }
}

/** The limits a tier enforces through the host kernel (cgroups, a filesystem), not through core. */
export type HostLimitName = "memoryBytes" | "cpuCount" | "pids" | "diskBytes";

/** A limit a tier cannot enforce on this host, as it runs now, and why. */
export interface UnenforcedLimit {
  /** Which limit would not hold. */
  limit: HostLimitName;
  /** Why not (what the host lacks). */
  reason: string;
}

/**
 * A create (or move) on a tier that cannot enforce every limit here (an ordinary user without
 * delegated cgroups, say), refused because the caller did not pass `allowUnenforcedLimits`.
 */
export class UnenforcedLimitsError extends KilnError {
  /** The limits that would not hold, each with its reason. */
  readonly limits: UnenforcedLimit[];
  constructor(tier: string, limits: UnenforcedLimit[], options?: Omit<KilnErrorOptions, "tier">) {
    super(
      "unenforced_limits",
      `the ${tier} tier cannot enforce ${limits.map((l) => `${l.limit} (${l.reason})`).join(", ")} here; ` +
        "pass allowUnenforcedLimits (the CLI's --allow-unenforced-limits) to create the sandbox without them",
      { ...options, tier },
    );
    this.name = "UnenforcedLimitsError";
    this.limits = limits;
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), limits: this.limits };
  }
}

/** The names of the limits Kiln enforces (see `Limits`). */
export type LimitName =
  | "timeoutMs"
  | "lifetimeMs"
  | "maxOutputBytes"
  | "maxLoopIterations"
  | "maxCommandCount"
  | "maxCallDepth"
  | "memoryBytes"
  | "cpuCount"
  | "pids"
  | "diskBytes"
  | "maxFileBytes"
  /** Admission (src/core/admission.ts): an owner's quota, then the host's budget. */
  | "maxSandboxes"
  | "maxMemoryBytes"
  /** An owner's bytes of snapshots and pause images (and the copies of a fork). */
  | "maxDiskBytes"
  | "hostMaxSandboxes"
  | "hostMaxMemoryBytes";

/** A limit was reached. `limit` names it; `value` is the limit's setting. */
export class LimitExceededError extends KilnError {
  /** Which limit was reached. */
  readonly limit: LimitName;
  /** The limit's configured value. */
  readonly value: number;
  constructor(limit: LimitName, value: number, message?: string, options?: KilnErrorOptions) {
    super("limit_exceeded", message ?? `limit exceeded: ${limit} (${value})`, options);
    this.name = "LimitExceededError";
    this.limit = limit;
    this.value = value;
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), limit: this.limit, value: this.value };
  }
}

/** A tier that cannot run on this machine; `reason` says exactly why. */
export class TierUnavailableError extends KilnError {
  /** Why the tier cannot run here. */
  readonly reason: string;
  constructor(tier: string, reason: string, options?: Omit<KilnErrorOptions, "tier">) {
    super("tier_unavailable", `tier ${tier} is unavailable: ${reason}`, { ...options, tier });
    this.name = "TierUnavailableError";
    this.reason = reason;
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), reason: this.reason };
  }
}

/** The operation conflicts with the current state (a path exists, a sandbox is busy). */
export class ConflictError extends KilnError {
  constructor(message: string, options?: KilnErrorOptions) {
    super("conflict", message, options);
    this.name = "ConflictError";
  }
}

/** The caller's AbortSignal fired. */
export class AbortedError extends KilnError {
  constructor(message = "operation aborted", options?: KilnErrorOptions) {
    super("aborted", message, options);
    this.name = "AbortedError";
  }
}

/** The sandbox was killed or has expired. */
export class SandboxStoppedError extends KilnError {
  constructor(id: string, options?: KilnErrorOptions) {
    super("sandbox_stopped", `sandbox ${id} is not running`, options);
    this.name = "SandboxStoppedError";
  }
}

/** The tier cannot do this operation at all (its docs/tiers page says why). */
export class UnsupportedError extends KilnError {
  constructor(message: string, options?: KilnErrorOptions) {
    super("unsupported", message, options);
    this.name = "UnsupportedError";
  }
}

/** Nothing accepts connections on a sandbox's port (`port_closed`, HTTP 502). */
export class PortClosedError extends KilnError {
  /** The port inside the sandbox. */
  readonly port: number;
  constructor(port: number, message: string, options?: KilnErrorOptions) {
    super("port_closed", message, options);
    this.name = "PortClosedError";
    this.port = port;
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), port: this.port };
  }
}

/** Throws {@link AbortedError} if `signal` has fired. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortedError(undefined, { cause: signal.reason });
}

/** True when `e` is a Kiln error with the given code. */
export function isKilnError(e: unknown, code?: ErrorCode): e is KilnError {
  return e instanceof KilnError && (code === undefined || e.code === code);
}

/**
 * Maps an errno-style failure (ENOENT, EEXIST, ...) from any tier's filesystem
 * to the Kiln error the API throws. Returns `e` unchanged when it is already a
 * KilnError or carries no errno code.
 */
export function fromErrno(e: unknown, limits?: { diskBytes: number; maxFileBytes: number }): unknown {
  if (e instanceof KilnError) return e;
  const code = (e as { code?: unknown; errno?: unknown })?.errno ?? (e as { code?: unknown })?.code;
  if (typeof code !== "string" || !/^E[A-Z]+$/.test(code)) return e;
  const message = (e as Error).message ?? code;
  const opts = { cause: e };
  switch (code) {
    case "ENOENT":
      return new NotFoundError(message, opts);
    case "EEXIST":
    case "ENOTEMPTY":
    case "EBUSY":
      return new ConflictError(message, opts);
    case "ENOSPC":
    case "EDQUOT":
      return new LimitExceededError(
        "diskBytes",
        limits?.diskBytes ?? 0,
        `workspace is full: ${message}`,
        opts,
      );
    case "EFBIG":
      return new LimitExceededError(
        "maxFileBytes",
        limits?.maxFileBytes ?? 0,
        `file too large: ${message}`,
        opts,
      );
    default:
      return new InvalidArgumentError(message, opts);
  }
}

/** No API key, an unknown one, or a revoked one (`unauthenticated`, HTTP 401). */
export class UnauthenticatedError extends KilnError {
  constructor(message = "a valid API key is required (Authorization: Bearer <key> or X-API-Key)") {
    super("unauthenticated", message);
    this.name = "UnauthenticatedError";
  }
}
