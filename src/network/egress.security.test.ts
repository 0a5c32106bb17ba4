/**
 * Hostile cases against the host-side egress path, on loopback: each refusal
 * beside a positive control through the same egress path. `files.test` is
 * 127.0.0.2 (allowed by name, and its address explicitly), `other.test` is
 * 127.0.0.3 (not allowed), `rebind.test` is allowed by name but resolves to
 * a private address.
 */
import assert from "node:assert/strict";
import http from "node:http";
import net, { type AddressInfo, type Server, type Socket } from "node:net";
import { after, before, test } from "node:test";
import tls from "node:tls";
import dnsPacket from "dns-packet";
import { startUpstreams, type Upstreams } from "../../test/network/upstream.ts";
import type { NetworkAuditEntry } from "../core/types.ts";
import { parseAddress } from "./address.ts";
import { answerDns } from "./dns.ts";
import { Egress, type Original } from "./egress.ts";
import { NetworkPolicy, resolveNetwork } from "./policy.ts";
import { parseHostMap, Resolver } from "./resolver.ts";

let up: Upstreams;
let egress: Egress;
const audit: Omit<NetworkAuditEntry, "id">[] = [];
const listeners: Server[] = [];
let proxyPort: number;
let httpPort: number;
let tlsPort: number;

const policy = new NetworkPolicy(resolveNetwork({ allow: ["files.test", "127.0.0.2", "rebind.test"] }));

async function listen(onSocket: (s: Socket) => void): Promise<number> {
  const server = net.createServer(onSocket);
  listeners.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
}

before(async () => {
  up = await startUpstreams();
  egress = new Egress({
    policy,
    resolver: new Resolver(
      parseHostMap({ "files.test": ["127.0.0.2"], "other.test": ["127.0.0.3"], "rebind.test": ["10.1.2.3"] }),
    ),
    audit: (e) => audit.push(e),
    maxConnections: 8,
    helloTimeoutMs: 20_000,
  });
  const original = (port: number): Original => ({ port });
  proxyPort = await listen((s) => egress.proxy(s));
  httpPort = await listen((s) => egress.http(s, original(up.httpPort)));
  tlsPort = await listen((s) => egress.tls(s, original(up.httpsPort)));
});

after(async () => {
  egress.close();
  for (const l of listeners) l.close();
  await up.close();
});

/** One HTTP request; resolves with status and body. */
function request(options: http.RequestOptions): Promise<{ status: number; body: string; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", ...options }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c) => {
        body += c;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, socket: req.socket as Socket }));
    });
    req.on("error", reject);
    req.end();
  });
}

/** A CONNECT tunnel through the proxy; resolves with the status line and the socket. */
function connect(authority: string): Promise<{ status: number; socket: Socket; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port: proxyPort, method: "CONNECT", path: authority });
    req.on("connect", (res, socket, head) => {
      if (res.statusCode === 200) return resolve({ status: 200, socket, body: "" });
      let body = head.toString();
      socket.on("data", (c) => {
        body += c;
      });
      socket.on("error", () => {});
      socket.on("close", () => resolve({ status: res.statusCode ?? 0, socket, body }));
    });
    req.on("response", (res) => {
      let body = "";
      res.on("data", (c) => {
        body += c;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, socket: req.socket as Socket, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

/** A TLS handshake and one GET over `socket`; resolves with the body, rejects when refused. */
function tlsGet(socket: Socket, servername: string | undefined, host: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const t = tls.connect({
      socket,
      ca: up.certs.ca,
      ...(servername ? { servername } : {}),
      checkServerIdentity: () => undefined,
    });
    t.on("error", reject);
    t.on("close", () => reject(new Error("closed")));
    t.once("secureConnect", () => t.write(`GET /x HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`));
    let data = "";
    t.on("data", (c) => {
      data += c;
    });
    t.on("end", () => resolve(data.slice(data.indexOf("\r\n\r\n") + 4)));
  });
}

/** Resolves with how a plain TCP connection to `port` ended once `payload` was sent. */
function rawOutcome(port: number, payload: Buffer): Promise<"reset" | "closed" | "data"> {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1", () => s.write(payload));
    s.on("data", () => {
      s.destroy();
      resolve("data");
    });
    s.on("error", () => resolve("reset"));
    s.on("end", () => resolve("closed"));
  });
}

test("forward proxy: an allowed host is fetched, a refused one gets a 403 naming the rule", async () => {
  const ok = await request({
    port: proxyPort,
    path: `http://files.test:${up.httpPort}/a?b=1`,
    headers: { host: `files.test:${up.httpPort}` },
  });
  assert.equal(ok.status, 200);
  assert.equal(ok.body, `files:GET /a?b=1 host=files.test:${up.httpPort}`);
  const no = await request({
    port: proxyPort,
    path: `http://other.test:${up.httpPort}/`,
    headers: { host: `other.test:${up.httpPort}` },
  });
  assert.equal(no.status, 403);
  assert.match(no.body, /default deny/);
  const seen = audit.filter((e) => e.kind === "http" && e.path === "/a?b=1");
  assert.equal(seen.length, 1);
  assert.equal(seen[0]!.allowed, true);
  assert.equal(seen[0]!.host, "files.test");
  assert.equal(seen[0]!.method, "GET");
  assert.ok(seen[0]!.bytesDown > 0);
  assert.ok(
    audit.some((e) => e.host === "other.test" && !e.allowed && e.rule === "default deny" && e.status === 403),
  );
});

test("forward proxy: IP literals in every spelling and a name resolving to a private address are refused", async () => {
  const ok = await request({
    port: proxyPort,
    path: `http://127.0.0.2:${up.httpPort}/lit`,
    headers: { host: `127.0.0.2:${up.httpPort}` },
  });
  assert.equal(ok.status, 200, "positive control: the explicitly allowed address");
  for (const host of [
    "127.0.0.3",
    "2130706435",
    "0x7f000003",
    "127.3",
    "[::ffff:127.0.0.3]",
    "169.254.169.254",
    "[::1]",
  ]) {
    const r = await request({
      port: proxyPort,
      path: `http://${host}:${up.httpPort}/`,
      headers: { host: `${host}:${up.httpPort}` },
    });
    assert.equal(r.status, 403, host);
    assert.match(r.body, /blocked/, host);
  }
  const rebind = await request({
    port: proxyPort,
    path: `http://rebind.test:${up.httpPort}/`,
    headers: { host: `rebind.test:${up.httpPort}` },
  });
  assert.equal(rebind.status, 403);
  assert.match(rebind.body, /blocked private/);
});

test("forward proxy: a Host header that disagrees with the URL is refused (no fronting)", async () => {
  const r = await request({
    port: proxyPort,
    path: `http://files.test:${up.httpPort}/`,
    headers: { host: "other.test" },
  });
  assert.equal(r.status, 400);
  const ok = await request({
    port: proxyPort,
    path: `http://files.test:${up.httpPort}/`,
    headers: { host: `FILES.test:${up.httpPort}` },
  });
  assert.equal(ok.status, 200);
});

test("intercepted HTTP: the Host of every request on a kept-alive connection is checked", async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const first = await request({ port: httpPort, path: "/one", headers: { host: "files.test" }, agent });
    assert.equal(first.status, 200);
    assert.equal(first.body, "files:GET /one host=files.test");
    const second = await request({ port: httpPort, path: "/two", headers: { host: "other.test" }, agent });
    assert.equal(second.socket, first.socket, "the same connection was kept alive");
    assert.equal(second.status, 403);
    const third = await request({ port: httpPort, path: "/three", headers: { host: "files.test" }, agent });
    assert.equal(third.status, 200);
  } finally {
    agent.destroy();
  }
});

test("CONNECT: an allowed host tunnels TLS; a refused host gets a 403; SNI for a refused host inside an allowed tunnel is reset", async () => {
  const ok = await connect(`files.test:${up.httpsPort}`);
  assert.equal(ok.status, 200);
  assert.equal(await tlsGet(ok.socket, "files.test", "files.test"), "files:GET /x host=files.test");
  const no = await connect(`other.test:${up.httpsPort}`);
  assert.equal(no.status, 403);
  assert.match(no.body, /default deny/);
  const fronted = await connect(`files.test:${up.httpsPort}`);
  assert.equal(fronted.status, 200);
  await assert.rejects(tlsGet(fronted.socket, "other.test", "other.test"));
  assert.ok(audit.some((e) => e.kind === "connect" && !e.allowed && /^sni other\.test/.test(e.rule)));
  const literal = await connect(`169.254.169.254:80`);
  assert.equal(literal.status, 403);
});

test("intercepted TLS: the SNI decides; a refused SNI and TLS without SNI are reset", async () => {
  const ok = net.connect(tlsPort, "127.0.0.1");
  assert.equal(await tlsGet(ok, "files.test", "files.test"), "files:GET /x host=files.test");
  await assert.rejects(tlsGet(net.connect(tlsPort, "127.0.0.1"), "other.test", "other.test"));
  await assert.rejects(tlsGet(net.connect(tlsPort, "127.0.0.1"), undefined, "files.test"));
  assert.ok(audit.some((e) => e.kind === "tls" && !e.allowed && e.rule === "tls without sni"));
  assert.equal(await rawOutcome(tlsPort, Buffer.from("GET / HTTP/1.0\r\n\r\n")), "reset", "not TLS");
});

test("oversized request headers get a 431 and the proxy still serves", async () => {
  const r = await request({
    port: proxyPort,
    path: `http://files.test:${up.httpPort}/`,
    headers: { host: `files.test:${up.httpPort}`, "x-big": "a".repeat(40_000) },
  });
  assert.equal(r.status, 431);
  const ok = await request({
    port: proxyPort,
    path: `http://files.test:${up.httpPort}/`,
    headers: { host: `files.test:${up.httpPort}` },
  });
  assert.equal(ok.status, 200);
});

test("connections beyond the cap are reset, and served again once others close", async () => {
  const held: Socket[] = [];
  while (egress.connections < 8) {
    const s = net.connect(proxyPort, "127.0.0.1");
    s.on("error", () => {});
    held.push(s);
    await new Promise((r) => s.once("connect", r));
    // Wait until the egress path has admitted it.
    for (let i = 0; i < 200 && egress.connections < held.length; i++)
      await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(await rawOutcome(proxyPort, Buffer.from("GET http://files.test/ HTTP/1.1\r\n\r\n")), "reset");
  assert.ok(audit.some((e) => e.rule === "limit connections"));
  for (const s of held) s.destroy();
  for (let i = 0; i < 500 && egress.connections >= 8; i++) await new Promise((r) => setTimeout(r, 10));
  const ok = await request({
    port: proxyPort,
    path: `http://files.test:${up.httpPort}/`,
    headers: { host: `files.test:${up.httpPort}` },
    agent: false,
  });
  assert.equal(ok.status, 200);
});

test("DNS: an allowed name gets a synthetic address, others NXDOMAIN, nothing is forwarded", () => {
  const ask = (name: string, type: "A" | "AAAA" = "A") =>
    (dnsPacket.decode as unknown as (b: Buffer) => dnsPacket.DecodedPacket & { rcode: string })(
      answerDns(
        dnsPacket.encode({
          type: "query",
          id: 7,
          flags: dnsPacket.RECURSION_DESIRED,
          questions: [{ type, name }],
        }),
        {
          policy,
          addressFor: () => "198.18.0.9",
          audit: (e) => audit.push(e),
        },
      )!,
    );
  const ok = ask("files.test");
  assert.equal(ok.rcode, "NOERROR");
  assert.equal(ok.id, 7);
  assert.deepEqual(
    ok.answers?.map((a) => (a as { data: string }).data),
    ["198.18.0.9"],
  );
  assert.equal(ask("files.test", "AAAA").answers?.length, 0);
  assert.equal(ask("other.test").rcode, "NXDOMAIN");
  const tunnel = `${"a1b2c3d4e5".repeat(6)}.${"f6g7h8".repeat(8)}.other.test`;
  assert.equal(ask(tunnel).rcode, "NXDOMAIN");
  assert.equal(
    answerDns(Buffer.from("not dns"), { policy, addressFor: () => "198.18.0.9", audit: () => {} }),
    undefined,
  );
  assert.ok(audit.some((e) => e.kind === "dns" && e.host === tunnel && !e.allowed));
  assert.ok(parseAddress("198.18.0.9"));
});

test("forward proxy: a run of requests to one server reuses one upstream connection; each request is still checked", async () => {
  const accepted: Socket[] = [];
  const server = http.createServer((req, res) => res.end(`seen ${req.url}`));
  server.on("connection", (s: Socket) => accepted.push(s));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.2", resolve));
  const port = (server.address() as AddressInfo).port;
  const allow = (rules: string[]) => new NetworkPolicy(resolveNetwork({ allow: rules }));
  const log: Omit<NetworkAuditEntry, "id">[] = [];
  const own = new Egress({
    policy: allow(["files.test", "127.0.0.2"]),
    resolver: new Resolver(parseHostMap({ "files.test": ["127.0.0.2"] })),
    audit: (e) => log.push(e),
  });
  const ownProxy = await listen((s) => own.proxy(s));
  const get = (path: string) =>
    request({
      port: ownProxy,
      path: `http://files.test:${port}${path}`,
      headers: { host: `files.test:${port}` },
      agent: false,
    });
  try {
    for (let i = 0; i < 5; i++) assert.equal((await get(`/r${i}`)).body, `seen /r${i}`);
    assert.equal(accepted.length, 1, "one upstream connection for five requests");
    assert.equal(log.filter((e) => e.allowed && e.kind === "http").length, 5, "each request audited");
    // The policy changes: the kept connection does not let a refused request through.
    own.policy = allow(["elsewhere.test"]);
    const refused = await get("/refused");
    assert.equal(refused.status, 403);
    assert.equal(log.at(-1)?.allowed, false);
    // A new way out empties the pool: the next request dials again.
    own.policy = allow(["files.test", "127.0.0.2"]);
    own.upstreamProxy = undefined;
    assert.equal((await get("/again")).body, "seen /again");
    assert.equal(accepted.length, 2);
  } finally {
    own.close();
    server.close();
    for (const s of accepted) s.destroy();
  }
});
