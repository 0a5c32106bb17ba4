/**
 * The port proxy: one HTTP request or WebSocket upgrade, already routed to a
 * sandbox and a port (index.ts), is checked against the sandbox's port policy
 * and the caller's credentials, stripped of Kiln's credentials, and passed to
 * a server inside the sandbox over a connection from `sandbox.ports.connect`
 * (http-proxy-3 does the HTTP: hop-by-hop headers, streaming both ways,
 * upgrades).
 *
 * Access, in order: a public port (the policy's `public`) needs nothing; else
 * the owner's API key (`Authorization: Bearer`, `X-API-Key`) or a per-port
 * token (`X-Kiln-Port-Token`, or `kiln_token` in the query for browsers and
 * WebSockets) from the token service, bound to the sandbox, the port and an
 * expiry. No credential: 401 `unauthenticated`. A credential that is not good
 * for this sandbox and port (another key, another port's token, an expired
 * or revoked one, no such sandbox): 404 `not_found`, the same as an unknown
 * sandbox, so a caller learns nothing about sandboxes that are not its own.
 */
import { Agent, type IncomingMessage, type ServerResponse, STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import { createProxyServer } from "http-proxy-3";
import { KilnError, NotFoundError, portAccess, UnauthenticatedError } from "../../index.ts";
import { recordOrUndefined } from "../../tokens/index.ts";
import { presentedKey } from "../auth.ts";
import type { ServerState } from "../context.ts";
import { errorBody, HTTP_STATUS, toKilnError } from "../errors.ts";
import { OWNER_LABEL } from "../ownership.ts";

/** The header that carries a per-port token. */
export const PORT_TOKEN_HEADER = "x-kiln-port-token";
/** The query parameter that carries a per-port token (browsers, WebSockets). */
export const PORT_TOKEN_PARAM = "kiln_token";
/**
 * What a page served by the path form runs under: the CSP `sandbox` directive without
 * `allow-same-origin` gives it an opaque origin, so its scripts cannot read the API's or the
 * dashboard's storage or cookies although the URL shares their origin.
 */
export const PATH_FORM_CSP = "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads";

/** Which form routed the request: by Host (its own origin) or by path (under the API's origin). */
export type RouteForm = "host" | "path";

/** A request routed to a sandbox's port. */
export interface PortRoute {
  sandboxId: string;
  port: number;
  form: RouteForm;
  /** The path and query to send to the sandbox's server. */
  path: string;
}

/** Credential headers of Kiln that never reach a sandbox. */
const STRIPPED_HEADERS = ["authorization", "x-api-key", PORT_TOKEN_HEADER, "e2b-traffic-access-token"];

const FORM = Symbol("kiln.route-form");

/**
 * Checks the caller may reach `route`; returns what let it in (`public`, `owner key`, `port token`).
 * @throws UnauthenticatedError (no credential), NotFoundError (anything else refused)
 */
function authorize(state: ServerState, req: IncomingMessage, route: PortRoute): string {
  const info = recordOrUndefined(state.kiln, route.sandboxId);
  const access = info && info.state !== "killed" ? portAccess(info.ports, route.port) : "closed";
  if (access === "public") return "public";
  const headers = new Headers();
  for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers.set(k, v);
  const key = presentedKey(headers);
  const token = headers.get(PORT_TOKEN_HEADER) ?? tokenParam(route.path);
  if (!key && !token) {
    throw new UnauthenticatedError(
      "this port needs the sandbox owner's API key or a per-port token (X-Kiln-Port-Token or ?kiln_token=)",
    );
  }
  const refused = new NotFoundError(`no port ${route.port} on sandbox ${route.sandboxId}`, {
    resource: "port",
  });
  if (!info) throw refused;
  let rule: string | undefined;
  if (key) {
    const k = state.keys.verify(key);
    if (k !== undefined && k.id === info.metadata[OWNER_LABEL]) rule = "owner key";
  }
  if (!rule && token) {
    try {
      state.tokens.check(token, route.sandboxId, `port:${route.port}`);
      rule = "port token";
    } catch {
      rule = undefined;
    }
  }
  if (!rule || access === "closed") throw refused;
  return rule;
}

function tokenParam(path: string): string | null {
  const q = path.indexOf("?");
  return q < 0 ? null : new URLSearchParams(path.slice(q + 1)).get(PORT_TOKEN_PARAM);
}

/** The request's headers and URL as the sandbox's server gets them: Kiln's credentials removed. */
function strip(req: IncomingMessage, route: PortRoute): void {
  for (const h of STRIPPED_HEADERS) delete req.headers[h];
  const cookie = req.headers.cookie;
  if (cookie !== undefined) {
    // Kiln's own cookies (every name starting with `kiln`) stay on this side.
    const kept = cookie
      .split(";")
      .map((c) => c.trim())
      .filter((c) => c !== "" && !/^kiln/i.test(c));
    if (kept.length > 0) req.headers.cookie = kept.join("; ");
    else delete req.headers.cookie;
  }
  let path = route.path;
  const q = path.indexOf("?");
  if (q >= 0) {
    const params = new URLSearchParams(path.slice(q + 1));
    if (params.has(PORT_TOKEN_PARAM)) {
      params.delete(PORT_TOKEN_PARAM);
      const rest = params.toString();
      path = path.slice(0, q) + (rest ? `?${rest}` : "");
    }
  }
  req.url = path;
}

/** Makes a tunnelled connection look enough like a socket for node:http's client. */
function socketLike(conn: Duplex): Duplex {
  const s = conn as Duplex & Record<string, unknown>;
  for (const m of ["setTimeout", "setNoDelay", "setKeepAlive", "ref", "unref"]) {
    if (typeof s[m] !== "function") s[m] = () => s;
  }
  return s;
}

/** An http.Agent that hands out one connection that is already open. */
class TunnelAgent extends Agent {
  private readonly conn: Duplex;
  constructor(conn: Duplex) {
    super({ keepAlive: false, maxSockets: 1 });
    this.conn = conn;
  }
  override createConnection(): Duplex {
    return this.conn;
  }
}

/** The JSON error body every Kiln endpoint answers with. */
function errorJson(e: KilnError): string {
  return JSON.stringify(errorBody(e));
}

/** The port proxy of one server. */
export class PortProxy {
  private readonly state: ServerState;
  private readonly proxy = createProxyServer({ xfwd: true, ws: true });
  /** Client sockets of upgraded connections (WebSockets): node:http no longer tracks them. */
  private readonly upgraded = new Set<Duplex>();

  constructor(state: ServerState) {
    this.state = state;
    this.proxy.on("proxyRes", (proxyRes, req) => {
      if ((req as unknown as Record<symbol, unknown>)[FORM] !== "path") return;
      // Under the API's origin: no cookie may be set there, and pages get an opaque origin.
      delete proxyRes.headers["set-cookie"];
      proxyRes.headers["content-security-policy"] = PATH_FORM_CSP;
    });
  }

  /** Opens the connection to the sandbox's port once the caller is allowed. */
  private async open(req: IncomingMessage, route: PortRoute): Promise<Duplex> {
    if (this.state.draining) throw new KilnError("tier_unavailable", "the server is shutting down");
    const rule = authorize(this.state, req, route);
    strip(req, route);
    (req as unknown as Record<symbol, unknown>)[FORM] = route.form;
    const sb = await this.state.kiln.connect(route.sandboxId);
    const label = { rule, path: req.url ?? "/", ...(req.method ? { method: req.method } : {}) };
    return socketLike(await sb.ports.connect(route.port, label));
  }

  /** Ends every upgraded connection (the server is shutting down). */
  closeAll(): void {
    for (const s of this.upgraded) s.destroy();
    this.upgraded.clear();
  }

  /** Serves an HTTP request routed to a port. */
  web(req: IncomingMessage, res: ServerResponse, route: PortRoute): void {
    this.open(req, route).then(
      (conn) => {
        // The client left while the connection was being opened.
        if (res.destroyed || req.socket.destroyed) return void conn.destroy();
        this.proxy.web(req, res, { target: "http://sandbox", agent: new TunnelAgent(conn) }, (err) => {
          conn.destroy();
          if (!res.headersSent) {
            const e = new KilnError("port_closed", `the server on port ${route.port} failed: ${err.message}`);
            res.writeHead(HTTP_STATUS[e.code], { "content-type": "application/json" }).end(errorJson(e));
          } else res.destroy();
        });
        res.once("close", () => {
          if (!res.writableFinished) conn.destroy();
        });
      },
      (err: unknown) => {
        const e = toKilnError(err);
        res.writeHead(HTTP_STATUS[e.code], {
          "content-type": "application/json",
          ...(e.code === "unauthenticated" ? { "www-authenticate": 'Bearer realm="kiln"' } : {}),
        });
        res.end(errorJson(e));
      },
    );
  }

  /** Serves a WebSocket (or other) upgrade routed to a port. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, route: PortRoute): void {
    socket.on("error", () => {});
    this.upgraded.add(socket);
    socket.once("close", () => this.upgraded.delete(socket));
    this.open(req, route).then(
      (conn) => {
        if (socket.destroyed) return void conn.destroy();
        socket.once("close", () => conn.destroy());
        this.proxy.ws(req, socket, head, { target: "http://sandbox", agent: new TunnelAgent(conn) }, () => {
          conn.destroy();
          socket.destroy();
        });
      },
      (err: unknown) => rejectUpgrade(socket, toKilnError(err)),
    );
  }
}

/** Refuses an upgrade with the error's status and body. */
export function rejectUpgrade(socket: Duplex, e: KilnError): void {
  const body = errorJson(e);
  const status = HTTP_STATUS[e.code];
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? "Error"}\r\n` +
      `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}
