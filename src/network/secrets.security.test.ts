/**
 * Secrets through the egress path, on loopback: the sandbox (this test, as a
 * client trusting only the sandbox's CA for intercepted hosts) holds a
 * placeholder; the real value reaches only the secret's host, in the
 * headers it may go in, over TLS that Kiln terminates with the sandbox's CA
 * and re-opens with the upstream's certificate verified; echoing servers
 * cannot hand it back; fronting another Host behind the SNI, plain HTTP and
 * other headers are refused. `files.test` (127.0.0.2) is the secret's host,
 * `other.test` (127.0.0.3) is not, `evil.test` (127.0.0.4) is a secret's host
 * whose certificate no trusted CA signed.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import net, { type AddressInfo, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import tls from "node:tls";
import { makeTestCertificates } from "../../test/network/test-ca.ts";
import type { NetworkAuditEntry } from "../core/types.ts";
import { SandboxCa } from "./ca.ts";
import { Egress } from "./egress.ts";
import { NetworkPolicy, resolveNetwork } from "./policy.ts";
import { parseHostMap, Resolver } from "./resolver.ts";
import { makeHeaderRule, makeSecret, ScrubStream } from "./secrets.ts";

const VALUE = "sk-live-0123456789abcdef-the-real-one";
const secret = makeSecret("API_KEY", {
  value: VALUE,
  hosts: ["files.test", "evil.test"],
  headers: ["authorization"],
});
const PH = secret.placeholder;
const HEADER_VALUE = "hdr-0123456789-host-side-only";
const audit: Omit<NetworkAuditEntry, "id">[] = [];
const servers: Server[] = [];
/** Every request head the upstreams saw, as text. */
const seen: string[] = [];
let dir: string;
let ca: SandboxCa;
let egress: Egress;
let port: number;
let tlsPort: number;
let proxyPort: number;
let httpPort: number;

/** An upstream that echoes the request's headers in its body and in a response header. */
const echo: http.RequestListener = (req, res) => {
  const head = JSON.stringify(req.headers);
  seen.push(head);
  req.resume();
  res.setHeader("x-echo", String(req.headers.authorization ?? ""));
  res.end(`echo ${head}`);
};

async function listen(server: Server, host: string, p = 0): Promise<number> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(p, host, resolve));
  return (server.address() as AddressInfo).port;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "kiln-secrets-"));
  const good = makeTestCertificates(["files.test", "other.test"]);
  const bad = makeTestCertificates(["evil.test"]);
  writeFileSync(join(dir, "upstream-ca.pem"), good.ca);
  process.env.KILN_NETWORK_EXTRA_CA = join(dir, "upstream-ca.pem");
  port = await listen(https.createServer({ key: good.key, cert: good.cert }, echo), "127.0.0.2");
  await listen(https.createServer({ key: good.key, cert: good.cert }, echo), "127.0.0.3", port);
  await listen(https.createServer({ key: bad.key, cert: bad.cert }, echo), "127.0.0.4", port);
  httpPort = await listen(http.createServer(echo), "127.0.0.3");
  ca = SandboxCa.open(join(dir, "ca"));
  egress = new Egress({
    policy: new NetworkPolicy(
      resolveNetwork({
        allow: ["files.test", "other.test", "evil.test", "127.0.0.2/32", "127.0.0.3/32", "127.0.0.4/32"],
      }),
    ),
    resolver: new Resolver(
      parseHostMap({ "files.test": ["127.0.0.2"], "other.test": ["127.0.0.3"], "evil.test": ["127.0.0.4"] }),
    ),
    audit: (e) => audit.push(e),
    secrets: [secret],
    headerRules: [makeHeaderRule("files.test", { "X-Token": HEADER_VALUE })],
    ca,
  });
  tlsPort = await listen(
    net.createServer((s) => egress.tls(s, { port })),
    "127.0.0.1",
  );
  proxyPort = await listen(
    net.createServer((s) => egress.proxy(s)),
    "127.0.0.1",
  );
});

after(() => {
  egress.close();
  for (const s of servers) s.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** An HTTPS request as a sandbox makes it, over `socket` (already at the TLS layer's start). */
function over(
  socket: () => Socket,
  sni: string,
  headers: Record<string, string>,
  trust = [ca.certPem],
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        method: "GET",
        path: "/p",
        headers,
        agent: Object.assign(new https.Agent(), {
          createConnection: () => tls.connect({ socket: socket(), servername: sni, ca: trust }),
        }),
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (d: string) => {
          body += d;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

/** A request through an intercepted TLS connection (port 443 of a name Kiln's DNS gave). */
const intercepted = (sni: string, headers: Record<string, string>, trust?: string[]) =>
  over(() => net.connect(tlsPort, "127.0.0.1"), sni, headers, trust);

/** A request through a CONNECT tunnel of the proxy to `authority`. */
async function tunnelled(authority: string, sni: string, headers: Record<string, string>, trust?: string[]) {
  const raw = net.connect(proxyPort, "127.0.0.1");
  await new Promise<void>((resolve, reject) => {
    raw.once("error", reject);
    raw.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
    raw.once("data", (d: Buffer) =>
      d.toString().startsWith("HTTP/1.1 200") ? resolve() : reject(new Error(d.toString())),
    );
  });
  return over(() => raw, sni, headers, trust);
}

test("the secret reaches its host in place of the placeholder; echoes come back as the placeholder", async () => {
  seen.length = 0;
  for (const send of [
    () => intercepted("files.test", { host: "files.test", authorization: `Bearer ${PH}` }),
    () =>
      tunnelled(`files.test:${port}`, "files.test", { host: "files.test", authorization: `Bearer ${PH}` }),
  ]) {
    const r = await send();
    assert.equal(r.status, 200);
    assert.ok(!r.body.includes(VALUE), "the echoed body holds no value");
    assert.ok(
      !r.body.includes(HEADER_VALUE) && r.body.includes("[x-token set by Kiln]"),
      "nor the rule's header",
    );
    assert.ok(r.body.includes(`Bearer ${PH}`), "the echo shows the placeholder");
    assert.equal(r.headers["x-echo"], `Bearer ${PH}`);
  }
  assert.equal(seen.length, 2);
  for (const head of seen) {
    assert.equal(JSON.parse(head).authorization, `Bearer ${VALUE}`, "the host got the value");
    assert.equal(JSON.parse(head)["x-token"], HEADER_VALUE, "the header rule set its header");
  }
  assert.ok(
    audit.some(
      (e) => e.host === "files.test" && e.allowed && e.rule.endsWith("secret API_KEY; headers files.test"),
    ),
  );
});

test("a body split anywhere is scrubbed", async () => {
  for (let cut = 1; cut < VALUE.length; cut += 7) {
    const s = new ScrubStream([secret]);
    const out: Buffer[] = [];
    s.on("data", (c: Buffer) => out.push(c));
    const text = `a${VALUE}b${VALUE}`;
    s.write(Buffer.from(text.slice(0, cut)));
    s.end(Buffer.from(text.slice(cut)));
    await new Promise((r) => s.once("end", r));
    assert.equal(Buffer.concat(out).toString(), `a${PH}b${PH}`);
  }
});

test("the placeholder to another host gets no value: plain HTTP is refused, TLS carries only the placeholder", async () => {
  seen.length = 0;
  const plain = await new Promise<Answer>((resolve, reject) => {
    http
      .get(
        {
          host: "127.0.0.1",
          port: proxyPort,
          path: `http://other.test:${httpPort}/x`,
          headers: { host: `other.test:${httpPort}`, authorization: `Bearer ${PH}` },
        },
        (res) => {
          let body = "";
          res.setEncoding("utf8").on("data", (d: string) => {
            body += d;
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        },
      )
      .on("error", reject);
  });
  assert.equal(plain.status, 403);
  assert.match(plain.body, /secret API_KEY over plain http/);
  // other.test is not intercepted: its own certificate, and it sees the placeholder only.
  const passthrough = await intercepted("other.test", { host: "other.test", authorization: `Bearer ${PH}` }, [
    readFileSync(process.env.KILN_NETWORK_EXTRA_CA!, "utf8"),
  ]);
  assert.equal(passthrough.status, 200);
  assert.equal(seen.length, 1);
  assert.equal(JSON.parse(seen[0]!).authorization, `Bearer ${PH}`);
  assert.ok(seen.every((h) => !h.includes(VALUE)));
  assert.ok(audit.some((e) => !e.allowed && e.rule === "secret API_KEY over plain http"));
});

test("fronting another Host behind the SNI, other headers and a tunnel with another SNI are refused; a positive control goes through", async () => {
  seen.length = 0;
  const fronted = await intercepted("files.test", { host: "other.test", authorization: `Bearer ${PH}` });
  assert.equal(fronted.status, 403);
  assert.match(fronted.body, /host other\.test is not the sni files\.test/);
  const header = await intercepted("files.test", { host: "files.test", "x-api-key": PH });
  assert.equal(header.status, 403);
  assert.match(header.body, /secret API_KEY not for files\.test/);
  await assert.rejects(
    tunnelled(`files.test:${port}`, "other.test", { host: "other.test", authorization: `Bearer ${PH}` }),
    "a tunnel to files.test with TLS for other.test is cut",
  );
  assert.equal(seen.length, 0, "nothing reached an upstream");
  const ok = await intercepted("files.test", { host: "files.test", authorization: `Bearer ${PH}` });
  assert.equal(ok.status, 200, "positive control");
});

test("a secret's host whose certificate no trusted CA signed gets nothing", async () => {
  seen.length = 0;
  const r = await intercepted("evil.test", { host: "evil.test", authorization: `Bearer ${PH}` });
  assert.equal(r.status, 502);
  assert.match(r.body, /upstream certificate refused/);
  assert.equal(seen.length, 0);
  assert.ok(
    audit.some((e) => e.host === "evil.test" && !e.allowed && e.rule.includes("certificate refused")),
  );
});
