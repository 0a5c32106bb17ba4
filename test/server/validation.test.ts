/** Bad input is `invalid_argument` (400) in the one error shape; unknown routes are `not_found`. */
import { after, before, test } from "node:test";
import { assertError, body, type TestServer, testServer } from "./helpers.ts";

let t: TestServer;
let id: string;

before(async () => {
  t = await testServer();
  id = (await body(t.req("POST", "/v1/sandboxes", { json: {} }))).id;
});
after(() => t.dispose());

test("malformed JSON and wrong content types", async () => {
  const raw = (body: string, type = "application/json") =>
    fetch(`${t.server.url}/v1/sandboxes`, {
      method: "POST",
      headers: { authorization: `Bearer ${t.key}`, "content-type": type },
      body,
    });
  await assertError(await raw("{not json"), "invalid_argument", 400);
  await assertError(await raw("[]"), "invalid_argument", 400);
  await assertError(await raw("{}", "text/plain"), "invalid_argument", 400);
});

test("bad fields", async () => {
  const bad = [
    { tier: "nope" },
    { limits: { memoryBytes: -1 } },
    { limits: { bogus: 1 } },
    { timeoutMs: "soon" },
    { unknownField: true },
    { metadata: { a: 1 } },
  ];
  for (const json of bad)
    await assertError(await t.req("POST", "/v1/sandboxes", { json }), "invalid_argument", 400);
  await assertError(
    await t.req("POST", `/v1/sandboxes/${id}/commands`, { json: {} }),
    "invalid_argument",
    400,
  );
  await assertError(
    await t.req("POST", `/v1/sandboxes/${id}/commands`, { json: { command: "true", env: { "A=B": "x" } } }),
    "invalid_argument",
    400,
  );
  await assertError(
    await t.req("POST", `/v1/sandboxes/${id}/timeout`, { json: { timeoutMs: -5 } }),
    "invalid_argument",
    400,
  );
});

test("bad parameters", async () => {
  await assertError(await t.req("GET", "/v1/sandboxes/not-an-id"), "invalid_argument", 400);
  await assertError(await t.req("GET", `/v1/sandboxes/${id}/files`), "invalid_argument", 400);
  await assertError(
    await t.req("GET", `/v1/sandboxes/${id}/files?path=../../etc/passwd`),
    "invalid_argument",
    400,
  );
  await assertError(
    await t.req("GET", `/v1/sandboxes/${id}/files/list?path=/workspace&depth=0`),
    "invalid_argument",
    400,
  );
  await assertError(await t.req("POST", `/v1/sandboxes/${id}/commands/abc/kill`), "invalid_argument", 400);
  await assertError(await t.req("GET", "/v1/sandboxes?state=zombie"), "invalid_argument", 400);
  await assertError(await t.req("GET", "/v1/sandboxes?metadata=novalue"), "invalid_argument", 400);
  await assertError(await t.req("GET", "/v1/tiers/bogus/capabilities"), "invalid_argument", 400);
});

test("state errors keep their codes", async () => {
  await assertError(await t.req("GET", `/v1/sandboxes/${id}/files?path=nope.txt`), "not_found", 404);
  await assertError(await t.req("GET", `/v1/sandboxes/${id}/commands/999999/events`), "not_found", 404);
  await assertError(await t.req("GET", "/v1/no-such-route"), "not_found", 404);
  await t.req("PUT", `/v1/sandboxes/${id}/files?path=f.txt`, { body: "x" });
  await t.req("POST", `/v1/sandboxes/${id}/files/mkdir`, { json: { path: "d" } });
  await assertError(
    await t.req("POST", `/v1/sandboxes/${id}/files/symlink`, { json: { target: "x", path: "f.txt" } }),
    "conflict",
    409,
  );
});
