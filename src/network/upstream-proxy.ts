/**
 * The upstream proxy: allowed egress leaves through it, for networks where
 * everything must go out through one. An HTTP proxy is asked for a tunnel
 * (CONNECT, with `Proxy-Authorization: Basic` when it has credentials); a
 * SOCKS5 proxy is spoken to by the `socks` package (RFC 1929 credentials).
 * Every upstream connection of the egress path goes through the tunnel,
 * plain HTTP included, to the address the policy checked.
 *
 * It fails closed: a proxy that is down, slow or refusing makes the
 * sandbox's connection fail, with the reason in the audit log; there is
 * never a direct connection instead.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import net, { type Socket } from "node:net";
import { join } from "node:path";
import { SocksClient } from "socks";
import { InvalidArgumentError } from "../core/errors.ts";
import { type Address, parseAddress } from "./address.ts";
import { canonicalName } from "./rules.ts";

/** An upstream proxy, with its credentials. */
export interface UpstreamProxy {
  /** `http` (CONNECT) or `socks5`. */
  protocol: "http" | "socks5";
  /** Host name or address of the proxy. */
  host: string;
  /** Its port. */
  port: number;
  /** User name, when it takes credentials. */
  username?: string;
  /** Password (with `username`). */
  password?: string;
  /** Whether its address is checked against the blocked ranges (a sandbox's own policy: yes; the server's: no). */
  checked: boolean;
}

/** The `upstreamProxy` of a policy, as callers give it. */
export type UpstreamProxyOption = string | { url: string; username?: string; password?: string };

/** The `upstreamProxy` of a policy as stored and shown: never the password. */
export interface UpstreamProxySettings {
  /** `http://host:port` or `socks5://host:port`. */
  url: string;
  /** User name, when it takes credentials. */
  username?: string;
}

/** A failure to reach the destination through the proxy; `reason` goes into the audit log. */
export class UpstreamProxyError extends Error {
  /** Why, in a few words (`upstream proxy unreachable`, `upstream proxy refused (407)`, ...). */
  readonly reason: string;

  constructor(reason: string, options?: { cause?: unknown }) {
    super(reason, options);
    this.name = "UpstreamProxyError";
    this.reason = reason;
  }
}

const DEFAULT_PORTS = { http: 3128, socks5: 1080 } as const;

/**
 * Checks an `upstreamProxy` option (a URL `http://` or `socks5://`, with
 * optional `user:password@`, or `{ url, username, password }`).
 * @throws InvalidArgumentError naming what is wrong
 */
export function parseUpstreamProxy(
  value: unknown,
  field = "network.upstreamProxy",
): { settings: UpstreamProxySettings; password?: string } {
  const o =
    typeof value === "string"
      ? { url: value }
      : value && typeof value === "object" && !Array.isArray(value)
        ? (value as Record<string, unknown>)
        : undefined;
  if (!o || typeof o.url !== "string") throw new InvalidArgumentError(`${field} must be a URL or { url }`);
  for (const k of Object.keys(o))
    if (!["url", "username", "password"].includes(k))
      throw new InvalidArgumentError(`${field}.${k} is not an option`);
  let u: URL;
  try {
    u = new URL(o.url);
  } catch {
    throw new InvalidArgumentError(`${field}: bad URL ${JSON.stringify(o.url)}`);
  }
  const scheme = u.protocol.replace(/:$/, "");
  const protocol =
    scheme === "http" ? "http" : scheme === "socks5" || scheme === "socks5h" ? "socks5" : undefined;
  if (!protocol) throw new InvalidArgumentError(`${field}: the URL must be http:// or socks5://`);
  if ((u.pathname !== "" && u.pathname !== "/") || u.search || u.hash)
    throw new InvalidArgumentError(`${field}: the URL is host and port only`);
  const bare = u.hostname.replace(/^\[|\]$/g, "");
  const address = parseAddress(bare);
  const host = address ? address.toString() : canonicalName(bare);
  if (!host) throw new InvalidArgumentError(`${field}: bad host ${JSON.stringify(u.hostname)}`);
  const port = u.port ? Number(u.port) : DEFAULT_PORTS[protocol];
  const username =
    (o.username as string | undefined) ?? (u.username ? decodeURIComponent(u.username) : undefined);
  const password =
    (o.password as string | undefined) ?? (u.password ? decodeURIComponent(u.password) : undefined);
  for (const [k, v] of [
    ["username", username],
    ["password", password],
  ] as const)
    if (v !== undefined && (typeof v !== "string" || Buffer.byteLength(v) > 255 || /[\r\n\0]/.test(v)))
      throw new InvalidArgumentError(`${field}.${k} must be a string of at most 255 bytes`);
  if (password !== undefined && username === undefined)
    throw new InvalidArgumentError(`${field}: a password needs a username`);
  const shown = address?.kind() === "ipv6" ? `[${host}]` : host;
  return {
    settings: { url: `${protocol}://${shown}:${port}`, ...(username !== undefined ? { username } : {}) },
    ...(password !== undefined ? { password } : {}),
  };
}

/** The proxy of stored settings with its password (kept apart), for the egress path. */
export function upstreamProxyOf(
  settings: UpstreamProxySettings,
  password: string | undefined,
  checked: boolean,
): UpstreamProxy {
  const u = new URL(settings.url);
  return {
    protocol: u.protocol === "http:" ? "http" : "socks5",
    host: u.hostname.replace(/^\[|\]$/g, ""),
    port: Number(u.port),
    ...(settings.username !== undefined ? { username: settings.username } : {}),
    ...(password !== undefined ? { password } : {}),
    checked,
  };
}

/** A server's default upstream proxy (`Kiln.open`'s `upstreamProxy`), not checked against blocked ranges. @throws InvalidArgumentError */
export function defaultUpstreamProxy(value: UpstreamProxyOption | undefined): UpstreamProxy | undefined {
  if (value === undefined || value === "") return undefined;
  const p = parseUpstreamProxy(value, "upstreamProxy");
  return upstreamProxyOf(p.settings, p.password, false);
}

const STORE = "network-proxy.json";

/** Keeps a sandbox's proxy password on the host, in its state directory (mode 0600); undefined removes it. */
export function writeProxyPassword(stateDir: string, password: string | undefined): void {
  const file = join(stateDir, STORE);
  if (password === undefined) {
    rmSync(file, { force: true });
    return;
  }
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  writeFileSync(`${file}.tmp`, JSON.stringify({ password }), { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}

/** The password kept by {@link writeProxyPassword}, if any. */
export function readProxyPassword(stateDir: string): string | undefined {
  try {
    const p = JSON.parse(readFileSync(join(stateDir, STORE), "utf8")).password;
    return typeof p === "string" ? p : undefined;
  } catch {
    return undefined;
  }
}

/** What opening a tunnel needs beside the proxy. */
export interface TunnelOptions {
  /** Resolves the proxy's host name. */
  resolve(name: string): Promise<Address[]>;
  /** Whether a checked proxy may be dialled at this address (blocked ranges need an address rule); the refusal's rule. */
  allowProxy(address: Address, port: number): string | undefined;
  /** Time for the proxy to connect and answer, ms. */
  timeoutMs: number;
}

/**
 * A connection to `address`:`port`, through `proxy` when there is one, else
 * direct. Resolves once it carries the destination's bytes.
 * @throws UpstreamProxyError (through a proxy), or the socket's error (direct)
 */
export async function openUpstream(
  proxy: UpstreamProxy | undefined,
  address: string,
  port: number,
  o: TunnelOptions,
): Promise<Socket> {
  if (!proxy) return connectDirect(address, port, o.timeoutMs);
  let proxyHost = proxy.host;
  if (proxy.checked) {
    // A sandbox's own policy names the proxy: its address is checked like any other, then dialled as checked.
    const literal = parseAddress(proxy.host);
    const addresses = literal ? [literal] : await o.resolve(proxy.host);
    if (addresses.length === 0) throw new UpstreamProxyError("upstream proxy has no address");
    const refusal = o.allowProxy(addresses[0]!, proxy.port);
    if (refusal) throw new UpstreamProxyError(`upstream proxy ${refusal}`);
    proxyHost = addresses[0]!.toString();
  }
  return proxy.protocol === "socks5"
    ? socks5(proxy, proxyHost, address, port, o.timeoutMs)
    : httpConnect(proxy, proxyHost, address, port, o.timeoutMs);
}

function connectDirect(address: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: address, port });
    const timer = setTimeout(() => s.destroy(new Error("connect timed out")), timeoutMs);
    s.once("connect", () => {
      clearTimeout(timer);
      s.removeListener("error", reject);
      resolve(s);
    });
    s.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

async function socks5(
  proxy: UpstreamProxy,
  proxyHost: string,
  address: string,
  port: number,
  timeoutMs: number,
): Promise<Socket> {
  try {
    const { socket } = await SocksClient.createConnection({
      proxy: {
        host: proxyHost,
        port: proxy.port,
        type: 5,
        ...(proxy.username !== undefined ? { userId: proxy.username, password: proxy.password ?? "" } : {}),
      },
      command: "connect",
      destination: { host: address, port },
      timeout: timeoutMs,
    });
    return socket;
  } catch (e) {
    const m = (e as Error).message;
    const why = /ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|timed out|Socket closed/i.test(m)
      ? "upstream proxy unreachable"
      : /auth/i.test(m)
        ? "upstream proxy refused (authentication)"
        : "upstream proxy refused";
    throw new UpstreamProxyError(why, { cause: e });
  }
}

function httpConnect(
  proxy: UpstreamProxy,
  proxyHost: string,
  address: string,
  port: number,
  timeoutMs: number,
): Promise<Socket> {
  const authority = `${address.includes(":") ? `[${address}]` : address}:${port}`;
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: proxyHost,
      port: proxy.port,
      method: "CONNECT",
      path: authority,
      agent: false,
      headers: {
        host: authority,
        ...(proxy.username !== undefined
          ? {
              "proxy-authorization": `Basic ${Buffer.from(`${proxy.username}:${proxy.password ?? ""}`).toString("base64")}`,
            }
          : {}),
      },
    });
    const timer = setTimeout(() => req.destroy(new Error("timed out")), timeoutMs);
    req.once("connect", (res, socket, head) => {
      clearTimeout(timer);
      if (res.statusCode !== 200) {
        socket.destroy();
        reject(new UpstreamProxyError(`upstream proxy refused (${res.statusCode})`));
        return;
      }
      if (head.length) socket.unshift(head);
      resolve(socket);
    });
    req.once("response", (res) => {
      clearTimeout(timer);
      res.resume();
      req.destroy();
      reject(new UpstreamProxyError(`upstream proxy refused (${res.statusCode})`));
    });
    req.once("error", (e) => {
      clearTimeout(timer);
      reject(new UpstreamProxyError("upstream proxy unreachable", { cause: e }));
    });
    req.end();
  });
}
