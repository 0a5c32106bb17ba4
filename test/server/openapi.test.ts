/** The OpenAPI document is true: it lists exactly the served routes, and responses match its schemas. */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { OPENAPI_PATH } from "../../src/server/index.ts";
import {
  AuditEntrySchema,
  CapabilitiesSchema,
  EntryInfoSchema,
  ErrorSchema,
  SandboxInfoSchema,
  StreamEventSchema,
  TierStatusSchema,
} from "../../src/server/schemas.ts";
import { body, type TestServer, testServer } from "./helpers.ts";

let t: TestServer;
let doc: { openapi: string; paths: Record<string, Record<string, { responses: Record<string, unknown> }>> };

before(async () => {
  t = await testServer();
  doc = await body(fetch(t.server.url + OPENAPI_PATH));
});
after(() => t.dispose());

test("every served route is in the document, and every documented route is served", () => {
  const served = t.server.app.routes
    .filter((r) => r.method !== "ALL" && r.path !== OPENAPI_PATH)
    .map((r) => `${r.method} ${r.path.replace(/:(\w+)/g, "{$1}")}`);
  const documented = Object.entries(doc.paths).flatMap(([p, ops]) =>
    Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`),
  );
  assert.deepEqual([...new Set(served)].sort(), documented.sort());
  assert.equal(doc.openapi, "3.1.0");
  for (const ops of Object.values(doc.paths))
    for (const op of Object.values(ops))
      assert.ok(op.responses.default, "every operation documents its error shape");
});

test("responses validate against their schemas", async () => {
  const info = SandboxInfoSchema.parse(
    await body(t.req("POST", "/v1/sandboxes", { json: { metadata: { a: "b" } } })),
  );
  const base = `/v1/sandboxes/${info.id}`;
  SandboxInfoSchema.array().parse(await body(t.req("GET", "/v1/sandboxes")));
  EntryInfoSchema.parse(await body(t.req("PUT", `${base}/files?path=x.txt`, { body: "hi" })));
  EntryInfoSchema.array().parse(await body(t.req("GET", `${base}/files/list?path=/workspace`)));
  TierStatusSchema.array().parse(await body(t.req("GET", "/v1/doctor")));
  CapabilitiesSchema.parse(await body(t.req("GET", "/v1/tiers/virtual/capabilities")));
  const stream = await t.req("POST", `${base}/commands`, { json: { command: "echo a; echo b >&2; exit 2" } });
  assert.equal(stream.headers.get("content-type"), "application/x-ndjson");
  const lines = (await stream.text()).trim().split("\n");
  for (const l of lines) StreamEventSchema.parse(JSON.parse(l));
  AuditEntrySchema.array().parse(await body(t.req("GET", `${base}/logs`)));
  ErrorSchema.parse(await body(t.req("GET", `${base}/files?path=missing`)));
  ErrorSchema.parse(await body(t.req("GET", "/v1/sandboxes", { key: null })));
});
