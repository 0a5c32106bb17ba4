/**
 * `createMcpHttpHandler`: the Kiln MCP server over Streamable HTTP, as a
 * Web-standard `(Request) => Promise<Response>` (mount it at `/mcp` in Hono
 * with `app.all("/mcp", (c) => handler(c.req.raw))`, or serve it from any
 * runtime with `fetch`-style handlers).
 *
 * Stateless: every POST gets a fresh MCP server and transport (the SDK's
 * `WebStandardStreamableHTTPServerTransport`, JSON responses, no session id),
 * so any instance can serve any request. Sandboxes, and `run_code` contexts
 * inside them, live in the shared `Kiln`, not in the session. GET (a
 * server-to-client event stream) and DELETE (end a session) have nothing to
 * serve without sessions and answer 405, which MCP clients accept.
 *
 * Authentication is the mounting server's job; it says whose request this is
 * through `owner`.
 */
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import type { Kiln } from "../core/kiln.ts";
import { createKilnMcpServer } from "./server.ts";
import type { KilnMcpDefaults } from "./tools/context.ts";

/** Options of {@link createMcpHttpHandler}. */
export interface McpHttpHandlerOptions {
  /** The Kiln whose sandboxes the tools use; the caller opens and closes it. */
  kiln: Kiln;
  /**
   * The owner the tools are scoped to (see `createKilnMcpServer`): a fixed
   * string, or a function of the request (e.g. the API key's id). Undefined:
   * unscoped, every sandbox is visible.
   */
  owner?: string | ((req: Request) => string | undefined | Promise<string | undefined>) | undefined;
  /** Defaults for sandbox creation and caps on what a tool returns. */
  defaults?: KilnMcpDefaults | undefined;
}

/** A Web-standard request handler. */
export type McpHttpHandler = (req: Request) => Promise<Response>;

function methodNotAllowed(): Response {
  const body = { jsonrpc: "2.0", error: { code: -32000, message: "Method not allowed." }, id: null };
  return new Response(JSON.stringify(body), {
    status: 405,
    headers: { Allow: "POST", "Content-Type": "application/json" },
  });
}

/** Creates the Streamable HTTP handler of the Kiln MCP server (stateless, JSON responses). */
export function createMcpHttpHandler(options: McpHttpHandlerOptions): McpHttpHandler {
  return async (req) => {
    if (req.method !== "POST") return methodNotAllowed();
    const owner = typeof options.owner === "function" ? await options.owner(req) : options.owner;
    const server = createKilnMcpServer({ kiln: options.kiln, owner, defaults: options.defaults });
    const transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      enableJsonResponse: true,
    });
    await server.connect(transport);
    try {
      return await transport.handleRequest(req);
    } finally {
      await server.close().catch(() => {});
    }
  };
}
