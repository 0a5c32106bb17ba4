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
import { type ErrorCode, KilnError, LimitExceededError } from "../core/errors.ts";

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

/** The REST API's status for each Kiln error code (429 and 503 never: the SDK retries them). */
const REST_STATUS: Readonly<Record<ErrorCode, number>> = {
  not_found: 404,
  sandbox_stopped: 404,
  invalid_argument: 400,
  tier_unavailable: 400,
  aborted: 400,
  limit_exceeded: 400,
  conflict: 409,
  timeout: 504,
  unsupported: 501,
  unauthenticated: 401,
  port_closed: 502,
  unenforced_limits: 400,
  internal: 500,
};

/** The REST API's status for a thrown value. */
function restStatus(e: unknown): number {
  return e instanceof KilnError ? REST_STATUS[e.code] : 500;
}

/** A thrown value as the REST API's error response. */
export function restErrorResponse(e: unknown): Response {
  return errorResponse(restStatus(e), messageOf(e));
}

/** envd's plain-HTTP status for each Kiln error code (`limit_exceeded` on disk space: 507). */
const ENVD_HTTP_STATUS: Readonly<Record<ErrorCode, number>> = {
  not_found: 404,
  invalid_argument: 400,
  aborted: 400,
  conflict: 409,
  limit_exceeded: 413,
  sandbox_stopped: 502,
  unsupported: 501,
  unauthenticated: 401,
  timeout: 500,
  tier_unavailable: 500,
  port_closed: 502,
  unenforced_limits: 400,
  internal: 500,
};

/** A thrown value as envd's plain-HTTP error response (`/files`). */
export function envdHttpErrorResponse(e: unknown): Response {
  let status = 500;
  if (e instanceof KilnError) {
    const diskFull = e instanceof LimitExceededError && e.limit === "diskBytes";
    status = diskFull ? 507 : ENVD_HTTP_STATUS[e.code];
  }
  return errorResponse(status, messageOf(e));
}

/** The response envd's proxy gives for a sandbox that is not running (the SDK: `TimeoutError`, `isRunning() === false`). */
export function sandboxGoneResponse(id: string): Response {
  return errorResponse(502, `sandbox ${id} is not running or does not exist`);
}

/** envd's Connect code for each Kiln error code. */
const CONNECT_CODE: Readonly<Record<ErrorCode, Code>> = {
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
  port_closed: Code.Unavailable,
  unenforced_limits: Code.FailedPrecondition,
  internal: Code.Internal,
};

/** A thrown value as the `ConnectError` an envd RPC fails with. */
export function toConnectError(e: unknown): ConnectError {
  if (e instanceof ConnectError) return e;
  if (!(e instanceof KilnError))
    return new ConnectError(messageOf(e), Code.Internal, undefined, undefined, e);
  const code = CONNECT_CODE[e.code];
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
