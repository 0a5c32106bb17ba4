/**
 * Errors across the wire: the server's `{ error: { code, message, ... } }`
 * becomes the same KilnError subclass the library throws, with the same code
 * and details (`limit`, `value`, `timeoutMs`, `tier`, `reason`, `result`).
 */
import {
  AbortedError,
  ConflictError,
  InvalidArgumentError,
  KilnError,
  LimitExceededError,
  type LimitName,
  NotFoundError,
  type NotFoundResource,
  PortClosedError,
  SandboxStoppedError,
  TierUnavailableError,
  TimeoutError,
  UnauthenticatedError,
  type UnenforcedLimit,
  UnenforcedLimitsError,
  UnsupportedError,
} from "../core/errors.ts";
import type { CommandResult } from "../core/types.ts";

export { UnauthenticatedError };

/** The `error` member of an error body or an `exit` event. */
export interface WireError {
  code: string;
  message: string;
  [detail: string]: unknown;
}

function withMessage<E extends KilnError>(e: E, message: string): E {
  e.message = message;
  return e;
}

/** The KilnError for a wire error. */
export function errorFromWire(w: WireError): KilnError {
  const msg = String(w.message ?? w.code);
  const opts = typeof w.tier === "string" ? { tier: w.tier } : {};
  let e: KilnError;
  switch (w.code) {
    case "not_found":
      e = new NotFoundError(msg, {
        ...opts,
        ...(typeof w.resource === "string" ? { resource: w.resource as NotFoundResource } : {}),
      });
      break;
    case "invalid_argument":
      e = new InvalidArgumentError(msg, opts);
      break;
    case "timeout":
      e = new TimeoutError(msg, Number(w.timeoutMs ?? 0), opts);
      break;
    case "limit_exceeded":
      e = new LimitExceededError(String(w.limit) as LimitName, Number(w.value ?? 0), msg, opts);
      break;
    case "tier_unavailable":
      e =
        typeof w.tier === "string"
          ? withMessage(new TierUnavailableError(w.tier, String(w.reason ?? msg)), msg)
          : new KilnError("tier_unavailable", msg);
      break;
    case "conflict":
      e = new ConflictError(msg, opts);
      break;
    case "aborted":
      e = new AbortedError(msg, opts);
      break;
    case "sandbox_stopped":
      e = withMessage(new SandboxStoppedError(String(w.id ?? ""), opts), msg);
      break;
    case "unsupported":
      e = new UnsupportedError(msg, opts);
      break;
    case "unauthenticated":
      e = new UnauthenticatedError(msg);
      break;
    case "port_closed":
      e = new PortClosedError(Number(w.port ?? 0), msg, opts);
      break;
    case "unenforced_limits":
      e = withMessage(
        new UnenforcedLimitsError(
          String(w.tier ?? ""),
          Array.isArray(w.limits) ? (w.limits as UnenforcedLimit[]) : [],
        ),
        msg,
      );
      break;
    default:
      e = new KilnError("internal", msg, opts);
  }
  if (w.result && typeof w.result === "object") e.result = w.result as CommandResult;
  return e;
}
