/** Authentication: every endpoint but the OpenAPI document needs a valid, unrevoked key. */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { KeyStore } from "../../src/server/index.ts";
import { assertError, body, request, type TestServer, testServer } from "./helpers.ts";

let t: TestServer;
let sandboxId: string;
let paths: { method: string; path: string }[];

before(async () => {
  t = await testServer();
  sandboxId = (await body(t.req("POST", "/v1/sandboxes", { json: {} }))).id;
  const doc = await body(fetch(`${t.server.url}/v1/openapi.json`));
  paths = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([p, ops]) =>
    Object.keys(ops).map((method) => ({
      method: method.toUpperCase(),
      path: p.replace("{id}", sandboxId).replace("{pid}", "1").replace("{tier}", "virtual"),
    })),
  );
});
after(() => t.dispose());

test("the OpenAPI document needs no key", async () => {
  assert.equal((await fetch(`${t.server.url}/v1/openapi.json`)).status, 200);
});

test("no key: 401 unauthenticated on every endpoint", async () => {
  assert.ok(paths.length >= 20);
  for (const p of paths)
    await assertError(await t.req(p.method, p.path, { key: null }), "unauthenticated", 401);
});

test("a wrong key: 401 on every endpoint", async () => {
  const forged = `${t.key.slice(0, -4)}AAAA`;
  for (const key of [forged, "nonsense", `kiln_key_000000000000_${"A".repeat(43)}`]) {
    for (const p of paths) await assertError(await t.req(p.method, p.path, { key }), "unauthenticated", 401);
  }
});

test("Authorization: Bearer and X-API-Key are both accepted", async () => {
  assert.equal((await t.req("GET", "/v1/sandboxes")).status, 200);
  const res = await fetch(`${t.server.url}/v1/sandboxes`, { headers: { "x-api-key": t.key } });
  assert.equal(res.status, 200);
  const basic = await fetch(`${t.server.url}/v1/sandboxes`, { headers: { authorization: `Basic ${t.key}` } });
  await assertError(basic, "unauthenticated", 401);
});

test("a revoked key: 401 on the next request, on every endpoint", async () => {
  const { key, info } = t.server.keys.create({ name: "short-lived" });
  assert.equal((await request(t.server.url, "GET", "/v1/sandboxes", { key })).status, 200);
  t.server.keys.revoke(info.id);
  for (const p of paths) await assertError(await t.req(p.method, p.path, { key }), "unauthenticated", 401);
  assert.equal((await t.req("GET", "/v1/sandboxes")).status, 200, "other keys keep working");
});

test("a key revoked by another process (`kiln keys revoke`): 401 on the next request", async () => {
  const { key, info } = t.server.keys.create({ name: "revoked-elsewhere" });
  // Verified (and remembered) first, so that the revocation must invalidate what the server holds.
  assert.equal((await request(t.server.url, "GET", "/v1/sandboxes", { key })).status, 200);
  assert.equal((await request(t.server.url, "GET", "/v1/sandboxes", { key })).status, 200);
  const other = new KeyStore(t.dataDir);
  try {
    other.revoke(info.id);
  } finally {
    other.close();
  }
  await assertError(await t.req("GET", "/v1/sandboxes", { key }), "unauthenticated", 401);
  assert.equal((await t.req("GET", "/v1/sandboxes")).status, 200, "other keys keep working");
});
