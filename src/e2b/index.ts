/**
 * Kiln's E2B-compatible API: the official, unmodified `e2b` SDK (and
 * frameworks built on it) drives Kiln sandboxes. See docs/e2b.md.
 *
 * ```ts
 * import { serveE2b } from "kiln/src/e2b/index.ts";
 * const srv = await serveE2b({ kiln, authenticate: async (key) => (key === "k" ? { owner: "me" } : undefined) });
 * // E2B_API_URL=srv.url E2B_SANDBOX_URL=srv.url E2B_API_KEY=k
 * ```
 */
export type { Authenticate } from "./context.ts";
export { createE2bHandler, type E2bHandler, type E2bHandlerOptions, KILN_ENVD_VERSION } from "./handler.ts";
export { E2B_DEFAULT_TEMPLATE, TIER_KEY } from "./mapping.ts";
export { type E2bServer, e2bNodeListener, type ServeE2bOptions, serveE2b } from "./serve.ts";
