/** Per-key quotas: live sandbox count and total memoryBytes, as `limit_exceeded` naming the quota. */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { KilnClient } from "../../src/client/index.ts";
import { rejectsWithCode } from "../conformance/suite.ts";
import { assertError, body, request, type TestServer, testServer } from "./helpers.ts";

const MiB = 1024 * 1024;
let t: TestServer;

before(async () => {
  t = await testServer({ key: { maxSandboxes: 2, maxMemoryBytes: 600 * MiB } });
});
after(() => t.dispose());

test("maxSandboxes: the next create is limit_exceeded (429); a kill makes room", async () => {
  const mk = () => t.req("POST", "/v1/sandboxes", { json: { limits: { memoryBytes: 100 * MiB } } });
  const a = await body(mk());
  assert.equal((await mk()).status, 201);
  const err = await assertError(await mk(), "limit_exceeded", 429);
  assert.equal(err.limit, "maxSandboxes");
  assert.equal(err.value, 2);
  assert.equal((await t.req("DELETE", `/v1/sandboxes/${a.id}`)).status, 204);
  assert.equal((await mk()).status, 201);
  for (const s of await body(t.req("GET", "/v1/sandboxes"))) await t.req("DELETE", `/v1/sandboxes/${s.id}`);
});

test("maxMemoryBytes: the sum of live sandboxes' memoryBytes is capped", async () => {
  const client = await KilnClient.open({ url: t.server.url, apiKey: t.key });
  const a = await client.create({ limits: { memoryBytes: 400 * MiB } });
  const e = await rejectsWithCode(client.create({ limits: { memoryBytes: 300 * MiB } }), "limit_exceeded");
  assert.equal(e.limit, "maxMemoryBytes");
  const b = await client.create({ limits: { memoryBytes: 200 * MiB } });
  await a.kill();
  await b.kill();
});

test("concurrent creates cannot overshoot the quota", async () => {
  const results = await Promise.all(
    Array.from({ length: 6 }, () =>
      t.req("POST", "/v1/sandboxes", { json: { limits: { memoryBytes: MiB } } }),
    ),
  );
  assert.equal(results.filter((r) => r.status === 201).length, 2);
  for (const r of results.filter((r) => r.status !== 201)) await assertError(r, "limit_exceeded", 429);
  for (const s of await body(t.req("GET", "/v1/sandboxes"))) await t.req("DELETE", `/v1/sandboxes/${s.id}`);
});

test("quotas are per key", async () => {
  const other = t.server.keys.create({ name: "other", maxSandboxes: 0 }).key;
  await assertError(
    await request(t.server.url, "POST", "/v1/sandboxes", { key: other, json: {} }),
    "limit_exceeded",
    429,
  );
  assert.equal((await t.req("POST", "/v1/sandboxes", { json: {} })).status, 201);
});
