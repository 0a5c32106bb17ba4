/**
 * Hostile cases for the server's own resources, against a real `kiln serve`
 * (REST, the E2B API through the unmodified `e2b` SDK and raw, envd, MCP):
 *  - every endpoint has a body limit: a larger body is a 413 `limit_exceeded`,
 *    refused without being read whole;
 *  - metadata, env and labels have size limits (400 `invalid_argument`);
 *  - lists are paged (`limit` + `nextToken`, E2B's shape).
 * The attack this keeps fixed: six creates with huge metadata were accepted,
 * after which the attacker's own list failed and every other key's list was
 * slow. Now they are refused and every list stays correct.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Sandbox } from "e2b";
import { type RunningServer, startServer } from "../../src/server/index.ts";

const MiB = 1024 * 1024;

/** What a request got: a response, or its connection cut before it was answered. */
type Outcome = { status: number; body: string; sentBytes: number } | { cut: true; sentBytes: number };

/**
 * Sends a JSON object whose `metadata.pad` (or the field `field`) is `padBytes` long, streamed in
 * 64 KiB chunks (with a Content-Length unless `chunked`), and resolves at the response (or the cut).
 */
function sendHuge(
  url: string,
  path: string,
  headers: Record<string, string>,
  padBytes: number,
  options: { chunked?: boolean; prefix?: string; suffix?: string } = {},
): Promise<Outcome> {
  const prefix = options.prefix ?? '{"metadata":{"pad":"';
  const suffix = options.suffix ?? '"}}';
  const total = prefix.length + padBytes + suffix.length;
  const chunk = Buffer.alloc(64 * 1024, "a");
  const u = new URL(url);
  return new Promise((resolve) => {
    let sent = 0;
    let done = false;
    const finish = (o: Outcome) => {
      if (!done) {
        done = true;
        resolve(o);
      }
    };
    const req = httpRequest({
      host: u.hostname,
      port: u.port,
      path,
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...(options.chunked ? {} : { "content-length": String(total) }),
        ...headers,
      },
    });
    req.on("response", (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d) => {
        body += d;
      });
      res.on("end", () => finish({ status: res.statusCode ?? 0, body, sentBytes: sent }));
      res.on("error", () => finish({ status: res.statusCode ?? 0, body, sentBytes: sent }));
      // Stop sending: the server has answered.
      done || req.destroyed || setImmediate(() => req.destroy());
    });
    req.on("error", () => finish({ cut: true, sentBytes: sent }));
    req.write(prefix);
    sent += prefix.length;
    const pump = () => {
      while (!done && !req.destroyed && sent < prefix.length + padBytes) {
        const n = Math.min(chunk.length, prefix.length + padBytes - sent);
        sent += n;
        if (!req.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
          req.once("drain", pump);
          return;
        }
      }
      if (!done && !req.destroyed) {
        sent += suffix.length;
        req.end(suffix);
      }
    };
    pump();
  });
}

/** Asserts an outcome is a refusal before the whole body was taken: a 413 with `code`, or a cut. */
function assertRefused(o: Outcome, total: number, shape: "kiln" | "e2b", what: string): void {
  if ("cut" in o) {
    assert.ok(o.sentBytes < total, `${what}: the connection was cut only after the whole body`);
    return;
  }
  assert.equal(o.status, 413, `${what}: HTTP ${o.status} ${o.body.slice(0, 200)}`);
  const body = JSON.parse(o.body);
  if (shape === "kiln") assert.equal(body.error.code, "limit_exceeded", what);
  else assert.equal(body.code, 413, what);
}

describe("body limits, size limits and paged lists (kiln serve)", { timeout: 300_000 }, () => {
  let dataDir: string;
  let server: RunningServer;
  let attacker: string;
  let victim: string;
  const victimIds: string[] = [];

  const e2b = (apiKey: string) => ({ apiUrl: server.url, sandboxUrl: server.url, apiKey });
  const api = async (method: string, path: string, key: string, json?: unknown) => {
    const res = await fetch(server.url + path, {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...(json !== undefined ? { "content-type": "application/json" } : {}),
      },
      ...(json !== undefined ? { body: JSON.stringify(json) } : {}),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, json: text ? JSON.parse(text) : undefined };
  };

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "kiln-hostile-body-"));
    server = await startServer({ dataDir, port: 0, graceMs: 1000 });
    attacker = server.keys.create({ name: "attacker" }).key;
    victim = server.keys.create({ name: "victim" }).key;
    for (let i = 0; i < 5; i++) {
      const r = await api("POST", "/v1/sandboxes", victim, { metadata: { n: String(i) } });
      assert.equal(r.status, 201);
      victimIds.push(r.json.id);
    }
  });
  after(async () => {
    await server?.close(500);
    rmSync(dataDir, { recursive: true, force: true });
  });

  test("body-huge-metadata-creates: six creates with 16 MiB of metadata are refused; every list stays correct", async () => {
    const pad = 16 * MiB;
    const total = pad + 32;
    const auth = { authorization: `Bearer ${attacker}` };
    const e2bAuth = { "x-api-key": attacker };
    const outcomes: [Outcome, "kiln" | "e2b", string][] = [];
    outcomes.push([await sendHuge(server.url, "/v1/sandboxes", auth, pad), "kiln", "REST create"]);
    outcomes.push([
      await sendHuge(server.url, "/v1/sandboxes", auth, pad, { chunked: true }),
      "kiln",
      "REST chunked",
    ]);
    outcomes.push([await sendHuge(server.url, "/v1/sandboxes", auth, pad), "kiln", "REST create again"]);
    outcomes.push([await sendHuge(server.url, "/v2/sandboxes", e2bAuth, pad), "e2b", "E2B create"]);
    outcomes.push([
      await sendHuge(server.url, "/v2/sandboxes", e2bAuth, pad, { chunked: true }),
      "e2b",
      "E2B chunked",
    ]);
    outcomes.push([await sendHuge(server.url, "/v2/sandboxes", e2bAuth, pad), "e2b", "E2B create again"]);
    for (const [o, shape, what] of outcomes) assertRefused(o, total, shape, what);

    // Nothing was created; the attacker's list works; the victim's list is exactly its own.
    const mine = await api("GET", "/v1/sandboxes", attacker);
    assert.equal(mine.status, 200);
    assert.deepEqual(mine.json, []);
    const theirs = await api("GET", "/v1/sandboxes", victim);
    assert.equal(theirs.status, 200);
    assert.deepEqual(theirs.json.map((s: { id: string }) => s.id).sort(), [...victimIds].sort());
    const viaE2b = await Sandbox.list({ ...e2b(victim) }).nextItems();
    assert.deepEqual(viaE2b.map((s) => s.sandboxId).sort(), [...victimIds].sort());
  });

  test("body-limit-every-endpoint: a 2 MiB JSON body is a 413 on REST, E2B, envd and MCP", async () => {
    const pad = 2 * MiB;
    const auth = { authorization: `Bearer ${attacker}` };
    const own = await api("POST", "/v1/sandboxes", attacker, {});
    assert.equal(own.status, 201);
    const id = own.json.id as string;
    const bg = await api("POST", `/v1/sandboxes/${id}/commands`, attacker, {
      command: "sleep 60",
      background: true,
      openStdin: true,
    });
    assert.equal(bg.status, 201);
    const kilnPaths = [
      `/v1/sandboxes/${id}/commands`,
      `/v1/sandboxes/${id}/code`,
      `/v1/sandboxes/${id}/timeout`,
      `/v1/sandboxes/${id}/files/mkdir`,
      `/v1/sandboxes/${id}/commands/${bg.json.pid}/stdin`,
    ];
    for (const path of kilnPaths) {
      const o = await sendHuge(server.url, path, auth, pad, { prefix: '{"x":"', suffix: '"}' });
      assertRefused(o, pad + 8, "kiln", path);
    }
    const mcp = await sendHuge(
      server.url,
      "/mcp",
      { ...auth, accept: "application/json, text/event-stream" },
      pad,
      {
        prefix: '{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"',
        suffix: '"}}',
      },
    );
    assertRefused(mcp, pad + 64, "kiln", "/mcp");
    const e2bAuth = { "x-api-key": attacker };
    const connect = await sendHuge(server.url, `/v2/sandboxes/${id}/connect`, e2bAuth, pad, {
      prefix: '{"x":"',
      suffix: '"}',
    });
    assertRefused(connect, pad + 8, "e2b", "E2B connect");
    // envd's Connect RPC, with the sandbox's own valid token.
    const sb = await Sandbox.connect(id, { apiUrl: server.url, sandboxUrl: server.url, apiKey: attacker });
    const token = (sb as unknown as { envdAccessToken: string }).envdAccessToken;
    const rpc = await sendHuge(
      server.url,
      "/process.Process/List",
      { "e2b-sandbox-id": id, "x-access-token": token, "connect-protocol-version": "1" },
      pad,
      { prefix: '{"x":"', suffix: '"}' },
    );
    if (!("cut" in rpc)) assert.equal(rpc.status, 413, rpc.body.slice(0, 200));
    // The sandbox is fine afterwards.
    assert.equal((await sb.commands.run("echo ok")).stdout, "ok\n");
    await api("DELETE", `/v1/sandboxes/${id}`, attacker);
  });

  test("body-size-limits: metadata, env and labels over their limits are 400 invalid_argument", async () => {
    const big = "x".repeat(64 * 1024);
    const cases: [string, unknown][] = [
      ["a huge metadata value", { metadata: { k: big } }],
      ["a huge metadata key", { metadata: { [big]: "v" } }],
      [
        "too many metadata keys",
        { metadata: Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`k${i}`, "v"])) },
      ],
      ["a huge env value", { env: { A: "x".repeat(512 * 1024) } }],
      [
        "too many env keys",
        { env: Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`K${i}`, "v"])) },
      ],
    ];
    for (const [what, json] of cases) {
      const r = await api("POST", "/v1/sandboxes", attacker, json);
      assert.equal(r.status, 400, `${what}: HTTP ${r.status}`);
      assert.equal(r.json.error.code, "invalid_argument", what);
    }
    // A label filter as large as a metadata value is refused the same way.
    const filter = await api("GET", `/v1/sandboxes?metadata=k=${"x".repeat(6000)}`, attacker);
    assert.equal(filter.status, 400);
    assert.equal(filter.json.error.code, "invalid_argument");
    // The E2B API: the same limits, in its shape (400), through the SDK.
    await assert.rejects(
      Sandbox.create({ apiUrl: server.url, sandboxUrl: server.url, apiKey: attacker, metadata: { k: big } }),
      (e: { statusCode?: number }) => e.statusCode === 400,
    );
    await assert.rejects(
      Sandbox.create({
        apiUrl: server.url,
        sandboxUrl: server.url,
        apiKey: attacker,
        envs: { A: "x".repeat(512 * 1024) },
      }),
      (e: { statusCode?: number }) => e.statusCode === 400,
    );
    // Per-command env too.
    const own = await api("POST", "/v1/sandboxes", attacker, {});
    const run = await api("POST", `/v1/sandboxes/${own.json.id}/commands`, attacker, {
      command: "true",
      env: { A: "x".repeat(512 * 1024) },
    });
    assert.equal(run.status, 400);
    assert.equal(run.json.error.code, "invalid_argument");
    assert.deepEqual((await api("GET", "/v1/sandboxes", attacker)).json.length, 1);
    await api("DELETE", `/v1/sandboxes/${own.json.id}`, attacker);
  });

  test("body-list-paged: REST and E2B lists come in pages of `limit`, each sandbox once", async () => {
    const seen: string[] = [];
    let next: string | null = null;
    let pages = 0;
    do {
      const q: string = `limit=2${next ? `&nextToken=${encodeURIComponent(next)}` : ""}`;
      const r = await api("GET", `/v1/sandboxes?${q}`, victim);
      assert.equal(r.status, 200);
      assert.ok(r.json.length <= 2);
      seen.push(...r.json.map((s: { id: string }) => s.id));
      next = r.headers.get("x-next-token");
      pages++;
      assert.ok(pages <= 5, "paging ends");
    } while (next);
    assert.equal(pages, 3);
    assert.deepEqual([...seen].sort(), [...victimIds].sort(), "each sandbox once");
    const bad = await api("GET", "/v1/sandboxes?limit=100000", victim);
    assert.equal(bad.status, 400);
    // E2B, through the SDK's paginator.
    const paginator = Sandbox.list({ ...e2b(victim), limit: 2 });
    const e2bSeen: string[] = [];
    while (paginator.hasNext) e2bSeen.push(...(await paginator.nextItems()).map((s) => s.sandboxId));
    assert.deepEqual(e2bSeen.sort(), [...victimIds].sort());
  });
});
