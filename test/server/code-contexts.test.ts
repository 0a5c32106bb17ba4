/**
 * Code contexts over REST and the client (`sandbox.codeContexts`): create,
 * run cells in, list, restart (state lost), remove; the errors of each, on a
 * virtual sandbox (its WASM Python). The real tiers' kernels behind the same
 * calls are in test/code/suite.ts.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { SandboxApi } from "../../src/client/api.ts";
import { KilnClient } from "../../src/client/index.ts";
import type { Execution } from "../../src/index.ts";
import { rejectsWithCode } from "../conformance/suite.ts";
import { assertError, body, type TestServer, testServer } from "./helpers.ts";

const mainText = (e: Execution) => e.results.find((r) => r.isMainResult)?.text;

let t: TestServer;
let client: KilnClient;
let sb: SandboxApi;

before(async () => {
  t = await testServer();
  client = await KilnClient.open({ url: t.server.url, apiKey: t.key });
  sb = await client.create({ tier: "virtual" });
});
after(async () => {
  await client?.close();
  await t?.dispose();
});

test("create, run in, list, restart and remove a context through the client", async () => {
  const ctx = await sb.codeContexts.create({ language: "python", id: "analysis" });
  assert.deepEqual({ id: ctx.id, language: ctx.language }, { id: "analysis", language: "python" });
  assert.equal(ctx.cwd, "/workspace");
  await sb.runCode("secret = 41", { context: ctx.id });
  assert.equal(mainText(await sb.runCode("secret + 1", { context: ctx.id })), "42");
  // The default context does not share it.
  const outside = await sb.runCode("'secret' in dir()");
  assert.equal(mainText(outside), "False");
  const listed = await sb.codeContexts.list();
  assert.ok(listed.some((c) => c.id === "analysis" && c.language === "python"));
  await sb.codeContexts.restart("analysis");
  const lost = await sb.runCode("secret", { context: "analysis" });
  assert.equal(lost.error?.name, "NameError");
  await sb.codeContexts.remove("analysis");
  assert.ok(!(await sb.codeContexts.list()).some((c) => c.id === "analysis"));
});

test("each call's errors: unknown context not_found, bad language or a taken id invalid_argument, js here unsupported", async () => {
  await rejectsWithCode(sb.codeContexts.restart("nosuch"), "not_found");
  await rejectsWithCode(sb.codeContexts.remove("nosuch"), "not_found");
  await rejectsWithCode(sb.codeContexts.create({ language: "cobol" }), "invalid_argument");
  await sb.codeContexts.create({ id: "taken" });
  await rejectsWithCode(sb.codeContexts.create({ id: "taken" }), "invalid_argument");
  await rejectsWithCode(sb.codeContexts.create({ id: "bad id!" }), "invalid_argument");
  // The virtual tier runs Python cells only: another language is refused at once, not left to time out.
  await rejectsWithCode(sb.codeContexts.create({ language: "js" }), "unsupported");
  assert.ok(
    !(await sb.codeContexts.list()).some((c) => c.language === "js"),
    "a refused context is not kept",
  );
});

test("REST: a create with no body is a python context with a fresh id; unknown fields are invalid_argument", async () => {
  const base = `/v1/sandboxes/${sb.id}/code/contexts`;
  const res = await t.req("POST", base);
  assert.equal(res.status, 201);
  const ctx = await body(Promise.resolve(res));
  assert.equal(ctx.language, "python");
  assert.match(ctx.id, /^[0-9a-f-]{36}$/);
  await assertError(
    await t.req("POST", base, { json: { language: "python", kernel: "x" } }),
    "invalid_argument",
    400,
  );
  assert.equal((await t.req("POST", `${base}/${ctx.id}/restart`)).status, 204);
  assert.equal((await t.req("DELETE", `${base}/${ctx.id}`)).status, 204);
  await assertError(await t.req("DELETE", `${base}/${ctx.id}`), "not_found", 404);
});
