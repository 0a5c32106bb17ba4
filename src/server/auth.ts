/**
 * Authentication: every request under /v1 (except the OpenAPI document)
 * carries an API key, as `Authorization: Bearer <key>` or `X-API-Key: <key>`.
 * No key, an unknown key and a revoked key are all `unauthenticated` (401).
 */
import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "./context.ts";
import { UnauthenticatedError } from "./errors.ts";

/** The key a request presents, if any. */
export function presentedKey(headers: Headers): string | undefined {
  const auth = headers.get("authorization");
  if (auth) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    return m?.[1];
  }
  return headers.get("x-api-key")?.trim() || undefined;
}

/** Middleware: sets `key` or throws UnauthenticatedError (`unauthenticated`). */
export const authenticate: MiddlewareHandler<AppEnv> = async (c, next) => {
  const presented = presentedKey(c.req.raw.headers);
  if (!presented) throw new UnauthenticatedError();
  const key = c.var.state.keys.verify(presented);
  if (!key) throw new UnauthenticatedError("the API key is unknown or revoked");
  c.set("key", key);
  await next();
};
