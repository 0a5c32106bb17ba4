/** Admission: per-key quotas (a key's own or the server's default) and the host's budget, as `limit_exceeded` naming the limit. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { KilnClient } from "../../src/client/index.ts";
import { Kiln } from "../../src/index.ts";
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

test("a key without its own quota gets the server's default quota, on REST and E2B alike", async () => {
  const s = await testServer({ serve: { keyQuota: { maxSandboxes: 1 } } });
  try {
    assert.equal((await s.req("POST", "/v1/sandboxes", { json: {} })).status, 201);
    const err = await assertError(await s.req("POST", "/v1/sandboxes", { json: {} }), "limit_exceeded", 429);
    assert.equal(err.limit, "maxSandboxes");
    assert.equal(err.value, 1);
    // The E2B API's create goes through the same admission.
    const e2b = await fetch(`${s.server.url}/v2/sandboxes`, {
      method: "POST",
      headers: { "x-api-key": s.key, "content-type": "application/json" },
      body: JSON.stringify({}),
    });
    // E2B's REST table answers limit_exceeded with 400 (src/e2b/errors.ts); nothing was created.
    assert.equal(e2b.status, 400, await e2b.text());
    assert.equal((await body(s.req("GET", "/v1/sandboxes"))).length, 1);
    // A key with its own quota is not held to the default.
    const big = s.server.keys.create({ name: "big", maxSandboxes: 3 }).key;
    for (let i = 0; i < 3; i++)
      assert.equal(
        (await request(s.server.url, "POST", "/v1/sandboxes", { key: big, json: {} })).status,
        201,
      );
  } finally {
    await s.dispose();
  }
});

test("the host's budget caps every key together: limit_exceeded naming hostMaxSandboxes / hostMaxMemoryBytes", async () => {
  const s = await testServer({ serve: { budget: { maxSandboxes: 3, maxMemoryBytes: 1000 * MiB } } });
  try {
    const other = s.server.keys.create({ name: "other" }).key;
    const mk = (key: string, memoryBytes = 100 * MiB) =>
      request(s.server.url, "POST", "/v1/sandboxes", { key, json: { limits: { memoryBytes } } });
    const mine = await body(mk(s.key, 600 * MiB));
    const e1 = await assertError(await mk(other, 500 * MiB), "limit_exceeded", 429);
    assert.equal(e1.limit, "hostMaxMemoryBytes");
    assert.equal((await mk(other)).status, 201);
    assert.equal((await mk(other)).status, 201);
    const e2 = await assertError(await mk(s.key), "limit_exceeded", 429);
    assert.equal(e2.limit, "hostMaxSandboxes");
    assert.equal(e2.value, 3);
    // A kill makes room; concurrent creates past the budget never overshoot it.
    assert.equal((await s.req("DELETE", `/v1/sandboxes/${mine.id}`)).status, 204);
    const results = await Promise.all(Array.from({ length: 5 }, () => mk(s.key)));
    assert.equal(results.filter((r) => r.status === 201).length, 1);
    for (const r of results.filter((r) => r.status !== 201)) await assertError(r, "limit_exceeded", 429);
  } finally {
    await s.dispose();
  }
});

test("the library's Kiln enforces the same budget (no server involved)", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-budget-"));
  const kiln = await Kiln.open({ dataDir, admission: { host: { maxSandboxes: 2 } } });
  try {
    const settled = await Promise.allSettled(Array.from({ length: 4 }, () => kiln.create()));
    assert.equal(settled.filter((r) => r.status === "fulfilled").length, 2);
    for (const r of settled) if (r.status === "rejected") assert.equal(r.reason.limit, "hostMaxSandboxes");
    for (const r of settled) if (r.status === "fulfilled") await r.value.kill();
    await (await kiln.create()).kill();
  } finally {
    await kiln.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
