/**
 * Hostile callers of the host router (`kiln serve`), on a real tier
 * (namespace; skipped with its reason where it cannot run). Two owners, one
 * sandbox each, both serving port 8000; every refusal has a positive control
 * in the same sandbox:
 *  - no credential is 401; another owner's key, a token of another sandbox or
 *    port, an expired token, a revoked key's token, a deleted sandbox's
 *    token: all the 404 an unknown sandbox gets, before the port is even tried;
 *  - a sandbox's Host never reaches Kiln's API or dashboard;
 *  - a process inside a sandbox cannot reach kiln serve (its loopback is its own).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { Sandbox } from "../../src/index.ts";
import { type RunningServer, startServer } from "../../src/server/index.ts";
import { serverTokens } from "../../src/server/tokens.ts";
import { tierRequired } from "../conformance/suite.ts";
import { httpGet, startEchoServer } from "../ports/suite.ts";

const TIER = "namespace";
const DOMAIN = "kiln.test";

describe(`host router: refusals between sandboxes and keys (${TIER})`, () => {
  let dataDir: string;
  let server: RunningServer;
  const keys: Record<"alice" | "bob", { id: string; key: string }> = {} as never;
  let a: Sandbox;
  let b: Sandbox;
  let unavailable: string | undefined;

  const create = async (who: "alice" | "bob"): Promise<Sandbox> => {
    const res = await fetch(`${server.url}/v1/sandboxes`, {
      method: "POST",
      headers: { authorization: `Bearer ${keys[who].key}`, "content-type": "application/json" },
      body: JSON.stringify({ tier: TIER }),
    });
    assert.equal(res.status, 201);
    const sb = await server.kiln.connect(((await res.json()) as { id: string }).id);
    await startEchoServer(sb, 8000);
    return sb;
  };
  /** GET `path` on `port` of `sb` by Host, with `headers`; status and error code. */
  const viaHost = async (
    sb: Sandbox | string,
    port: number,
    headers: Record<string, string> = {},
    path = "/",
  ) => {
    const id = typeof sb === "string" ? sb : sb.id;
    const r = await httpGet(`http://${port}-${id}.${DOMAIN}:${server.port}${path}`, {
      headers,
      connectTo: "127.0.0.1",
    });
    return { status: r.status, body: r.body.toString(), code: codeOf(r.body) };
  };
  const viaPath = async (sb: Sandbox, port: number, headers: Record<string, string> = {}) => {
    const r = await httpGet(`${server.url}/v1/sandboxes/${sb.id}/ports/${port}/proxy/`, { headers });
    return { status: r.status, body: r.body.toString(), code: codeOf(r.body) };
  };
  const bearer = (who: "alice" | "bob") => ({ authorization: `Bearer ${keys[who].key}` });
  const token = async (who: "alice" | "bob", sb: Sandbox, port: number): Promise<string> => {
    const res = await fetch(`${server.url}/v1/sandboxes/${sb.id}/ports/${port}/token`, {
      method: "POST",
      headers: bearer(who),
    });
    assert.equal(res.status, 201);
    return ((await res.json()) as { token: string }).token;
  };

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "kiln-ports-hostile-"));
    server = await startServer({ dataDir, port: 0, domain: DOMAIN });
    for (const who of ["alice", "bob"] as const) {
      const k = server.keys.create({ name: who });
      keys[who] = { id: k.info.id, key: k.key };
    }
    const status = (await server.kiln.doctor()).find((s) => s.tier === TIER);
    if (!status?.available) {
      unavailable = `tier ${TIER} unavailable: ${status?.reason}`;
      if (tierRequired(TIER)) throw new Error(`${unavailable} (required by KILN_REQUIRE_TIERS)`);
      console.log(`# SKIP ${unavailable}`);
      return;
    }
    [a, b] = await Promise.all([create("alice"), create("bob")]);
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

  it("no credential is 401 on both forms; the owner's key opens the same port", async () => {
    const none = await viaHost(a, 8000);
    assert.equal(none.status, 401);
    assert.equal(none.code, "unauthenticated");
    assert.equal((await viaPath(a, 8000)).code, "unauthenticated");
    assert.equal((await viaHost(a, 8000, bearer("alice"))).body, "hello from the sandbox");
    assert.equal((await viaPath(a, 8000, bearer("alice"))).body, "hello from the sandbox");
  });

  it("another owner's key gets exactly what an unknown sandbox gets (404), on both forms", async () => {
    const theirs = await viaHost(b, 8000, bearer("alice"));
    const unknown = await viaHost("sb_00000000000000000000", 8000, bearer("alice"));
    assert.equal(theirs.status, 404);
    assert.equal(theirs.code, "not_found");
    assert.equal(unknown.status, 404);
    assert.equal(unknown.code, "not_found");
    assert.equal((await viaPath(b, 8000, bearer("alice"))).status, 404);
    // Positive control: bob reaches his own.
    assert.equal((await viaHost(b, 8000, bearer("bob"))).body, "hello from the sandbox");
  });

  it("a token is good for its sandbox and port only, and refusing it says nothing about the port", async () => {
    const t = await token("alice", a, 8000);
    const tok = { "x-kiln-port-token": t };
    assert.equal((await viaHost(a, 8000, tok)).status, 200, "positive control");
    assert.equal((await viaHost(b, 8000, tok)).status, 404, "another sandbox");
    const otherPort = await viaHost(a, 8009, tok);
    assert.equal(otherPort.status, 404, "another port: refused before the (closed) port is tried");
    assert.equal(otherPort.code, "not_found");
    assert.equal((await viaHost(a, 8000, { "x-kiln-port-token": `${t}x` })).status, 404, "a forged token");
    // An expired token, made by the server's own token service.
    const expired = serverTokens(server.kiln, server.keys).issue(await a.info(), "port:8000", Date.now() - 1);
    assert.equal((await viaHost(a, 8000, { "x-kiln-port-token": expired })).status, 404);
    // Bob cannot mint a token for alice's sandbox.
    const res = await fetch(`${server.url}/v1/sandboxes/${a.id}/ports/8000/token`, {
      method: "POST",
      headers: bearer("bob"),
    });
    assert.equal(res.status, 404);
  });

  it("a sandbox's Host never reaches Kiln's API or dashboard", async () => {
    for (const path of ["/v1/sandboxes", "/", "/v1/openapi.json", "/mcp"]) {
      const r = await viaHost(a, 8000, bearer("alice"), path);
      assert.equal(r.body, "hello from the sandbox", `${path} is the sandbox's own`);
    }
    // Positive control: the API's own host answers the API.
    const api = await httpGet(`${server.url}/v1/sandboxes`, { headers: bearer("alice") });
    assert.equal(api.status, 200);
    assert.ok(JSON.parse(api.body.toString()).some((s: { id: string }) => s.id === a.id));
  });

  it("a process inside a sandbox cannot reach kiln serve; it reaches its own port", async () => {
    const probe = (port: number) =>
      `python3 -c "import socket; s=socket.socket(); s.settimeout(5); print('open' if s.connect_ex(('127.0.0.1', ${port}))==0 else 'refused')"`;
    assert.equal((await a.commands.run(probe(8000))).stdout.trim(), "open", "positive control");
    assert.equal((await a.commands.run(probe(server.port))).stdout.trim(), "refused");
  });

  it("deleting a sandbox ends its tokens; revoking a key ends its tokens", async () => {
    const tb = await token("bob", b, 8000);
    assert.equal((await viaHost(b, 8000, { "x-kiln-port-token": tb })).status, 200, "positive control");
    const del = await fetch(`${server.url}/v1/sandboxes/${b.id}`, {
      method: "DELETE",
      headers: bearer("bob"),
    });
    assert.ok(del.status < 300);
    assert.equal((await viaHost(b, 8000, { "x-kiln-port-token": tb })).status, 404);
    const ta = await token("alice", a, 8000);
    assert.equal((await viaHost(a, 8000, { "x-kiln-port-token": ta })).status, 200, "positive control");
    server.keys.revoke(keys.alice.id);
    assert.equal((await viaHost(a, 8000, { "x-kiln-port-token": ta })).status, 404);
    assert.equal((await viaHost(a, 8000, bearer("alice"))).status, 404);
  });
});

function codeOf(body: Buffer): string | undefined {
  try {
    return (JSON.parse(body.toString()) as { error?: { code?: string } }).error?.code;
  } catch {
    return undefined;
  }
}
