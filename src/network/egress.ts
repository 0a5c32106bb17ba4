/**
 * The egress path of one sandbox: every byte a sandbox sends out passes
 * here, on the host, and is checked against its policy first.
 *
 * Four ways in, all over sockets the tier hands over:
 *  - `proxy`: an HTTP forward proxy (absolute-form requests and CONNECT), for
 *    programs that honour `HTTP(S)_PROXY`;
 *  - `http`: an intercepted plain-HTTP connection; every request's Host is
 *    checked, not only the first of a kept-alive connection;
 *  - `tls`: an intercepted TLS connection; the name is the SNI of the
 *    ClientHello (read by read-tls-client-hello, then replayed upstream), and
 *    TLS without SNI is refused;
 *  - `tcp`: an intercepted connection to a name and port that a rule allows.
 *
 * A name is resolved once; each address is checked (blocked ranges, rules)
 * and the first allowed one is the one dialled, so that no second lookup can
 * rebind it. A denied HTTP request gets a 403 whose body names the rule; a
 * denied connection is reset at once. Every request and connection is
 * recorded (time, host, address, port, method and path where visible, bytes
 * each way, the verdict and its rule) through `audit`.
 */
import http from "node:http";
import type { Socket } from "node:net";
import type { Duplex, Readable, Writable } from "node:stream";
import tls from "node:tls";
import { readTlsClientHello } from "read-tls-client-hello";
import type { NetworkAuditEntry } from "../core/types.ts";
import { type Address, parseAddress } from "./address.ts";
import type { SandboxCa } from "./ca.ts";
import type { Decision, NetworkPolicy } from "./policy.ts";
import type { Resolver } from "./resolver.ts";
import { trustedRoots } from "./roots.ts";
import { canonicalName } from "./rules.ts";
import {
  applyHeaderRule,
  type HeaderRule,
  headerRuleFor,
  injectSecrets,
  placeholderIn,
  ScrubStream,
  type Secret,
  scrubbable,
  scrubHeaders,
  secretAllows,
} from "./secrets.ts";
import { Throttle, TokenBucket } from "./throttle.ts";
import { UpstreamPool } from "./upstream-pool.ts";
import { openUpstream, type UpstreamProxy, UpstreamProxyError } from "./upstream-proxy.ts";

/** What the egress path of one sandbox is given. */
export interface EgressOptions {
  /** The sandbox's policy. */
  policy: NetworkPolicy;
  /** Name resolution. */
  resolver: Resolver;
  /** Receives one entry per request, connection or refusal. */
  audit(entry: Omit<NetworkAuditEntry, "id">): void;
  /** Open connections at once, from the sandbox; more are reset. Default 256; the policy's `limits` may lower it. */
  maxConnections?: number;
  /** Bytes per second each way over all the sandbox's connections; default none; the policy's `limits` may lower it. */
  maxBytesPerSecond?: number;
  /** Time for a request's headers or a ClientHello to arrive, ms; default 30,000. */
  helloTimeoutMs?: number;
  /** A tunnel or connection idle this long is closed, ms; default 600,000. */
  idleTimeoutMs?: number;
  /** Largest request head, bytes; default 16 KiB (larger: 431). */
  maxHeaderBytes?: number;
  /** Secrets put into requests to their hosts (see secrets.ts); default none. */
  secrets?: Secret[];
  /** The sandbox's CA: TLS to a host some secret may go to is terminated with a certificate from it. */
  ca?: SandboxCa;
  /** Header rules (see secrets.ts): TLS to their hosts is terminated too. Default none. */
  headerRules?: HeaderRule[];
  /** The proxy every upstream connection goes through, failing closed (see upstream-proxy.ts); default none: direct. */
  upstreamProxy?: UpstreamProxy;
  /** Time to connect upstream (through the proxy, if any), ms; default 30,000. */
  connectTimeoutMs?: number;
}

/** Where an intercepted connection was going. */
export interface Original {
  /** The host name it was for, when known (from Kiln's own DNS answer). */
  name?: string;
  /** The address it was for, when it was a real one. */
  address?: Address;
  /** Destination port. */
  port: number;
}

/** A checked destination: the verdict, the name, and the one address to dial. */
export interface Verdict extends Decision {
  name?: string;
  address?: Address;
}

type Context =
  | { mode: "proxy" }
  | { mode: "http"; original: Original }
  /** TLS terminated here for `name` (a secret's host): requests are seen, and must be for `name`. */
  | { mode: "tls"; name: string; port: number };

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authorization",
  "proxy-authenticate",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

function forwardHeaders(raw: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2)
    if (!HOP_BY_HOP.has(raw[i]!.toLowerCase())) out.push(raw[i]!, raw[i + 1]!);
  return out;
}

/** Host and port of `host[:port]` or `[v6][:port]`; undefined when malformed. */
export function splitAuthority(
  text: string,
  defaultPort?: number,
): { host: string; port: number } | undefined {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+))(?::([0-9]{1,5}))?$/.exec(text.trim());
  if (!m) return undefined;
  const port = m[3] === undefined ? defaultPort : Number(m[3]);
  if (port === undefined || !(port >= 1 && port <= 65535)) return undefined;
  return { host: (m[1] ?? m[2])!, port };
}

/** The egress path of one sandbox. */
export class Egress {
  private readonly o: Required<Omit<EgressOptions, "ca" | "upstreamProxy" | "maxBytesPerSecond">> & {
    ca?: SandboxCa;
    upstreamProxy?: UpstreamProxy;
    maxBytesPerSecond?: number;
  };
  private buckets: { rate: number; up: TokenBucket; down: TokenBucket } | undefined;
  private readonly server: http.Server;
  private readonly sockets = new Set<Socket>();
  private readonly contexts = new WeakMap<Socket, Context>();
  /** Kept-alive upstream connections of proxied plain HTTP. */
  private readonly pool = new UpstreamPool((address, port) => this.connectUpstream(address, port));
  private closed = false;

  constructor(options: EgressOptions) {
    this.o = {
      maxConnections: 256,
      helloTimeoutMs: 30_000,
      connectTimeoutMs: 30_000,
      idleTimeoutMs: 600_000,
      maxHeaderBytes: 16 * 1024,
      secrets: [],
      headerRules: [],
      ...options,
      // The log may be closed under a connection that ends after its sandbox: that entry is lost, nothing else.
      audit: (e) => {
        try {
          options.audit(e);
        } catch {}
      },
    };
    this.server = http.createServer({
      maxHeaderSize: this.o.maxHeaderBytes,
      headersTimeout: this.o.helloTimeoutMs,
      requestTimeout: 0,
      keepAliveTimeout: 30_000,
    });
    this.server.on("request", (req, res) => {
      this.onRequest(req, res).catch(() => res.destroy());
    });
    this.server.on("connect", (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
      this.onConnect(req, socket, head).catch(() => socket.destroy());
    });
    this.server.on("clientError", (err: NodeJS.ErrnoException, socket: Socket) => {
      const status =
        err.code === "HPE_HEADER_OVERFLOW" ? "431 Request Header Fields Too Large" : "400 Bad Request";
      if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      else socket.destroy();
    });
  }

  /** The policy every new connection and request is checked against. */
  get policy(): NetworkPolicy {
    return this.o.policy;
  }

  /**
   * Replaces the policy: every connection, request, tunnel SNI and redirect
   * hop checked from now on sees the new one; connections already let
   * through stay open.
   */
  set policy(policy: NetworkPolicy) {
    this.o.policy = policy;
  }

  /** Replaces the secrets, for requests from now on. */
  set secrets(secrets: Secret[]) {
    this.o.secrets = secrets;
  }

  /** Replaces the header rules, for requests from now on. */
  set headerRules(rules: HeaderRule[]) {
    this.o.headerRules = rules;
  }

  /** Open connections allowed at once: the server's cap, or the policy's when lower. */
  get maxConnections(): number {
    return Math.min(this.o.maxConnections, this.o.policy.settings.limits?.maxConnections ?? Infinity);
  }

  /**
   * A stream that passes bytes at the sandbox's rate in `direction` (`up`: out of the
   * sandbox), shared by all its connections; passes them at once without a cap.
   */
  throttle(direction: "up" | "down"): Throttle {
    return new Throttle(this.bucket(direction));
  }

  /** The sandbox's bucket in `direction`, or undefined without a bandwidth cap. */
  private bucket(direction: "up" | "down"): TokenBucket | undefined {
    const rate = Math.min(
      this.o.maxBytesPerSecond ?? Infinity,
      this.o.policy.settings.limits?.maxBytesPerSecond ?? Infinity,
    );
    if (rate === Infinity) return undefined;
    if (this.buckets?.rate !== rate)
      this.buckets = { rate, up: new TokenBucket(rate), down: new TokenBucket(rate) };
    return this.buckets[direction];
  }

  /**
   * Pipes `from` into `to` at the sandbox's rate in `direction`; without a cap, directly:
   * a pass-through stream in between costs throughput (bench/egress.ts).
   */
  private relay(from: Readable, to: Writable, direction: "up" | "down"): void {
    const bucket = this.bucket(direction);
    if (bucket) from.pipe(new Throttle(bucket)).pipe(to);
    else from.pipe(to);
  }

  /** Replaces the upstream proxy (undefined: direct), for connections from now on. */
  set upstreamProxy(proxy: UpstreamProxy | undefined) {
    this.o.upstreamProxy = proxy;
    // Kept-alive connections went out the old way.
    this.pool.clear();
  }

  /**
   * A connection to the checked `address`:`port`, through the upstream proxy
   * when there is one (never direct then), else direct.
   * @throws UpstreamProxyError, or the socket's error
   */
  connectUpstream(address: string, port: number): Promise<Socket> {
    const policy = this.o.policy;
    return openUpstream(this.o.upstreamProxy, address, port, {
      resolve: (name) => this.o.resolver.resolve(name),
      allowProxy: (a, p) => policy.proxyRefusal(a, p),
      timeoutMs: this.o.connectTimeoutMs,
    });
  }

  /** A `createConnection` for http.request: the upstream connection, wrapped in TLS for `servername` when given. */
  private createConnection(address: string, port: number, servername?: string) {
    return (_: unknown, done: (err: Error | null, socket: Duplex) => void): undefined => {
      this.connectUpstream(address, port).then(
        (raw) =>
          done(
            null,
            servername
              ? tls.connect({ socket: raw, servername, ca: trustedRoots(), ALPNProtocols: ["http/1.1"] })
              : raw,
          ),
        (e: Error) => done(e, undefined as unknown as Duplex),
      );
      return undefined;
    };
  }

  /** The header rules (for in-process clients). */
  get headerRuleList(): readonly HeaderRule[] {
    return this.o.headerRules;
  }

  /** The secrets (for in-process clients such as the virtual tier's fetch). */
  get secretList(): readonly Secret[] {
    return this.o.secrets;
  }

  /** Sets the CA that intercepted TLS is served with (needed once there are secrets). */
  set ca(ca: SandboxCa) {
    this.o.ca = ca;
  }

  /** Whether TLS to `name`:`port` is terminated here: some secret may go there. */
  private intercepts(name: string | undefined, port: number): name is string {
    return (
      name !== undefined &&
      this.o.ca !== undefined &&
      (this.o.secrets.some((s) => secretAllows(s, name, port)) ||
        headerRuleFor(this.o.headerRules, name, port) !== undefined)
    );
  }

  /**
   * Terminates the sandbox's TLS for `name` with a certificate from its CA and
   * serves the requests inside; a ClientHello for another name is refused.
   */
  private terminate(socket: Socket, name: string, port: number, atMs: number): void {
    const inner = new tls.TLSSocket(socket, {
      isServer: true,
      secureContext: this.o.ca!.contextFor(name),
      ALPNProtocols: ["http/1.1"],
    });
    inner.on("error", () => socket.destroy());
    inner.once("secure", () => {
      const sni = (inner as tls.TLSSocket & { servername?: string | false }).servername;
      if (typeof sni !== "string" || canonicalName(sni) !== name) {
        this.o.audit({
          kind: "tls",
          atMs,
          host: name,
          port,
          allowed: false,
          rule: `sni ${typeof sni === "string" ? sni : "none"} is not ${name}`,
          bytesUp: 0,
          bytesDown: 0,
          durationMs: 0,
        });
        inner.destroy();
      }
    });
    this.contexts.set(inner, { mode: "tls", name, port });
    this.server.emit("connection", inner);
  }

  /** Open connections from the sandbox. */
  get connections(): number {
    return this.sockets.size;
  }

  /** Records one entry through the audit sink (for in-process clients such as the virtual tier's fetch). */
  record(entry: Omit<NetworkAuditEntry, "id">): void {
    this.o.audit(entry);
  }

  /** Serves a connection to the sandbox's HTTP proxy (`HTTP_PROXY`). */
  proxy(socket: Socket): void {
    if (!this.admit(socket, undefined)) return;
    this.contexts.set(socket, { mode: "proxy" });
    this.server.emit("connection", socket);
  }

  /** Serves an intercepted plain-HTTP connection that was going to `original`. */
  http(socket: Socket, original: Original): void {
    if (!this.admit(socket, original)) return;
    this.contexts.set(socket, { mode: "http", original });
    this.server.emit("connection", socket);
  }

  /** Serves an intercepted TLS connection that was going to `original`: the SNI names its host. */
  tls(socket: Socket, original: Original): void {
    if (!this.admit(socket, original)) return;
    const atMs = Date.now();
    socket.setTimeout(this.o.helloTimeoutMs, () => socket.destroy());
    readTlsClientHello(socket).then(
      async (hello) => {
        socket.setTimeout(0);
        const sni = hello.extensions.find((e) => e.id === 0)?.data?.serverName;
        if (typeof sni !== "string" || !sni) {
          this.refuse(socket, {
            kind: "tls",
            atMs,
            port: original.port,
            allowed: false,
            rule: "tls without sni",
          });
          return;
        }
        const v = await this.check(sni, original.port);
        if (v.allowed && v.address && this.intercepts(v.name, original.port))
          this.terminate(socket, v.name, original.port, atMs);
        else this.dial(socket, v, "tls", atMs, original.port);
      },
      () => {
        this.refuse(socket, { kind: "tls", atMs, port: original.port, allowed: false, rule: "not tls" });
      },
    );
  }

  /** Serves an intercepted connection to `original` (a name from Kiln's DNS, or an address), bytes as they are. */
  tcp(socket: Socket, original: Original): void {
    if (!this.admit(socket, original)) return;
    const atMs = Date.now();
    const host = original.name ?? original.address?.toString();
    if (!host) {
      this.refuse(socket, {
        kind: "tcp",
        atMs,
        port: original.port,
        allowed: false,
        rule: "unknown destination",
      });
      return;
    }
    this.check(host, original.port).then(
      (v) => this.dial(socket, v, "tcp", atMs, original.port),
      () => socket.destroy(),
    );
  }

  /** Closes every connection. */
  close(): void {
    this.closed = true;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    this.pool.clear();
    this.server.close();
  }

  private admit(socket: Socket, original: Original | undefined): boolean {
    socket.on("error", () => {});
    if (this.closed || this.sockets.size >= this.maxConnections) {
      this.refuse(socket, {
        kind: "tcp",
        atMs: Date.now(),
        ...(original ? { port: original.port } : {}),
        allowed: false,
        rule: this.closed ? "closed" : "limit connections",
      });
      return false;
    }
    this.sockets.add(socket);
    socket.once("close", () => this.sockets.delete(socket));
    return true;
  }

  private refuse(
    socket: Socket,
    entry: Omit<NetworkAuditEntry, "id" | "bytesUp" | "bytesDown" | "durationMs">,
  ): void {
    this.o.audit({ ...entry, bytesUp: 0, bytesDown: 0, durationMs: 0 });
    if (!socket.destroyed) socket.resetAndDestroy();
  }

  /**
   * Checks `host` (a name or an address in any spelling) on `port`: by name
   * first, so that a refused name is never resolved; then each address.
   */
  async check(host: string, port: number): Promise<Verdict> {
    // One policy for the whole check, even if it is replaced while the name resolves.
    const policy = this.o.policy;
    const address = parseAddress(host);
    if (address) return { ...policy.decide({ address, port }), address };
    const name = canonicalName(host);
    if (!name) return { allowed: false, rule: "bad host name" };
    const byName = policy.decide({ name, port });
    if (!byName.allowed && !(byName.rule === "default deny" && policy.allowsAddresses))
      return { ...byName, name };
    const addresses = await this.o.resolver.resolve(name);
    if (addresses.length === 0) return { allowed: false, rule: "no address", name };
    let first: Verdict | undefined;
    for (const a of addresses) {
      const d = policy.decide({ name, address: a, port });
      if (d.allowed) return { ...d, name, address: a };
      first ??= { ...d, name, address: a };
    }
    // Refused by name, and no address rule let it through: the name's rule is the one to report.
    return byName.allowed ? first! : { ...byName, name, address: addresses[0]! };
  }

  /** Connects an admitted socket to its checked destination, or resets it. */
  private dial(socket: Socket, v: Verdict, kind: "tls" | "tcp" | "connect", atMs: number, port: number) {
    const base = {
      kind,
      atMs,
      ...(v.name ? { host: v.name } : {}),
      ...(v.address ? { address: v.address.toString() } : {}),
      port,
      rule: v.rule,
    };
    if (!v.allowed || !v.address || socket.destroyed) {
      if (kind === "connect") {
        this.forbidden(socket, `${v.name ?? v.address?.toString() ?? "?"}:${port}`, v.rule);
        this.o.audit({ ...base, allowed: false, status: 403, bytesUp: 0, bytesDown: 0, durationMs: 0 });
      } else this.refuse(socket, { ...base, allowed: false });
      return;
    }
    let upstream: Socket | undefined;
    let up = 0;
    let down = 0;
    let connected = false;
    let failure: string | undefined;
    let sniRule: string | undefined;
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      socket.destroy();
      upstream?.destroy();
      this.o.audit({
        ...base,
        allowed: connected && !sniRule,
        ...(sniRule
          ? { rule: sniRule }
          : connected
            ? {}
            : { rule: `${v.rule}; ${failure ?? "upstream unreachable"}` }),
        ...(kind === "connect" && !connected ? { status: 502 } : {}),
        bytesUp: up,
        bytesDown: down,
        durationMs: Date.now() - atMs,
      });
    };
    socket.once("close", end);
    this.connectUpstream(v.address.toString(), port).then(
      async (u) => {
        upstream = u;
        u.on("error", () => {});
        if (ended) {
          u.destroy();
          return;
        }
        connected = true;
        u.once("close", end);
        u.on("data", (c: Buffer) => {
          down += c.length;
        });
        this.relay(u, socket, "down");
        socket.setTimeout(this.o.idleTimeoutMs, () => socket.destroy());
        if (kind === "connect") {
          socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
          const sni = await this.tunnelSni(socket, port);
          if (sni && !sni.allowed) {
            sniRule = `sni ${sni.name ?? "?"}: ${sni.rule}`;
            socket.resetAndDestroy();
            return;
          }
        }
        socket.on("data", (c: Buffer) => {
          up += c.length;
        });
        this.relay(socket, u, "up");
      },
      (e: Error) => {
        failure = e instanceof UpstreamProxyError ? e.reason : "upstream unreachable";
        if (kind === "connect" && !socket.destroyed) {
          const body = `Kiln egress: ${v.name ?? v.address?.toString()}:${port} ${failure}\n`;
          socket.end(
            `HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\nX-Kiln-Rule: ${encodeURIComponent(failure)}\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
          );
          socket.once("finish", end);
        } else {
          if (!socket.destroyed) socket.resetAndDestroy();
          end();
        }
      },
    );
  }

  private forbidden(socket: Socket, target: string, rule: string): void {
    const body = `Kiln egress policy: ${target} refused by rule "${rule}"\n`;
    socket.end(
      `HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nX-Kiln-Rule: ${encodeURIComponent(rule)}\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }

  private async onConnect(req: http.IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    const atMs = Date.now();
    const authority = splitAuthority(req.url ?? "");
    if (!authority) {
      socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    if (head.length) socket.unshift(head);
    const v = await this.check(authority.host, authority.port);
    if (v.allowed && v.address && this.intercepts(v.name, authority.port)) {
      socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      this.terminate(socket, v.name, authority.port, atMs);
      return;
    }
    this.dial(socket, v, "connect", atMs, authority.port);
  }

  /**
   * The SNI of a CONNECT tunnel's TLS, checked: a tunnel to an allowed
   * authority must not carry TLS for another, refused name (fronting). Waits
   * for the client's first byte (the server's bytes flow meanwhile, for
   * protocols where the server speaks first); non-TLS tunnels pass. The
   * bytes read are put back.
   */
  private async tunnelSni(socket: Socket, port: number): Promise<Verdict | undefined> {
    const first = await new Promise<Buffer | null>((resolve) => {
      const onReadable = () => {
        const chunk = socket.read(1) as Buffer | null;
        if (chunk) {
          cleanup();
          socket.unshift(chunk);
          resolve(chunk);
        }
      };
      const onClose = () => {
        cleanup();
        resolve(null);
      };
      const cleanup = () => {
        socket.off("readable", onReadable);
        socket.off("close", onClose);
      };
      socket.on("readable", onReadable);
      socket.once("close", onClose);
      onReadable();
    });
    if (first?.[0] !== 0x16) return undefined;
    socket.setTimeout(this.o.helloTimeoutMs, () => socket.destroy());
    try {
      const hello = await readTlsClientHello(socket);
      const sni = hello.extensions.find((e) => e.id === 0)?.data?.serverName;
      if (typeof sni !== "string" || !sni) return undefined;
      const name = canonicalName(sni);
      if (!name) return { allowed: false, rule: "bad host name" };
      return { ...this.o.policy.decide({ name, port }), name };
    } catch {
      return undefined;
    } finally {
      socket.setTimeout(0);
    }
  }

  /**
   * A request inside TLS terminated for a secret's host: its Host must be that
   * host (no fronting another name behind the SNI); placeholders in its
   * headers become the values of the secrets that may go there (any other is
   * refused); the upstream's certificate is verified; the values are taken
   * back out of the response.
   */
  private async onInterceptedRequest(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    ctx: { name: string; port: number },
    atMs: number,
  ): Promise<void> {
    const path = req.url ?? "/";
    const base = {
      kind: "http" as const,
      atMs,
      host: ctx.name,
      port: ctx.port,
      method: req.method ?? "GET",
      path: path.slice(0, 512),
    };
    const refuse = (rule: string, address?: Address) => {
      const body = `Kiln egress policy: ${ctx.name}:${ctx.port} refused by rule "${rule}"\n`;
      res.writeHead(403, {
        "content-type": "text/plain; charset=utf-8",
        "x-kiln-rule": encodeURIComponent(rule),
      });
      res.end(body);
      req.resume();
      this.o.audit({
        ...base,
        ...(address ? { address: address.toString() } : {}),
        allowed: false,
        rule,
        status: 403,
        bytesUp: 0,
        bytesDown: 0,
        durationMs: 0,
      });
    };
    const h = req.headers.host ? splitAuthority(req.headers.host, ctx.port) : undefined;
    if (!h || canonicalName(h.host) !== ctx.name)
      return refuse(`host ${h?.host ?? "none"} is not the sni ${ctx.name}`);
    const v = await this.check(ctx.name, ctx.port);
    if (!v.allowed || !v.address) return refuse(v.rule, v.address);
    const inURL = placeholderIn(this.o.secrets, [], path);
    if (inURL) return refuse(`secret ${inURL.name} outside a header`, v.address);
    const injected = injectSecrets(this.o.secrets, forwardHeaders(req.rawHeaders), ctx.name, ctx.port);
    if ("refused" in injected)
      return refuse(`secret ${injected.refused.name} not for ${ctx.name}`, v.address);
    const headerRule = headerRuleFor(this.o.headerRules, ctx.name, ctx.port);
    let headers = headerRule ? applyHeaderRule(injected.headers, headerRule) : injected.headers;
    // Values that must not come back: the secrets put in, and the headers set by a rule.
    const scrub = [...injected.injected, ...scrubbable(headerRule)];
    if (scrub.length > 0) {
      // An encoded body could carry an echoed value past the scrubber.
      headers = headers.filter((_, i, a) => a[i - (i % 2)]!.toLowerCase() !== "accept-encoding");
      headers.push("accept-encoding", "identity");
    }
    const rule = [
      v.rule,
      ...(injected.injected.length ? [`secret ${injected.injected.map((s) => s.name).join(", ")}`] : []),
      ...(headerRule ? [`headers ${headerRule.rule.text}`] : []),
    ].join("; ");
    let up = 0;
    let down = 0;
    const upstream = http.request({
      method: req.method,
      path,
      headers,
      setHost: false,
      createConnection: this.createConnection(v.address.toString(), ctx.port, ctx.name),
    });
    req.on("data", (c: Buffer) => {
      up += c.length;
    });
    this.relay(req, upstream, "up");
    const finish = (status: number, why?: string) =>
      this.o.audit({
        ...base,
        address: v.address!.toString(),
        allowed: why === undefined,
        rule: why ? `${rule}; ${why}` : rule,
        status,
        bytesUp: up,
        bytesDown: down,
        durationMs: Date.now() - atMs,
      });
    upstream.on("response", (r) => {
      let raw = forwardHeaders(r.rawHeaders);
      if (scrub.length > 0) {
        raw = scrubHeaders(raw, scrub).filter(
          (_, i, a) => a[i - (i % 2)]!.toLowerCase() !== "content-length",
        );
      }
      res.writeHead(r.statusCode ?? 502, raw);
      r.on("data", (c: Buffer) => {
        down += c.length;
      });
      this.relay(scrub.length > 0 ? r.pipe(new ScrubStream(scrub)) : r, res, "down");
      res.once("close", () => {
        r.destroy();
        finish(r.statusCode ?? 502);
      });
    });
    upstream.on("error", (e: NodeJS.ErrnoException) => {
      if (!res.headersSent) {
        const why =
          e instanceof UpstreamProxyError
            ? e.reason
            : e.code?.startsWith("ERR_TLS") || /certificate/i.test(e.message)
              ? "upstream certificate refused"
              : "upstream unreachable";
        res.writeHead(502, { "content-type": "text/plain; charset=utf-8", connection: "close" });
        res.end(`Kiln egress: ${ctx.name}:${ctx.port} ${why}\n`);
        finish(502, why);
      } else res.destroy();
    });
    res.once("close", () => upstream.destroy());
  }

  private async onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const atMs = Date.now();
    const ctx = this.contexts.get(req.socket as Socket);
    if (ctx?.mode === "tls") return this.onInterceptedRequest(req, res, ctx, atMs);
    const url = req.url ?? "/";
    const hostHeader = req.headers.host;
    let host: string;
    let port: number;
    let path: string;
    const fail = (status: number, text: string) => {
      res.writeHead(status, { "content-type": "text/plain; charset=utf-8", connection: "close" });
      res.end(`${text}\n`);
    };
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
      let u: URL;
      try {
        u = new URL(url);
      } catch {
        return fail(400, "bad request URL");
      }
      if (u.protocol !== "http:")
        return fail(400, "only http:// URLs go through the proxy; use CONNECT for https");
      host = u.hostname;
      port = u.port ? Number(u.port) : 80;
      path = `${u.pathname}${u.search}`;
      // The Host header must name the same host: no fronting one name behind another.
      const h = hostHeader ? splitAuthority(hostHeader, 80) : undefined;
      if (
        !h ||
        (canonicalName(h.host) ?? parseAddress(h.host)?.toString()) !==
          (canonicalName(host.replace(/^\[|\]$/g, "")) ?? parseAddress(host)?.toString())
      )
        return fail(400, "the Host header does not name the request URL's host");
    } else {
      if (ctx?.mode !== "http") return fail(400, "a proxy request needs an absolute http:// URL");
      const h = hostHeader ? splitAuthority(hostHeader, ctx.original.port) : undefined;
      if (!h) return fail(400, "missing or bad Host header");
      host = h.host;
      // The port dialled is the one the sandbox connected to, whatever the Host header says.
      port = ctx.original.port;
      path = url;
    }
    const v = await this.check(host.replace(/^\[|\]$/g, ""), port);
    // A placeholder never leaves over plain HTTP, whatever the host.
    const leaked = placeholderIn(this.o.secrets, req.rawHeaders, url);
    if (leaked) {
      v.allowed = false;
      v.rule = `secret ${leaked.name} over plain http`;
    }
    const base = {
      kind: "http" as const,
      atMs,
      ...(v.name ? { host: v.name } : {}),
      ...(v.address ? { address: v.address.toString() } : {}),
      port,
      method: req.method ?? "GET",
      path: path.slice(0, 512),
      rule: v.rule,
    };
    if (!v.allowed || !v.address) {
      const body = `Kiln egress policy: ${v.name ?? host}:${port} refused by rule "${v.rule}"\n`;
      res.writeHead(403, {
        "content-type": "text/plain; charset=utf-8",
        "x-kiln-rule": encodeURIComponent(v.rule),
      });
      res.end(body);
      req.resume();
      this.o.audit({ ...base, allowed: false, status: 403, bytesUp: 0, bytesDown: 0, durationMs: 0 });
      return;
    }
    let up = 0;
    let down = 0;
    const upstream = http.request({
      method: req.method,
      path,
      headers: forwardHeaders(req.rawHeaders),
      setHost: false,
      // Kept alive for the sandbox's next request to the same address and port (upstream-pool.ts).
      agent: this.pool.agent(v.address.toString(), port),
    });
    req.on("data", (c: Buffer) => {
      up += c.length;
    });
    this.relay(req, upstream, "up");
    const finish = (status: number, why?: string) =>
      this.o.audit({
        ...base,
        allowed: why === undefined,
        ...(why ? { rule: `${v.rule}; ${why}` } : {}),
        status,
        bytesUp: up,
        bytesDown: down,
        durationMs: Date.now() - atMs,
      });
    upstream.on("response", (r) => {
      res.writeHead(r.statusCode ?? 502, forwardHeaders(r.rawHeaders));
      r.on("data", (c: Buffer) => {
        down += c.length;
      });
      this.relay(r, res, "down");
      res.once("close", () => {
        r.destroy();
        finish(r.statusCode ?? 502);
      });
    });
    upstream.on("error", (e) => {
      if (!res.headersSent) {
        const why = e instanceof UpstreamProxyError ? e.reason : "upstream unreachable";
        fail(502, `Kiln egress: ${v.name ?? host}:${port} ${why}`);
        finish(502, why);
      } else res.destroy();
    });
    res.once("close", () => upstream.destroy());
  }
}
