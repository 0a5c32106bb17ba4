/**
 * The one mapping from the agent's errno-style failures to Kiln errors. Every agent call a tier
 * makes (spawn, resize, file operations) passes its failure through {@link kilnErrorFromAgent};
 * callers branch on the resulting `code`, never on the agent's message.
 *
 * | agent errno | Kiln error |
 * |---|---|
 * | ECONNRESET (the agent went away) | `sandbox_stopped` |
 * | EAGAIN (no room for a process or thread) | `limit_exceeded` (`pids`) |
 * | ENOTTY (no terminal could be opened) | `unsupported` |
 * | ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH, ENETUNREACH, EADDRNOTAVAIL (a port's `connect`) | `port_closed` |
 * | ENOENT | `not_found` |
 * | EEXIST, ENOTEMPTY, EBUSY | `conflict` |
 * | ENOSPC, EDQUOT | `limit_exceeded` (`diskBytes`) |
 * | EFBIG | `limit_exceeded` (`maxFileBytes`) |
 * | any other | `invalid_argument` |
 */
import {
  fromErrno,
  KilnError,
  LimitExceededError,
  PortClosedError,
  SandboxStoppedError,
  UnsupportedError,
} from "../core/errors.ts";

/** What the mapping needs to know about the sandbox the failure came from. */
export interface AgentErrorContext {
  sandboxId: string;
  /** The port of a failed `connect`. */
  port?: number;
  limits: { pids: number; diskBytes: number; maxFileBytes: number };
}

/** The Kiln error for a failure of an agent call; values that are not agent failures pass through. */
export function kilnErrorFromAgent(e: unknown, ctx: AgentErrorContext): unknown {
  if (e instanceof KilnError) return e;
  const errno = (e as { errno?: unknown })?.errno;
  const cause = { cause: e };
  switch (errno) {
    case "ECONNRESET":
      return new SandboxStoppedError(ctx.sandboxId, cause);
    case "EAGAIN":
      return new LimitExceededError(
        "pids",
        ctx.limits.pids,
        "process limit reached: the sandbox cannot start another process",
        cause,
      );
    case "ECONNREFUSED":
    case "ETIMEDOUT":
    case "EHOSTUNREACH":
    case "ENETUNREACH":
    case "EADDRNOTAVAIL":
      return new PortClosedError(
        ctx.port ?? 0,
        `nothing accepts connections on port ${ctx.port} in sandbox ${ctx.sandboxId}: ${(e as Error).message}`,
        cause,
      );
    case "ENOTTY":
      return new UnsupportedError(`this sandbox cannot open a terminal: ${(e as Error).message}`, cause);
    default:
      return fromErrno(e, ctx.limits);
  }
}
