/**
 * The request body limit of every endpoint of `kiln serve` (hono's
 * `bodyLimit`): a body over it is refused with 413 `limit_exceeded` (limit
 * `maxBodyBytes`) as soon as its Content-Length says so, or once that many
 * bytes of a chunked body have arrived; nothing more is read. Uploads (a
 * file's bytes, a tar) are not JSON: they stream into the sandbox and stop at
 * the sandbox's `maxFileBytes` instead (routes/files.ts).
 */
import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { AppEnv } from "./context.ts";
import { BodyTooLargeError } from "./errors.ts";

/** The default body limit: 1 MiB. */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

/** Streamed uploads, limited by the sandbox's `maxFileBytes` rather than the body limit. */
const UPLOADS: [string, RegExp][] = [
  ["PUT", /^\/v1\/sandboxes\/[^/]+\/files$/],
  ["POST", /^\/v1\/sandboxes\/[^/]+\/files\/tar$/],
];

/** Middleware: the body limit on every request but the streamed uploads. */
export function limitBodies(maxBytes: number): MiddlewareHandler<AppEnv> {
  const limit = bodyLimit({
    maxSize: maxBytes,
    onError: () => {
      throw new BodyTooLargeError(maxBytes);
    },
  });
  return async (c, next) => {
    if (UPLOADS.some(([m, re]) => c.req.method === m && re.test(c.req.path))) return next();
    return limit(c, next);
  };
}
