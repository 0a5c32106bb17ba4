/**
 * One router by Host for everything `kiln serve` answers on a sandbox's
 * behalf, in front of Kiln's own app:
 *
 * - `49983-{sandboxId}.{domain}`: E2B's envd for that sandbox (the E2B handler);
 * - `{port}-{sandboxId}.{domain}`: the server listening on `port` inside the
 *   sandbox (the port proxy, proxy.ts), every path, HTTP and WebSocket;
 * - `/v1/sandboxes/{id}/ports/{port}/proxy/...` on any host: the same port,
 *   for setups without wildcard DNS (served under the API's origin, so
 *   responses lose `Set-Cookie` and get a CSP sandbox; see docs/network.md).
 *
 * Everything else goes to the fallback (Kiln's API, MCP, E2B REST and the
 * dashboard). A Host-routed request never reaches the fallback: a sandbox's
 * origin serves only the sandbox.
 */
import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { ENVD_PORT } from "../../e2b/auth.ts";
import { NotFoundError, parseSandboxHost } from "../../index.ts";
import type { ServerState } from "../context.ts";
import { PortProxy, type PortRoute, rejectUpgrade } from "./proxy.ts";

export { PATH_FORM_CSP, PORT_TOKEN_HEADER, PORT_TOKEN_PARAM } from "./proxy.ts";

/** The path form: `/v1/sandboxes/{id}/ports/{port}/proxy` and what follows. */
const PATH_FORM = /^\/v1\/sandboxes\/([A-Za-z0-9_]{1,64})\/ports\/([0-9]{1,5})\/proxy(\/[^?]*)?(\?.*)?$/;

/** Options of {@link createHostRouter}. */
export interface HostRouterOptions {
  state: ServerState;
  /** The domain sandboxes are served under (`kiln serve --domain`); undefined: any domain. */
  domain?: string;
  /** E2B's envd, for `49983-{id}.{domain}`. */
  envd: RequestListener;
  /** Everything that is not a sandbox's. */
  fallback: RequestListener;
}

/** A server's router: a request listener and an upgrade handler. */
export interface HostRouter {
  /** The node:http request listener. */
  request: RequestListener;
  /** Handles an upgrade it routes and answers true; false leaves it to others (the terminal). */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean;
  /** Ends the WebSockets and other upgraded connections it carries (at shutdown). */
  close(): void;
  /** Where a request goes: a port route, `envd`, or undefined (the fallback). */
  route(req: IncomingMessage): PortRoute | "envd" | undefined;
}

/** Builds the router. */
export function createHostRouter(options: HostRouterOptions): HostRouter {
  const proxy = new PortProxy(options.state);
  const route = (req: IncomingMessage): PortRoute | "envd" | undefined => {
    const url = req.url ?? "/";
    const named = parseSandboxHost(req.headers.host, options.domain);
    if (named) {
      if (named.port === ENVD_PORT) return "envd";
      return {
        sandboxId: named.sandboxId,
        port: named.port,
        form: "host",
        path: url.startsWith("/") ? url : `/${url}`,
      };
    }
    const m = PATH_FORM.exec(url);
    if (!m) return undefined;
    return { sandboxId: m[1]!, port: Number(m[2]), form: "path", path: (m[3] ?? "/") + (m[4] ?? "") };
  };
  return {
    route,
    close: () => proxy.closeAll(),
    request(req: IncomingMessage, res: ServerResponse) {
      const r = route(req);
      if (r === undefined) return options.fallback(req, res);
      if (r === "envd") return options.envd(req, res);
      proxy.web(req, res, r);
    },
    upgrade(req, socket, head) {
      const r = route(req);
      if (r === undefined) return false;
      if (r === "envd") rejectUpgrade(socket, new NotFoundError("envd serves no WebSocket"));
      else proxy.upgrade(req, socket, head, r);
      return true;
    },
  };
}
