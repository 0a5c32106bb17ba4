/**
 * Key isolation: key B gets exactly `not_found` for key A's sandbox on every
 * endpoint that names a sandbox, and A's sandbox is untouched afterwards.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { KilnClient } from "../../src/client/index.ts";
import { rejectsWithCode } from "../conformance/suite.ts";
import { assertError, body, request, type TestServer, testServer } from "./helpers.ts";

let t: TestServer;
let keyB: string;
let idA: string;
let pidA: number;
let expiresA: string | null;

/** A request for every sandbox endpoint (`{id}` in the path), valid apart from whose sandbox it is. */
const SAMPLES: Record<string, { json?: unknown; body?: string; query?: string }> = {
  "GET /v1/sandboxes/{id}": {},
  "DELETE /v1/sandboxes/{id}": {},
  "POST /v1/sandboxes/{id}/lifetime": { json: { lifetimeMs: 1 } },
  "POST /v1/sandboxes/{id}/timeout": { json: { timeoutMs: 1 } },
  "POST /v1/sandboxes/{id}/move": { json: { tier: "virtual" } },
  "GET /v1/sandboxes/{id}/logs": {},
  "GET /v1/sandboxes/{id}/stats": {},
  "GET /v1/sandboxes/{id}/files": { query: "path=secret.txt" },
  "PUT /v1/sandboxes/{id}/files": { query: "path=secret.txt", body: "overwritten" },
  "DELETE /v1/sandboxes/{id}/files": { query: "path=secret.txt" },
  "GET /v1/sandboxes/{id}/files/list": { query: "path=/workspace" },
  "GET /v1/sandboxes/{id}/files/stat": { query: "path=secret.txt" },
  "GET /v1/sandboxes/{id}/files/watch": { query: "path=/workspace" },
  "POST /v1/sandboxes/{id}/files/mkdir": { json: { path: "intruder" } },
  "POST /v1/sandboxes/{id}/files/rename": { json: { from: "secret.txt", to: "stolen.txt" } },
  "POST /v1/sandboxes/{id}/files/symlink": { json: { target: "secret.txt", path: "ln" } },
  "GET /v1/sandboxes/{id}/files/tar": { query: "path=/workspace" },
  "PUT /v1/sandboxes/{id}/files/tar": { query: "path=/workspace", body: "" },
  "POST /v1/sandboxes/{id}/commands": { json: { command: "rm -rf /workspace/*" } },
  "GET /v1/sandboxes/{id}/commands": {},
  "GET /v1/sandboxes/{id}/commands/{pid}/events": {},
  "POST /v1/sandboxes/{id}/commands/{pid}/stdin": { json: { data: "x", close: true } },
  "POST /v1/sandboxes/{id}/commands/{pid}/kill": {},
  "POST /v1/sandboxes/{id}/commands/{pid}/resize": { json: { cols: 80, rows: 24 } },
  "POST /v1/sandboxes/{id}/code": { json: { code: "print(1)" } },
  "POST /v1/sandboxes/{id}/code/contexts": { json: { language: "python" } },
  "GET /v1/sandboxes/{id}/code/contexts": {},
  "POST /v1/sandboxes/{id}/code/contexts/{context}/restart": {},
  "DELETE /v1/sandboxes/{id}/code/contexts/{context}": {},
  "POST /v1/sandboxes/{id}/snapshots": { json: { name: "stolen" } },
  "POST /v1/sandboxes/{id}/fork": { json: { count: 1 } },
  "POST /v1/sandboxes/{id}/pause": {},
  "POST /v1/sandboxes/{id}/resume": {},
  "GET /v1/sandboxes/{id}/network-logs": {},
  "GET /v1/sandboxes/{id}/network": {},
  "PUT /v1/sandboxes/{id}/network": { json: { egress: "all" } },
  "GET /v1/sandboxes/{id}/ports": {},
  "PATCH /v1/sandboxes/{id}/ports": { json: { public: [8080] } },
  "POST /v1/sandboxes/{id}/ports/{port}/token": { json: {} },
};

before(async () => {
  t = await testServer();
  keyB = t.server.keys.create({ name: "B" }).key;
  const a = await body(t.req("POST", "/v1/sandboxes", { json: { metadata: { team: "a" } } }));
  idA = a.id;
  expiresA = a.expiresAt;
  assert.equal(
    (await t.req("PUT", `/v1/sandboxes/${idA}/files?path=secret.txt`, { body: "A's" })).status,
    200,
  );
  const bg = await t.req("POST", `/v1/sandboxes/${idA}/commands`, {
    json: { command: "sleep 60", background: true, openStdin: true },
  });
  pidA = (await body(bg)).pid;
});
after(() => t.dispose());

test("every sandbox endpoint in the OpenAPI document is covered here", async () => {
  const doc = await body(fetch(`${t.server.url}/v1/openapi.json`));
  const named = Object.entries(doc.paths as Record<string, object>).flatMap(([p, ops]) =>
    p.includes("{id}") ? Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`) : [],
  );
  assert.deepEqual(named.sort(), Object.keys(SAMPLES).sort());
});

test("key B gets not_found for key A's sandbox on every endpoint", async () => {
  for (const [route, sample] of Object.entries(SAMPLES)) {
    const [method, pattern] = route.split(" ") as [string, string];
    const path =
      pattern
        .replace("{id}", idA)
        .replace("{pid}", String(pidA))
        .replace("{port}", "8080")
        .replace("{context}", "default") + (sample.query ? `?${sample.query}` : "");
    const res = await request(t.server.url, method, path, {
      key: keyB,
      ...(sample.json !== undefined ? { json: sample.json } : {}),
      ...(sample.body !== undefined ? { body: sample.body } : {}),
    });
    const err = await assertError(res, "not_found", 404);
    assert.ok(!JSON.stringify(err).includes("owner"), `${route} must not reveal ownership`);
  }
  // The same answer as for a sandbox that does not exist.
  await assertError(
    await request(t.server.url, "GET", "/v1/sandboxes/sb_00000000000000000000", { key: keyB }),
    "not_found",
    404,
  );
});

test("key A's sandbox is untouched, and invisible to B's list", async () => {
  assert.equal(await (await t.req("GET", `/v1/sandboxes/${idA}/files?path=secret.txt`)).text(), "A's");
  const running = await body(t.req("GET", `/v1/sandboxes/${idA}/commands`));
  assert.ok(running.some((p: { pid: number }) => p.pid === pidA));
  const info = await body(t.req("GET", `/v1/sandboxes/${idA}`));
  // B's `timeout: 1` did not reach it.
  assert.equal(info.expiresAt, expiresA);
  const listB = await body(request(t.server.url, "GET", "/v1/sandboxes", { key: keyB }));
  assert.deepEqual(listB, []);
  const listA = await body(t.req("GET", "/v1/sandboxes"));
  assert.deepEqual(
    listA.map((s: { id: string }) => s.id),
    [idA],
  );
});

test("ownership cannot be seen or forged through metadata", async () => {
  const info = await body(t.req("GET", `/v1/sandboxes/${idA}`));
  assert.deepEqual(info.metadata, { team: "a" });
  await assertError(
    await request(t.server.url, "POST", "/v1/sandboxes", {
      key: keyB,
      json: { metadata: { "kiln.owner": "x" } },
    }),
    "invalid_argument",
    400,
  );
  await assertError(
    await request(t.server.url, "GET", "/v1/sandboxes?metadata=kiln.owner%3Dx", { key: keyB }),
    "invalid_argument",
    400,
  );
});

test("through the client: the same not_found", async () => {
  const b = await KilnClient.open({ url: t.server.url, apiKey: keyB });
  await rejectsWithCode(b.connect(idA), "not_found");
  await rejectsWithCode(b.kill(idA), "not_found");
  assert.deepEqual(await b.list(), []);
});

test("snapshots: key B cannot see, restore or delete key A's, nor fork A's sandbox", async () => {
  const snap = await body(t.req("POST", `/v1/sandboxes/${idA}/snapshots`, { json: { name: "a-only" } }));
  assert.match(snap.id, /^snap_/);
  assert.deepEqual(snap.metadata, { team: "a" });
  const asB = (method: string, path: string, json?: unknown) =>
    request(t.server.url, method, path, { key: keyB, ...(json !== undefined ? { json } : {}) });
  await assertError(await asB("GET", `/v1/snapshots/${snap.id}`), "not_found", 404);
  await assertError(await asB("DELETE", `/v1/snapshots/${snap.id}`), "not_found", 404);
  await assertError(await asB("POST", "/v1/sandboxes", { snapshot: snap.id }), "not_found", 404);
  // The same answer as for a snapshot that does not exist.
  await assertError(await asB("GET", "/v1/snapshots/snap_00000000000000000000"), "not_found", 404);
  assert.deepEqual(await body(asB("GET", "/v1/snapshots")), []);
  const listA = await body(t.req("GET", "/v1/snapshots"));
  assert.deepEqual(
    listA.map((s: { id: string }) => s.id),
    [snap.id],
  );
  // A restores its own: the copy is A's, with A's file.
  const copy = await body(t.req("POST", "/v1/sandboxes", { json: { snapshot: snap.id } }));
  assert.equal(await (await t.req("GET", `/v1/sandboxes/${copy.id}/files?path=secret.txt`)).text(), "A's");
  assert.equal((await t.req("DELETE", `/v1/sandboxes/${copy.id}`)).status, 204);
  assert.equal((await t.req("DELETE", `/v1/snapshots/${snap.id}`)).status, 204);
  await assertError(await t.req("GET", `/v1/snapshots/${snap.id}`), "not_found", 404);
});

test("volumes: key B cannot see, mount or delete key A's; names are per key", async () => {
  const vol = await body(t.req("POST", "/v1/volumes", { json: { name: "data", metadata: { team: "a" } } }));
  assert.match(vol.id, /^vol_[a-z0-9]{20}$/);
  assert.deepEqual(vol.metadata, { team: "a" });
  const asB = (method: string, path: string, json?: unknown) =>
    request(t.server.url, method, path, { key: keyB, ...(json !== undefined ? { json } : {}) });
  await assertError(await asB("GET", `/v1/volumes/${vol.id}`), "not_found", 404);
  await assertError(await asB("GET", "/v1/volumes/data"), "not_found", 404);
  await assertError(await asB("DELETE", `/v1/volumes/${vol.id}`), "not_found", 404);
  for (const ref of [vol.id, "data"])
    await assertError(
      await asB("POST", "/v1/sandboxes", { tier: "namespace", volumes: [{ volume: ref, path: "/mnt/a" }] }),
      "not_found",
      404,
    );
  // The same answer as for a volume that does not exist.
  await assertError(await asB("GET", "/v1/volumes/vol_00000000000000000000"), "not_found", 404);
  assert.deepEqual(await body(asB("GET", "/v1/volumes")), []);
  // B's own volume may have the same name; each key sees its own.
  const own = await body(asB("POST", "/v1/volumes", { name: "data" }));
  assert.notEqual(own.id, vol.id);
  await assertError(await t.req("POST", "/v1/volumes", { json: { name: "data" } }), "conflict", 409);
  await assertError(
    await t.req("POST", "/v1/volumes", { json: { name: "x", metadata: { "kiln.owner": "B" } } }),
    "invalid_argument",
    400,
  );
  assert.deepEqual(
    (await body(t.req("GET", "/v1/volumes"))).map((v: { id: string }) => v.id),
    [vol.id],
  );
  assert.equal((await body(t.req("GET", "/v1/volumes/data"))).id, vol.id);
  assert.equal((await asB("DELETE", `/v1/volumes/${own.id}`)).status, 204);
  assert.equal((await t.req("DELETE", `/v1/volumes/${vol.id}`)).status, 204);
  await assertError(await t.req("GET", `/v1/volumes/${vol.id}`), "not_found", 404);
});

test("volumes through the client: create, list, get by name, remove; the other key sees none", async () => {
  const a = await KilnClient.open({ url: t.server.url, apiKey: t.key });
  const b = await KilnClient.open({ url: t.server.url, apiKey: keyB });
  const v = await a.createVolume("client-made", { metadata: { purpose: "test" } });
  assert.deepEqual(v.metadata, { purpose: "test" });
  await rejectsWithCode(a.createVolume("client-made"), "conflict");
  assert.equal((await a.volumeInfo("client-made")).id, v.id);
  assert.deepEqual(
    (await a.volumes({ metadata: { purpose: "test" } })).map((x) => x.id),
    [v.id],
  );
  await rejectsWithCode(b.volumeInfo(v.id), "not_found");
  await rejectsWithCode(b.removeVolume(v.id), "not_found");
  assert.deepEqual(await b.volumes(), []);
  await a.removeVolume(v.id);
  await rejectsWithCode(a.volumeInfo(v.id), "not_found");
});
