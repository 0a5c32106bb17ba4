/**
 * The other protocols `kiln serve` speaks on the same port, each scoped to
 * the caller's API key exactly like the REST API (`kiln.owner` = key id):
 *  - MCP over streamable HTTP at `/mcp` (docs/mcp.md);
 *  - the E2B API (REST and envd) for the unmodified `e2b` SDK (docs/e2b.md): the
 *    SDK calls absolute paths (`/sandboxes`, `/v2/sandboxes`, `/files`, Connect
 *    services), so requests are dispatched before Kiln's own app sees them.
 * Both are middleware or dispatch, not app routes: the OpenAPI document
 * describes Kiln's own `/v1` API only.
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import { envdSandboxIdOf } from "../e2b/auth.ts";
import { signedUrlOf } from "../e2b/envd/router.ts";
import { createE2bHandler } from "../e2b/index.ts";
import { createMcpHttpHandler } from "../mcp/index.ts";
import { authenticate } from "./auth.ts";
import type { AppEnv, ServerState } from "./context.ts";

/** Mounts MCP (streamable HTTP) at `/mcp`, authenticated with an API key. */
export function mountMcp(app: OpenAPIHono<AppEnv>, state: ServerState): void {
  app.use("/mcp", authenticate, async (c) => {
    const handler = createMcpHttpHandler({ kiln: state.kiln, owner: c.var.key.id });
    return handler(c.req.raw);
  });
}

/** Paths of the E2B REST API (the SDK's control plane). */
const E2B_REST = /^\/(v[23]\/)?(sandboxes|snapshots|templates|volumes|volumecontent|secrets)(\/|$)/;

/** True when a request is the E2B SDK's: envd calls name their sandbox in a header or the host. */
export function isE2bRequest(req: Request): boolean {
  if (envdSandboxIdOf(req) !== undefined || signedUrlOf(req) !== undefined) return true;
  return E2B_REST.test(new URL(req.url).pathname);
}

/** The server's fetch: E2B requests to the E2B handler, everything else to Kiln's app. */
export function withE2b(
  appFetch: (req: Request) => Response | Promise<Response>,
  state: ServerState,
): (req: Request) => Response | Promise<Response> {
  const e2b = createE2bHandler({
    kiln: state.kiln,
    tokens: state.tokens,
    maxBodyBytes: state.maxBodyBytes,
    defaultTier: state.e2bTier,
    defaultEgress: state.e2bEgress,
    ...(state.domain ? { sandboxDomain: state.domain } : {}),
    authenticate: async (apiKey) => {
      const key = state.keys.verify(apiKey);
      return key ? { owner: key.id } : undefined;
    },
  });
  return (req) => (isE2bRequest(req) ? e2b(req) : appFetch(req));
}
