/**
 * The server's one error shape and the one place where Kiln's stable error
 * codes become HTTP statuses. Every route throws KilnErrors; `onError` turns
 * them into `{ error: { code, message, ...details } }` with the status below.
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import {
  type ErrorCode,
  InvalidArgumentError,
  KilnError,
  NotFoundError,
  UnauthenticatedError,
} from "../core/errors.ts";

export { UnauthenticatedError };

/** The server's error codes: Kiln's own (an alias kept for the server's exports). */
export type ServerErrorCode = ErrorCode;

/**
 * HTTP status of every error code. `limit_exceeded` is 429 for every limit and
 * quota (a sandbox limit or a per-key quota: retrying with less, or later, can
 * succeed); `timeout` is 504 (the server did not finish the work in time);
 * `aborted` is 499 (the client closed the request); `unenforced_limits` is 422 (the same request
 * with `allowUnenforcedLimits` succeeds).
 */
export const HTTP_STATUS: Readonly<Record<ServerErrorCode, number>> = Object.freeze({
  invalid_argument: 400,
  unauthenticated: 401,
  not_found: 404,
  conflict: 409,
  sandbox_stopped: 410,
  port_closed: 502,
  unenforced_limits: 422,
  limit_exceeded: 429,
  aborted: 499,
  internal: 500,
  unsupported: 501,
  tier_unavailable: 503,
  timeout: 504,
});

/** A per-key quota was reached (`limit_exceeded`, naming the quota in `limit`). */
export class QuotaExceededError extends KilnError {
  /** The quota: `maxSandboxes` or `maxMemoryBytes`. */
  readonly limit: "maxSandboxes" | "maxMemoryBytes";
  /** The quota's value. */
  readonly value: number;
  constructor(limit: "maxSandboxes" | "maxMemoryBytes", value: number, message: string) {
    super("limit_exceeded", message);
    this.name = "QuotaExceededError";
    this.limit = limit;
    this.value = value;
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), limit: this.limit, value: this.value, quota: true };
  }
}

/**
 * A request body over the server's limit (`limit_exceeded`, `limit` =
 * `maxBodyBytes`): the one error answered with 413 rather than 429, since
 * sending the same body again can never succeed.
 */
export class BodyTooLargeError extends KilnError {
  readonly limit = "maxBodyBytes";
  /** The limit, in bytes. */
  readonly value: number;
  constructor(maxBytes: number, message = `the request body is over ${maxBytes} bytes`) {
    super("limit_exceeded", message);
    this.name = "BodyTooLargeError";
    this.value = maxBytes;
  }
  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), limit: this.limit, value: this.value };
  }
}

/** The JSON error body: `{ error: { code, message, ...details } }`. */
export interface ErrorBody {
  error: { code: ServerErrorCode; message: string; [detail: string]: unknown };
}

/** Converts anything thrown into a KilnError (HTTP exceptions from validation become `invalid_argument`). */
export function toKilnError(e: unknown): KilnError {
  if (e instanceof KilnError) return e;
  if (e instanceof HTTPException) {
    if (e.status === 401) return new UnauthenticatedError(e.message);
    if (e.status === 404) return new NotFoundError(e.message || "not found");
    if (e.status < 500) return new InvalidArgumentError(e.message || "bad request", { cause: e });
  }
  if (e instanceof SyntaxError) return new InvalidArgumentError(`malformed JSON: ${e.message}`);
  return new KilnError("internal", e instanceof Error ? e.message : String(e), { cause: e });
}

/** The body of an error, as every endpoint and every stream's `exit` event carries it. */
export function errorBody(e: unknown): ErrorBody {
  const k = toKilnError(e);
  const json = k.toJSON() as ErrorBody["error"];
  if (k.result) json.result = k.result;
  return { error: json };
}

/** The HTTP status of an error. */
export function httpStatus(e: unknown): number {
  if (e instanceof BodyTooLargeError) return 413;
  return HTTP_STATUS[toKilnError(e).code as ServerErrorCode] ?? 500;
}

/** Hono's `onError`: the one error response. */
export function onError(e: unknown, c: Context): Response {
  const status = httpStatus(e);
  if (status === 500 && process.env.KILN_DEBUG) console.error(e);
  // A failed upload may leave the request body unread; the connection cannot carry another
  // request after it, so say so (clients would otherwise reuse it and see "other side closed").
  if (c.req.raw.body || c.req.method === "PUT" || c.req.method === "POST") c.header("Connection", "close");
  return c.json(errorBody(e), status as 500);
}

/** A zod validation failure as `invalid_argument`, naming the first bad field. */
export function invalidArgumentFromZod(error: {
  issues: { path: PropertyKey[]; message: string }[];
}): InvalidArgumentError {
  const first = error.issues[0];
  const where = first?.path.length ? first.path.map(String).join(".") : "request";
  return new InvalidArgumentError(`${where}: ${first?.message ?? "invalid"}`, { cause: error });
}
