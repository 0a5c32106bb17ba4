/**
 * Credentials of the E2B surface.
 *
 * - REST calls carry the API key in `X-API-KEY` (the SDK's `apiKey` /
 *   `E2B_API_KEY`); `Authorization: Bearer <key>` is accepted too. The
 *   mounting server's `authenticate` turns it into an owner.
 * - envd calls (commands, files) carry `E2b-Sandbox-Id` and `X-Access-Token`:
 *   the `envdAccessToken` that create/connect returned, or a signed URL made
 *   from it. Both are built and checked by the one token service
 *   (src/tokens/): bound to the sandbox, derived from its owner's key,
 *   and ended by revoking the key or deleting the sandbox.
 */
import { parseSandboxHost } from "../index.ts";

/** The envd port the SDK puts in hostnames and in `E2b-Sandbox-Port`. */
export const ENVD_PORT = 49983;

/** The API key of a REST request, or undefined. */
export function apiKeyOf(req: Request): string | undefined {
  const key = req.headers.get("x-api-key");
  if (key) return key;
  const auth = req.headers.get("authorization");
  const m = auth ? /^Bearer\s+(.+)$/i.exec(auth) : null;
  return m?.[1];
}

/**
 * The sandbox an envd request is for, or undefined for a REST request:
 * the `E2b-Sandbox-Id` header (the SDK sends it on every envd call), else a
 * host of the form `49983-<sandboxId>.<domain>` (the SDK's host when pointed
 * at a wildcard domain with `E2B_DOMAIN`).
 */
export function envdSandboxIdOf(req: Request): string | undefined {
  const id = req.headers.get("e2b-sandbox-id");
  if (id) return id;
  const named = parseSandboxHost(req.headers.get("host") ?? new URL(req.url).host);
  return named?.port === ENVD_PORT || named?.port === CODE_INTERPRETER_PORT ? named.sandboxId : undefined;
}

/** The code-interpreter port (`@e2b/code-interpreter`'s Jupyter port). */
export const CODE_INTERPRETER_PORT = 49999;

/**
 * The sandbox port a sandbox request names: `E2b-Sandbox-Port`, else the
 * `<port>-` prefix of the host; default envd's.
 */
export function sandboxPortOf(req: Request): number {
  const header = req.headers.get("e2b-sandbox-port");
  if (header && /^\d{1,5}$/.test(header)) return Number(header);
  return parseSandboxHost(req.headers.get("host") ?? new URL(req.url).host)?.port ?? ENVD_PORT;
}
