/**
 * Every mapping of a Kiln error to an E2B error shape, in one place. The `e2b`
 * SDK turns these back into its own classes:
 *
 * - REST API (`/v2/sandboxes`...): a JSON body `{ code: <http status>, message }`.
 *   The SDK reads `error.code === 404` to raise `SandboxNotFoundError` (or to
 *   return `false` from `kill`), 401 raises `AuthenticationError`, any other
 *   status a `SandboxError` with `statusCode`. 429 and 503 are never used: the
 *   SDK retries them as transient.
 * - envd Connect RPC: a `ConnectError` code. `not_found` -> `NotFound`
 *   (`NotFoundError`, `FileNotFoundError` for files), `timeout` ->
 *   `DeadlineExceeded` (`TimeoutError`), `sandbox_stopped` -> `Unavailable`
 *   (`TimeoutError`, as E2B reports a sandbox that is gone), `conflict` ->
 *   `AlreadyExists`, `unsupported` -> `Unimplemented`.
 * - envd plain HTTP (`/files`, `/health`): a status with `{ code, message }`;
 *   404 -> `FileNotFoundError`, 400 -> `InvalidArgumentError`, 507 ->
 *   `NotEnoughSpaceError`, 502 (sandbox gone) -> `TimeoutError`.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { KilnError } from "../core/errors.ts";

/** An HTTP status and the JSON body E2B's API and envd use for errors. */
export interface E2bHttpError {
  status: number;
  body: { code: number; message: string };
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** A JSON error response in E2B's `{ code, message }` shape. */
export function errorResponse(status: number, message: string): Response {
  return Response.json({ code: status, message }, { status });
}

/** The REST API's status for a Kiln error code. */
function restStatus(e: unknown): number {
  if (!(e instanceof KilnError)) return 500;
  switch (e.code) {
    case "not_found":
    case "sandbox_stopped":
      return 404;
    case "invalid_argument":
    case "tier_unavailable":
    case "aborted":
      return 400;
    case "conflict":
      return 409;
    case "limit_exceeded":
      return 400;
    case "timeout":
      return 504;
    case "unsupported":
      return 501;
    default:
      return 500;
  }
}

/** A thrown value as the REST API's error response. */
export function restErrorResponse(e: unknown): Response {
  return errorResponse(restStatus(e), messageOf(e));
}

/** A thrown value as envd's plain-HTTP error response (`/files`). */
export function envdHttpErrorResponse(e: unknown): Response {
  let status = 500;
  if (e instanceof KilnError) {
    switch (e.code) {
      case "not_found":
        status = 404;
        break;
      case "invalid_argument":
      case "aborted":
        status = 400;
        break;
      case "conflict":
        status = 409;
        break;
      case "limit_exceeded":
        status = (e as { limit?: string }).limit === "diskBytes" ? 507 : 413;
        break;
      case "sandbox_stopped":
        status = 502;
        break;
      case "unsupported":
        status = 501;
        break;
    }
  }
  return errorResponse(status, messageOf(e));
}

/** The response envd's proxy gives for a sandbox that is not running (the SDK: `TimeoutError`, `isRunning() === false`). */
export function sandboxGoneResponse(id: string): Response {
  return errorResponse(502, `sandbox ${id} is not running or does not exist`);
}

/** A thrown value as the `ConnectError` an envd RPC fails with. */
export function toConnectError(e: unknown): ConnectError {
  if (e instanceof ConnectError) return e;
  if (!(e instanceof KilnError))
    return new ConnectError(messageOf(e), Code.Internal, undefined, undefined, e);
  const code = {
    not_found: Code.NotFound,
    invalid_argument: Code.InvalidArgument,
    timeout: Code.DeadlineExceeded,
    limit_exceeded: Code.FailedPrecondition,
    tier_unavailable: Code.FailedPrecondition,
    conflict: Code.AlreadyExists,
    aborted: Code.Canceled,
    sandbox_stopped: Code.Unavailable,
    unsupported: Code.Unimplemented,
    unauthenticated: Code.Unauthenticated,
    internal: Code.Internal,
  }[e.code];
  return new ConnectError(e.message, code, undefined, undefined, e);
}

/** Runs `fn`, rethrowing any failure as a `ConnectError`. */
export async function rpc<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw toConnectError(e);
  }
}
