/**
 * Sandbox ports through `kiln serve`'s host router, on a real tier
 * (namespace; skipped with its reason where it cannot run): the Host form
 * `{port}-{id}.{domain}` and the path form, HTTP, a streamed response and a
 * WebSocket, Kiln's credentials stripped before the sandbox sees the request,
 * the path form's cookie rule, per-port tokens, public ports, typed errors.
 * (Refusals between sandboxes and keys: test/hostile/ports-router.security.test.ts.)
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";
import { KilnClient } from "../../src/client/index.ts";
import type { Sandbox } from "../../src/index.ts";
import { type RunningServer, startServer } from "../../src/server/index.ts";
import { tierRequired } from "../conformance/suite.ts";
import { httpGet, loopbackLookup, startEchoServer } from "../ports/suite.ts";

const TIER = "namespace";
const DOMAIN = "kiln.test";

describe(`kiln serve: sandbox ports by Host and by path (${TIER})`, () => {
  let dataDir: string;
  let server: RunningServer;
  let key: string;
  let sb: Sandbox;
  let unavailable: string | undefined;
  /** `http://{port}-{id}.kiln.test:{serverPort}`; the name resolves to the server's loopback address. */
  let hostUrl: (port: number, path?: string) => string;

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "kiln-ports-serve-"));
    server = await startServer({ dataDir, port: 0, domain: DOMAIN });
    key = server.keys.create({ name: "alice" }).key;
    const status = (await server.kiln.doctor()).find((s) => s.tier === TIER);
    if (!status?.available) {
      unavailable = `tier ${TIER} unavailable: ${status?.reason}`;
      if (tierRequired(TIER)) throw new Error(`${unavailable} (required by KILN_REQUIRE_TIERS)`);
      console.log(`# SKIP ${unavailable}`);
      return;
    }
    const res = await fetch(`${server.url}/v1/sandboxes`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ tier: TIER }),
    });
    assert.equal(res.status, 201);
    const info = (await res.json()) as { id: string; ports: unknown };
    assert.deepEqual(info.ports, { expose: "all", public: [] });
    sb = await server.kiln.connect(info.id);
    await startEchoServer(sb, 8000);
    hostUrl = (port, path = "/") => `http://${port}-${info.id}.${DOMAIN}:${server.port}${path}`;
  });

  after(async () => {
    await server?.close(1000);
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  const it = (name: string, fn: () => Promise<void>) =>
    test(name, async (t) => {
      if (unavailable) return t.skip(unavailable);
      await fn();
    });
  const get = (url: string, o: Parameters<typeof httpGet>[1] = {}) =>
    httpGet(url, { connectTo: "127.0.0.1", ...o });

  it("the Host form reaches the sandbox's server with the owner's key, which the server never sees", async () => {
    const r = await get(hostUrl(8000, "/headers?a=1"), {
      headers: {
        authorization: `Bearer ${key}`,
        "x-api-key": key,
        cookie: "kiln_session=secret; app=keep; KilnOther=x",
        "x-custom": "passes",
      },
    });
    assert.equal(r.status, 200);
    const seen = JSON.parse(r.body.toString()) as { path: string; headers: [string, string][] };
    const headers = new Map(seen.headers.map(([k, v]) => [k.toLowerCase(), v]));
    assert.equal(seen.path, "/headers?a=1");
    assert.equal(headers.get("x-custom"), "passes", "positive control: other headers pass");
    assert.equal(headers.get("cookie"), "app=keep", "the app's own cookie passes, Kiln's do not");
    assert.equal(headers.get("host"), `8000-${sb.id}.${DOMAIN}:${server.port}`);
    assert.equal(headers.get("x-forwarded-for")?.includes("127.0.0.1"), true);
    for (const h of ["authorization", "x-api-key"])
      assert.equal(headers.has(h), false, `${h} must be stripped`);
    assert.equal(r.body.includes(key), false, "the key appears nowhere in what the sandbox received");
    // The connection is in the sandbox's audit log once it has closed (the proxy closes it after the response).
    const deadline = Date.now() + 30_000;
    let entry: Awaited<ReturnType<Sandbox["networkLogs"]>>[number] | undefined;
    while (!entry && Date.now() < deadline) {
      entry = (await sb.networkLogs()).find((e) => e.kind === "inbound" && e.path === "/headers?a=1");
      if (!entry) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.ok(entry, "an inbound entry for the request");
    assert.equal(entry.port, 8000);
    assert.equal(entry.method, "GET");
    assert.equal(entry.rule, "owner key");
    assert.equal(entry.allowed, true);
    assert.ok(entry.bytesUp >= r.body.length, "the response's bytes came up from the sandbox");
    assert.ok(entry.bytesDown > 0);
  });

  it("a per-port token opens that port (header or query, stripped before forwarding)", async () => {
    const res = await fetch(`${server.url}/v1/sandboxes/${sb.id}/ports/8000/token`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}` },
    });
    assert.equal(res.status, 201);
    const t = (await res.json()) as { token: string; host: string; pathUrl: string; expiresAt: string };
    assert.equal(t.host, `8000-${sb.id}.${DOMAIN}`);
    assert.ok(t.expiresAt);
    const byHeader = await get(hostUrl(8000, "/headers"), { headers: { "x-kiln-port-token": t.token } });
    assert.equal(byHeader.status, 200);
    assert.equal(byHeader.body.includes(t.token), false);
    const byQuery = await get(hostUrl(8000, `/headers?x=1&kiln_token=${encodeURIComponent(t.token)}`));
    assert.equal(byQuery.status, 200);
    assert.equal((JSON.parse(byQuery.body.toString()) as { path: string }).path, "/headers?x=1");
    const viaPath = await httpGet(t.pathUrl);
    assert.equal(viaPath.status, 200);
    assert.equal(viaPath.body.toString(), "hello from the sandbox");
  });

  it("the path form: the same server; responses drop Set-Cookie and carry a CSP sandbox", async () => {
    const auth = { authorization: `Bearer ${key}` };
    const path = await httpGet(`${server.url}/v1/sandboxes/${sb.id}/ports/8000/proxy/cookie`, {
      headers: auth,
    });
    assert.equal(path.status, 200);
    assert.equal(path.body.toString(), "cookie set");
    assert.equal(path.headers["set-cookie"], undefined);
    assert.match(String(path.headers["content-security-policy"]), /^sandbox /);
    // Positive control: on its own origin (the Host form) the app's cookie is the app's business.
    const host = await get(hostUrl(8000, "/cookie"), { headers: auth });
    assert.deepEqual(host.headers["set-cookie"], ["app=1; Path=/"]);
    const bare = await httpGet(`${server.url}/v1/sandboxes/${sb.id}/ports/8000/proxy`, { headers: auth });
    assert.equal(bare.body.toString(), "hello from the sandbox");
  });

  it("a streamed response passes chunk by chunk", async () => {
    const gate = `/tmp/gate-${randomBytes(4).toString("hex")}`;
    const text = await new Promise<string>((resolve, reject) => {
      const req = request(
        hostUrl(8000, `/stream?gate=${gate}`),
        {
          headers: { authorization: `Bearer ${key}` },
          lookup: loopbackLookup("127.0.0.1") as never,
        },
        (res) => {
          let got = "";
          res.setEncoding("utf8");
          res.on("data", (d: string) => {
            got += d;
            if (got === "first\n") sb.files.write(gate, "open").catch(reject);
          });
          res.on("end", () => resolve(got));
        },
      );
      req.on("error", reject);
      req.end();
    });
    assert.equal(text, "first\nlast\n");
  });

  it("a WebSocket echoes through the Host form (token in the query) and the path form (key header)", async () => {
    const t = (await (
      await fetch(`${server.url}/v1/sandboxes/${sb.id}/ports/8000/token`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify({ ttlMs: 0 }),
      })
    ).json()) as { token: string; expiresAt: string | null };
    assert.equal(t.expiresAt, null);
    const echo = async (ws: WebSocket) => {
      await new Promise((resolve, reject) => {
        ws.once("open", resolve);
        ws.once("error", reject);
        ws.once("unexpected-response", (_req, res) => {
          let body = "";
          res.on("data", (d) => {
            body += d;
          });
          res.on("end", () => reject(new Error(`status ${res.statusCode}: ${body}`)));
        });
      });
      const got = new Promise<string>((resolve) => ws.once("message", (m) => resolve(String(m))));
      ws.send("hello over ws");
      assert.equal(await got, "hello over ws");
      ws.close();
    };
    await echo(
      new WebSocket(hostUrl(8000, `/ws?kiln_token=${encodeURIComponent(t.token)}`).replace(/^http/, "ws"), {
        lookup: loopbackLookup("127.0.0.1") as never,
      }),
    );
    await echo(
      new WebSocket(`ws://127.0.0.1:${server.port}/v1/sandboxes/${sb.id}/ports/8000/proxy/ws`, {
        headers: { authorization: `Bearer ${key}` },
      }),
    );
  });

  it("typed errors: nothing listening is 502 port_closed, an unexposed port 404, a virtual sandbox 501", async () => {
    const auth = { authorization: `Bearer ${key}` };
    const closed = await get(hostUrl(8009), { headers: auth });
    assert.equal(closed.status, 502);
    assert.equal(JSON.parse(closed.body.toString()).error.code, "port_closed");
    const patch = await fetch(`${server.url}/v1/sandboxes/${sb.id}/ports`, {
      method: "PATCH",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ expose: [8000] }),
    });
    assert.equal(patch.status, 200);
    try {
      const hidden = await get(hostUrl(8001), { headers: auth });
      assert.equal(hidden.status, 404);
      assert.equal(JSON.parse(hidden.body.toString()).error.code, "not_found");
      assert.equal((await get(hostUrl(8000), { headers: auth })).status, 200, "positive control");
    } finally {
      await fetch(`${server.url}/v1/sandboxes/${sb.id}/ports`, {
        method: "PATCH",
        headers: { ...auth, "content-type": "application/json" },
        body: JSON.stringify({ expose: "all" }),
      });
    }
    const v = await fetch(`${server.url}/v1/sandboxes`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ tier: "virtual" }),
    });
    const vid = ((await v.json()) as { id: string }).id;
    const unsupported = await httpGet(`${server.url}/v1/sandboxes/${vid}/ports/8000/proxy/`, {
      headers: auth,
    });
    assert.equal(unsupported.status, 501);
    assert.equal(JSON.parse(unsupported.body.toString()).error.code, "unsupported");
    const bad = await fetch(`${server.url}/v1/sandboxes/${sb.id}/ports`, {
      method: "PATCH",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ public: [0] }),
    });
    assert.equal(bad.status, 400);
  });

  it("the client SDK: getHost, the policy and a token that opens the port", async () => {
    const client = await KilnClient.open({ url: server.url, apiKey: key });
    try {
      const remote = await client.connect(sb.id);
      assert.equal(await remote.getHost(8000), `8000-${sb.id}.${DOMAIN}`);
      assert.deepEqual(await remote.ports.policy(), { expose: "all", public: [] });
      const t = await remote.ports.token(8000, { ttlMs: 60_000 });
      const r = await get(hostUrl(8000), { headers: { "x-kiln-port-token": t.token } });
      assert.equal(r.status, 200);
      await assert.rejects(
        remote.ports.update({ expose: [0] }),
        (e: { code?: string }) => e.code === "invalid_argument",
      );
      const closed = await get(hostUrl(8009), { headers: { authorization: `Bearer ${key}` } });
      assert.equal(JSON.parse(closed.body.toString()).error.port, 8009);
    } finally {
      await client.close();
    }
  });

  it("a public port needs no credentials; the other ports still do", async () => {
    const auth = { authorization: `Bearer ${key}`, "content-type": "application/json" };
    assert.equal((await get(hostUrl(8000))).status, 401, "not public yet");
    await fetch(`${server.url}/v1/sandboxes/${sb.id}/ports`, {
      method: "PATCH",
      headers: auth,
      body: JSON.stringify({ public: [8000] }),
    });
    try {
      const open = await get(hostUrl(8000));
      assert.equal(open.status, 200);
      assert.equal(open.body.toString(), "hello from the sandbox");
      const other = await get(hostUrl(8009));
      assert.equal(other.status, 401);
      assert.equal(JSON.parse(other.body.toString()).error.code, "unauthenticated");
    } finally {
      await fetch(`${server.url}/v1/sandboxes/${sb.id}/ports`, {
        method: "PATCH",
        headers: auth,
        body: JSON.stringify({ public: [] }),
      });
    }
  });

  // Last: it shuts the server down.
  it("shutting the server down ends a WebSocket open to a sandbox port", async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/v1/sandboxes/${sb.id}/ports/8000/proxy/ws`, {
      headers: { authorization: `Bearer ${key}` },
    });
    await new Promise((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
    });
    const closed = new Promise((resolve) => ws.once("close", resolve));
    // Would never resolve if the upgraded connection kept the server open (safety net: the test's timeout).
    await server.close(1000);
    await closed;
  });
});
