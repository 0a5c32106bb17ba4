/**
 * The upstream proxy on the host-side egress path, on loopback: real HTTP
 * CONNECT and SOCKS5 proxies (test/network/test-proxies.ts) that record what
 * passed through them. Traffic goes through the proxy with its credentials,
 * on every way in (HTTP proxy CONNECT, intercepted HTTP and TLS, the virtual
 * tier's fetch); a proxy that is down or refuses fails closed, with the
 * reason in the audit log, each beside a positive control.
 */
import assert from "node:assert/strict";
import http from "node:http";
import net, { type AddressInfo, type Server, type Socket } from "node:net";
import { after, before, test } from "node:test";
import tls from "node:tls";
import {
  deadPort,
  startConnectProxy,
  startSocksProxy,
  type TestProxy,
} from "../../test/network/test-proxies.ts";
import { startUpstreams, type Upstreams } from "../../test/network/upstream.ts";
import type { NetworkAuditEntry } from "../core/types.ts";
import { Egress } from "./egress.ts";
import { EgressRefusedError, egressFetch } from "./fetch.ts";
import { NetworkPolicy, resolveNetwork, upstreamProxyFor, upstreamProxyPassword } from "./policy.ts";
import { parseHostMap, Resolver } from "./resolver.ts";
import { parseUpstreamProxy, upstreamProxyOf } from "./upstream-proxy.ts";

const USER = { name: "kiln-user", password: "s3cret:pw" };
let up: Upstreams;
let httpProxy: TestProxy;
let socksProxy: TestProxy;
const listeners: Server[] = [];
const egresses: Egress[] = [];

before(async () => {
  up = await startUpstreams();
  httpProxy = await startConnectProxy(USER);
  socksProxy = await startSocksProxy(USER);
});

after(async () => {
  for (const e of egresses) e.close();
  for (const l of listeners) l.close();
  await httpProxy.close();
  await socksProxy.close();
  await up.close();
});

async function listen(onSocket: (s: Socket) => void): Promise<number> {
  const server = net.createServer(onSocket);
  listeners.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
}

interface Path {
  egress: Egress;
  audit: Omit<NetworkAuditEntry, "id">[];
  /** Port of its HTTP proxy (the sandbox's `HTTP_PROXY`). */
  proxyPort: number;
  /** Port of its intercepted plain HTTP, going to files' HTTP port. */
  httpPort: number;
  /** Port of its intercepted TLS, going to files' HTTPS port. */
  tlsPort: number;
}

/** An egress path allowed `files.test` (127.0.0.2) and `allow`, with the policy's upstream proxy `proxy`. */
async function egressPath(proxy: string | undefined, allow: string[] = []): Promise<Path> {
  const network = {
    allow: ["files.test", "127.0.0.2", ...allow],
    ...(proxy ? { upstreamProxy: proxy } : {}),
  };
  const settings = resolveNetwork(network);
  const audit: Omit<NetworkAuditEntry, "id">[] = [];
  const egress = new Egress({
    policy: new NetworkPolicy(settings),
    resolver: new Resolver(parseHostMap({ "files.test": ["127.0.0.2"], "other.test": ["127.0.0.3"] })),
    audit: (e) => audit.push(e),
    connectTimeoutMs: 5_000,
  });
  if (settings.upstreamProxy)
    egress.upstreamProxy = upstreamProxyOf(settings.upstreamProxy, upstreamProxyPassword(network), true);
  egresses.push(egress);
  return {
    egress,
    audit,
    proxyPort: await listen((s) => egress.proxy(s)),
    httpPort: await listen((s) => egress.http(s, { port: up.httpPort })),
    tlsPort: await listen((s) => egress.tls(s, { port: up.httpsPort })),
  };
}

/** One GET; resolves with status and body. */
function get(port: number, path: string, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, path, headers: { host }, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c) => {
        body += c;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

/** HTTPS GET of `/path` from files.test over `socket` (the test CA trusted); rejects when the connection fails. */
function tlsGet(socket: Socket, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const t = tls.connect({ socket, ca: up.certs.ca, servername: "files.test" });
    t.on("error", reject);
    t.once("secureConnect", () =>
      t.write(`GET ${path} HTTP/1.1\r\nHost: files.test\r\nConnection: close\r\n\r\n`),
    );
    let data = "";
    t.on("data", (c) => {
      data += c;
    });
    t.on("end", () => resolve(data.slice(data.indexOf("\r\n\r\n") + 4)));
  });
}

/** A CONNECT through the path's HTTP proxy: the 200's socket, or the refusal's status line and body. */
function connect(port: number, authority: string): Promise<{ status: number; socket: Socket; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, method: "CONNECT", path: authority, agent: false });
    req.on("connect", (res, socket, head) => {
      if (res.statusCode === 200) return resolve({ status: 200, socket, body: "" });
      let body = head.toString();
      socket.on("data", (c) => {
        body += c;
      });
      socket.on("error", () => {});
      socket.on("close", () => resolve({ status: res.statusCode ?? 0, socket, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

/** A TLS connection to the path's intercepted TLS port: the body, or the error. */
function interceptedTls(port: number, path: string): Promise<string> {
  return tlsGet(net.connect({ host: "127.0.0.1", port }), path);
}

/** Waits until `audit` has an entry that `match` accepts. */
async function entry(
  audit: Omit<NetworkAuditEntry, "id">[],
  match: (e: Omit<NetworkAuditEntry, "id">) => boolean,
): Promise<Omit<NetworkAuditEntry, "id">> {
  for (let i = 0; i < 100; i++) {
    const found = audit.find(match);
    if (found) return found;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`no audit entry matched; have ${JSON.stringify(audit)}`);
}

for (const kind of ["http", "socks5"] as const) {
  const proxy = () => (kind === "http" ? httpProxy : socksProxy);

  test(`${kind} proxy: every way out goes through it, with its credentials`, async () => {
    const p = proxy();
    const tunnels = p.tunnels.length;
    const path = await egressPath(p.url, [`127.0.0.1:${p.port}`]);
    // Intercepted plain HTTP.
    const r = await get(path.httpPort, "/plain", "files.test");
    assert.equal(r.body, "files:GET /plain host=files.test");
    // A CONNECT tunnel from the sandbox's proxy, TLS inside.
    const c = await connect(path.proxyPort, `files.test:${up.httpsPort}`);
    assert.equal(c.status, 200);
    assert.equal(await tlsGet(c.socket, "/tunnel"), "files:GET /tunnel host=files.test");
    // Intercepted TLS.
    assert.equal(await interceptedTls(path.tlsPort, "/tls"), "files:GET /tls host=files.test");
    // The virtual tier's fetch.
    const f = await egressFetch(path.egress)(`http://files.test:${up.httpPort}/fetch`);
    assert.equal(Buffer.from(f.body).toString(), `files:GET /fetch host=files.test:${up.httpPort}`);
    assert.deepEqual(p.tunnels.slice(tunnels), [
      `127.0.0.2:${up.httpPort}`,
      `127.0.0.2:${up.httpsPort}`,
      `127.0.0.2:${up.httpsPort}`,
      `127.0.0.2:${up.httpPort}`,
    ]);
    assert.ok(p.credentials.includes(`${USER.name}:${USER.password}`), "the credentials were sent");
    const plain = await entry(path.audit, (e) => e.path === "/plain");
    assert.equal(plain.allowed, true);
  });

  test(`${kind} proxy refusing the credentials: refused, never direct, the reason audited`, async () => {
    const p = proxy();
    const tunnels = p.tunnels.length;
    const refusedBefore = p.refused;
    const url = p.url.replace(USER.password, "wrong");
    const path = await egressPath(url, [`127.0.0.1:${p.port}`]);
    const r = await get(path.httpPort, "/denied", "files.test");
    assert.equal(r.status, 502);
    assert.match(r.body, /upstream proxy refused/);
    const c = await connect(path.proxyPort, `files.test:${up.httpsPort}`);
    assert.equal(c.status, 502);
    assert.match(c.body, /upstream proxy refused/);
    await assert.rejects(interceptedTls(path.tlsPort, "/tls"));
    await assert.rejects(
      egressFetch(path.egress)(`http://files.test:${up.httpPort}/fetch`),
      /upstream proxy/,
    );
    assert.ok(p.refused > refusedBefore, "the proxy saw and refused them");
    assert.equal(p.tunnels.length, tunnels, "nothing passed");
    const audited = await entry(path.audit, (e) => e.path === "/denied");
    assert.equal(audited.allowed, false);
    assert.match(audited.rule, /^allow [^;]+; upstream proxy refused/);
    const tunnel = await entry(path.audit, (e) => e.kind === "connect");
    assert.match(tunnel.rule, /upstream proxy refused/);
    assert.equal(tunnel.allowed, false);
    // Positive control: the same path with the right credentials.
    path.egress.upstreamProxy = upstreamProxyOf(
      parseUpstreamProxy(p.url).settings,
      parseUpstreamProxy(p.url).password,
      true,
    );
    assert.equal((await get(path.httpPort, "/ok", "files.test")).status, 200);
  });
}

test("a proxy that is down: refused (502, reset), never direct, the reason audited", async () => {
  const port = await deadPort();
  const path = await egressPath(`socks5://127.0.0.1:${port}`, [`127.0.0.1:${port}`]);
  const r = await get(path.httpPort, "/down", "files.test");
  assert.equal(r.status, 502);
  assert.match(r.body, /upstream proxy unreachable/);
  const c = await connect(path.proxyPort, `files.test:${up.httpsPort}`);
  assert.equal(c.status, 502);
  await assert.rejects(interceptedTls(path.tlsPort, "/tls"));
  const audited = await entry(path.audit, (e) => e.path === "/down");
  assert.equal(audited.allowed, false);
  assert.match(audited.rule, /upstream proxy unreachable/);
  const tls = await entry(path.audit, (e) => e.kind === "tls");
  assert.match(tls.rule, /upstream proxy unreachable/);
  // Positive control: the same path without a proxy reaches files.test directly, so the refusals above
  // were the proxy's absence, not a dead upstream.
  path.egress.upstreamProxy = undefined;
  assert.equal((await get(path.httpPort, "/direct", "files.test")).body, "files:GET /direct host=files.test");
});

test("a policy's proxy in a blocked range needs an address rule naming it", async () => {
  const tunnels = httpProxy.tunnels.length;
  const path = await egressPath(httpProxy.url);
  const r = await get(path.httpPort, "/blocked", "files.test");
  assert.equal(r.status, 502);
  assert.match(r.body, /upstream proxy blocked loopback/);
  assert.equal(httpProxy.tunnels.length, tunnels, "the proxy was not dialled");
  // Positive control: with the rule, the same proxy carries it.
  const allowed = await egressPath(httpProxy.url, [`127.0.0.1:${httpProxy.port}`]);
  assert.equal((await get(allowed.httpPort, "/ok", "files.test")).status, 200);
  assert.equal(httpProxy.tunnels.length, tunnels + 1);
});

test("a refused destination never reaches the proxy", async () => {
  const tunnels = socksProxy.tunnels.length;
  const path = await egressPath(socksProxy.url, [`127.0.0.1:${socksProxy.port}`]);
  assert.equal((await get(path.httpPort, "/x", "other.test")).status, 403);
  await assert.rejects(egressFetch(path.egress)("http://other.test/"), EgressRefusedError);
  assert.equal(socksProxy.tunnels.length, tunnels);
  assert.equal((await get(path.httpPort, "/y", "files.test")).status, 200, "positive control");
  assert.equal(socksProxy.tunnels.length, tunnels + 1);
});

test("the policy's proxy: its password kept apart, never shown; the server's default otherwise", () => {
  const settings = resolveNetwork({ allow: ["a.test"], upstreamProxy: "socks5://u:p%40ss@proxy.test:1080" });
  assert.deepEqual(settings.upstreamProxy, { url: "socks5://proxy.test:1080", username: "u" });
  assert.equal(JSON.stringify(settings).includes("p@ss"), false);
  assert.equal(
    upstreamProxyPassword({ upstreamProxy: { url: "http://proxy.test", username: "u", password: "pw" } }),
    "pw",
  );
  assert.deepEqual(resolveNetwork({ upstreamProxy: { url: "http://[::1]" } }).upstreamProxy, {
    url: "http://[::1]:3128",
  });
  const none = resolveNetwork({ allow: ["a.test"] });
  assert.equal(upstreamProxyFor(none, "/nonexistent", undefined), undefined);
  assert.deepEqual(upstreamProxyFor(none, "/nonexistent", "http://a:b@proxy.corp:8080"), {
    protocol: "http",
    host: "proxy.corp",
    port: 8080,
    username: "a",
    password: "b",
    checked: false,
  });
  assert.equal(upstreamProxyFor(settings, "/nonexistent", "http://proxy.corp:8080")?.host, "proxy.test");
  for (const bad of [
    "ftp://proxy.test",
    "http://proxy.test/path",
    "proxy.test:1080",
    { url: "http://proxy.test", password: "p" },
    { url: "http://proxy.test", extra: 1 },
    42,
  ])
    assert.throws(
      () => resolveNetwork({ upstreamProxy: bad }),
      { code: "invalid_argument" },
      JSON.stringify(bad),
    );
});
