/**
 * Inbound ports: reaching a server that a process runs inside a sandbox.
 *
 * The policy (which ports may be reached, which of them without
 * credentials) is part of the sandbox's record, the same on every tier, and
 * changeable while the sandbox runs. A tier that can carry a connection into
 * the sandbox declares `inboundPorts` and implements `Instance.connectPort`
 * (the real tiers: the agent dials the sandbox's own loopback, so no network
 * path from the host into the sandbox exists); on any other tier every call
 * here is `unsupported`.
 *
 * `sandbox.ports.connect(port)` gives one connection as a Duplex;
 * `sandbox.ports.forward(port)` listens on a local address and carries every
 * connection made to it (like `kubectl port-forward`); `kiln serve` routes
 * HTTP and WebSocket by Host to {@link Ports.connect} (docs/network.md).
 */
import { createServer, type Server, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Instance } from "./backend.ts";
import { InvalidArgumentError, NotFoundError, UnsupportedError } from "./errors.ts";
import type { NetworkAuditEntry, PortPolicy, SandboxInfo } from "./types.ts";

export type { PortPolicy };

/** The policy of a sandbox created without one: every port reachable by its owner, none public. */
export const DEFAULT_PORT_POLICY: Readonly<PortPolicy> = Object.freeze({ expose: "all", public: [] });

/** Most ports a policy may list. */
export const MAX_POLICY_PORTS = 1024;

/** Checks a port number. @throws InvalidArgumentError (`invalid_argument`) */
export function checkPort(port: unknown): number {
  if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new InvalidArgumentError(`a port must be an integer from 1 to 65535, not ${JSON.stringify(port)}`);
  }
  return port;
}

function checkList(name: string, v: unknown): "all" | number[] {
  if (v === "all") return "all";
  if (!Array.isArray(v)) throw new InvalidArgumentError(`ports.${name} must be "all" or a list of ports`);
  if (v.length > MAX_POLICY_PORTS) {
    throw new InvalidArgumentError(`ports.${name} lists more than ${MAX_POLICY_PORTS} ports`);
  }
  return [...new Set(v.map(checkPort))].sort((a, b) => a - b);
}

/**
 * A policy from user input, unset fields from `base` (default {@link DEFAULT_PORT_POLICY}).
 * A public port must be exposed.
 * @throws InvalidArgumentError (`invalid_argument`)
 */
export function checkPortPolicy(input: unknown, base: PortPolicy = DEFAULT_PORT_POLICY): PortPolicy {
  if (input === undefined) return { ...base };
  if (input === null || typeof input !== "object" || Array.isArray(input)) {
    throw new InvalidArgumentError("ports must be an object { expose, public }");
  }
  const p = input as Record<string, unknown>;
  for (const k of Object.keys(p)) {
    if (k !== "expose" && k !== "public") throw new InvalidArgumentError(`unknown ports field: ${k}`);
  }
  const expose = p.expose === undefined ? base.expose : checkList("expose", p.expose);
  const pub = p.public === undefined ? base.public : checkList("public", p.public);
  if (expose !== "all") {
    const open = new Set(expose);
    const closed = pub === "all" ? ["all"] : pub.filter((x) => !open.has(x));
    if (closed.length > 0) {
      throw new InvalidArgumentError(`ports.public names ports that are not exposed: ${closed.join(", ")}`);
    }
  }
  return { expose, public: pub };
}

/** How `port` may be reached under `policy`: not at all, with credentials, or by anyone. */
export function portAccess(policy: PortPolicy, port: number): "closed" | "auth" | "public" {
  const listed = (l: "all" | number[]) => l === "all" || l.includes(port);
  if (!listed(policy.expose)) return "closed";
  return listed(policy.public) ? "public" : "auth";
}

/** A local listener that carries its connections to a sandbox's port. */
export interface PortForward {
  /** The sandbox's port. */
  readonly port: number;
  /** Local address the listener is bound to. */
  readonly localHost: string;
  /** Local port. */
  readonly localPort: number;
  /** `host:port` to connect to (IPv6 in brackets). */
  readonly address: string;
  /** Stops listening and ends the connections it carries. */
  close(): Promise<void>;
}

/** Options of {@link Ports.forward}. */
export interface ForwardOptions {
  /** Local address to bind; default `127.0.0.1`. */
  host?: string;
  /** Local port; default 0 (any free port). */
  localPort?: number;
}

/** What {@link Ports} needs from its sandbox. */
export interface PortsHost {
  id: string;
  record(): SandboxInfo;
  setPolicy(policy: PortPolicy): void;
  instance(): Promise<Instance>;
  /** Marks the sandbox in use (its idle time, before hibernation, starts again). */
  touch(): void;
  /** Records a connection in the sandbox's network audit log. */
  audit(entry: Omit<NetworkAuditEntry, "id">): void;
}

/** What a connection is recorded with in the audit log (`kiln serve` fills it in). */
export interface ConnectOptions {
  /** Why it was let in: `owner key`, `port token`, `public`; default `library`. */
  rule?: string;
  /** The HTTP method of the request that opened it, where one did. */
  method?: string;
  /** The HTTP path (at most 512 characters are kept). */
  path?: string;
}

/** How often open port connections mark their sandbox in use, ms. */
const TOUCH_EVERY_MS = 30_000;

/** `sandbox.ports`: the policy and connections to the sandbox's ports. */
export class Ports {
  private readonly host: PortsHost;
  private readonly forwards = new Set<PortForward>();
  /** Forwards made by {@link getHost}, one per port, kept until the sandbox is closed. */
  private readonly hosts = new Map<number, Promise<PortForward>>();
  /** Open connections: while there are any, the sandbox is in use (no hibernation under a live WebSocket). */
  private open = 0;
  private toucher: NodeJS.Timeout | undefined;

  /** @internal Made by Sandbox. */
  constructor(host: PortsHost) {
    this.host = host;
  }

  /** The sandbox's port policy. @throws NotFoundError when the sandbox is gone */
  policy(): PortPolicy {
    return this.host.record().ports;
  }

  /**
   * Changes the policy for new connections (open ones stay); unset fields keep their value.
   * @throws InvalidArgumentError, NotFoundError
   */
  update(policy: Partial<PortPolicy>): PortPolicy {
    const next = checkPortPolicy(policy, this.policy());
    this.host.setPolicy(next);
    return next;
  }

  /**
   * A TCP connection to `port` on the sandbox's loopback.
   * @throws UnsupportedError (a tier without `inboundPorts`), InvalidArgumentError,
   * NotFoundError (`resource: "port"`: not exposed by the policy), PortClosedError (nothing listens),
   * SandboxStoppedError
   */
  async connect(port: number, options: ConnectOptions = {}): Promise<Duplex> {
    checkPort(port);
    const rec = this.host.record();
    const inst = await this.host.instance();
    if (!inst.connectPort) {
      throw new UnsupportedError(
        `tier ${rec.tier} cannot reach ports inside a sandbox (it has no network stack); use namespace, oci or gvisor`,
      );
    }
    if (portAccess(rec.ports, port) === "closed") {
      throw new NotFoundError(`port ${port} of sandbox ${rec.id} is not exposed by its port policy`, {
        resource: "port",
      });
    }
    const atMs = Date.now();
    const conn = await inst.connectPort(port);
    conn.once("close", () => {
      const io = conn as Duplex & { bytesRead?: number; bytesWritten?: number };
      try {
        this.host.audit({
          atMs,
          kind: "inbound",
          port,
          ...(options.method ? { method: options.method } : {}),
          ...(options.path !== undefined ? { path: options.path.slice(0, 512) } : {}),
          allowed: true,
          rule: options.rule ?? "library",
          bytesUp: io.bytesRead ?? 0,
          bytesDown: io.bytesWritten ?? 0,
          durationMs: Date.now() - atMs,
        });
      } catch {
        // The sandbox was closed or deleted meanwhile: there is no log to write to.
      }
    });
    if (this.open++ === 0) {
      this.toucher = setInterval(() => this.host.touch(), TOUCH_EVERY_MS);
      this.toucher.unref();
    }
    conn.once("close", () => {
      if (--this.open === 0) clearInterval(this.toucher);
    });
    return conn;
  }

  /**
   * Listens on a local address and carries each connection made to it to `port` in the sandbox.
   * The policy and the port's state are checked per connection (a refused one is closed at once).
   * @throws UnsupportedError, InvalidArgumentError, and the listen error (EADDRINUSE) as is
   */
  async forward(port: number, options: ForwardOptions = {}): Promise<PortForward> {
    checkPort(port);
    const inst = await this.host.instance();
    if (!inst.connectPort) {
      throw new UnsupportedError(`tier ${this.host.record().tier} cannot reach ports inside a sandbox`);
    }
    const sockets = new Set<Socket>();
    const server: Server = createServer((socket) => {
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
      socket.on("error", () => {});
      socket.pause();
      this.connect(port).then(
        (conn) => {
          conn.on("error", () => socket.destroy());
          socket.on("error", () => conn.destroy());
          socket.once("close", () => conn.destroy());
          conn.once("close", () => socket.destroy());
          socket.pipe(conn);
          conn.pipe(socket);
          socket.resume();
        },
        () => socket.destroy(),
      );
    });
    const host = options.host ?? "127.0.0.1";
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.localPort ?? 0, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    const localPort = (server.address() as { port: number }).port;
    const fwd: PortForward = {
      port,
      localHost: host,
      localPort,
      address: `${host.includes(":") ? `[${host}]` : host}:${localPort}`,
      close: () =>
        new Promise<void>((resolve) => {
          this.forwards.delete(fwd);
          server.close(() => resolve());
          for (const s of sockets) s.destroy();
        }),
    };
    this.forwards.add(fwd);
    return fwd;
  }

  /**
   * `host:port` on this machine's loopback that reaches `port` in the sandbox: a {@link forward}
   * made on first use and kept until the sandbox is closed. (Through `kiln serve`, the client's
   * `getHost` gives the server's `{port}-{id}.{domain}` address instead.)
   * @throws as {@link forward}
   */
  async getHost(port: number): Promise<string> {
    checkPort(port);
    let f = this.hosts.get(port);
    if (!f) {
      f = this.forward(port);
      this.hosts.set(port, f);
      f.catch(() => this.hosts.delete(port));
    }
    return (await f).address;
  }

  /** @internal Closes every forward (the sandbox is being closed). */
  async closeAll(): Promise<void> {
    this.hosts.clear();
    await Promise.all([...this.forwards].map((f) => f.close()));
  }
}

/** The host name that routes to `port` of sandbox `sandboxId` under `domain`: `{port}-{sandboxId}.{domain}`. */
export function sandboxHostName(port: number, sandboxId: string, domain: string): string {
  return `${port}-${sandboxId}.${domain}`;
}

/**
 * The sandbox and port a Host header names (`{port}-{sandboxId}.{domain}`, the form the `e2b`
 * SDK's `getHost` builds), or undefined. With `domain`, only names under it match (compared
 * without case; a domain without a port matches any port); without, any domain does.
 */
export function parseSandboxHost(
  host: string | undefined,
  domain?: string,
): { port: number; sandboxId: string } | undefined {
  if (!host) return undefined;
  let name = host.toLowerCase();
  if (domain !== undefined) {
    const d = domain.toLowerCase();
    if (!d.includes(":") && !name.startsWith("[")) name = name.replace(/:\d+$/, "");
    if (!name.endsWith(`.${d}`)) return undefined;
    name = name.slice(0, -d.length - 1);
    if (name.includes(".")) return undefined;
  } else {
    const dot = name.indexOf(".");
    if (dot < 0) return undefined;
    name = name.slice(0, dot);
  }
  const m = /^([0-9]{1,5})-([a-z0-9_]{1,64})$/.exec(name);
  if (!m) return undefined;
  const port = Number(m[1]);
  if (port < 1 || port > 65535) return undefined;
  return { port, sandboxId: m[2]! };
}

/**
 * Checks a domain for sandbox host names (`kiln serve --domain`): DNS labels, optionally `:port`.
 * @throws InvalidArgumentError (`invalid_argument`)
 */
export function checkSandboxDomain(domain: string): string {
  if (
    !/^(?=.{1,240}(:|$))[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[0-9]{1,5})?$/i.test(
      domain,
    )
  ) {
    throw new InvalidArgumentError(`not a domain for sandbox host names: ${JSON.stringify(domain)}`);
  }
  return domain.toLowerCase();
}
