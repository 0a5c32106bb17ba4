/**
 * Property-based test of the REST schemas against a real in-process server:
 * every operation of the OpenAPI document, with random and hostile JSON
 * bodies, query strings and path parameters. Whatever arrives, the answer is
 * never a 5xx and every error is the one error shape with a known code. Known
 * cases are replayed from `corpus/rest.json`.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import fc from "fast-check";
import { body, type TestServer, testServer } from "../server/helpers.ts";
import { loadCorpus } from "./corpus.ts";

interface Req {
  method: string;
  path: string;
  body?: unknown;
  raw?: string;
  query?: Record<string, string>;
}
const corpus = (loadCorpus("rest.json") as { requests: Req[] }).requests;
const CODES = new Set([
  "not_found",
  "invalid_argument",
  "timeout",
  "limit_exceeded",
  "tier_unavailable",
  "conflict",
  "aborted",
  "sandbox_stopped",
  "unsupported",
  "unauthenticated",
]);

let t: TestServer;
let ops: { method: string; path: string }[];
let sandboxId: string;

before(async () => {
  t = await testServer();
  const doc = await body(t.req("GET", "/v1/openapi.json"));
  ops = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([path, methods]) =>
    Object.keys(methods).map((m) => ({ method: m.toUpperCase(), path })),
  );
  assert.ok(ops.length > 20, "the OpenAPI document lists the operations");
  // The doctor takes no input and probes every tier (seconds): once is enough.
  await send({ method: "GET", path: "/v1/doctor", query: { x: "\0" } }, "1");
  ops = ops.filter((o) => o.path !== "/v1/doctor");
  sandboxId = (await body(t.req("POST", "/v1/sandboxes", { json: {} }))).id;
});
after(() => t.dispose());

/** Keeps one live sandbox to aim at, and removes the ones the fuzzer created. */
async function tidy(): Promise<void> {
  const list = await t.req("GET", "/v1/sandboxes");
  const text = await list.text();
  assert.equal(list.status, 200, `the list broke: ${text.slice(0, 300)}`);
  const all = JSON.parse(text) as { id: string }[];
  for (const s of all) if (s.id !== sandboxId) await t.req("DELETE", `/v1/sandboxes/${s.id}`);
  if (!all.some((s) => s.id === sandboxId))
    sandboxId = (await body(t.req("POST", "/v1/sandboxes", { json: {} }))).id;
}

async function send(r: Req, pid: string): Promise<void> {
  let url = r.path.replace("{id}", encodeURIComponent(sandboxId)).replace("{pid}", encodeURIComponent(pid));
  url = url.replace("{tier}", "virtual");
  if (r.query) url += `?${new URLSearchParams(r.query)}`;
  const headers: Record<string, string> = { authorization: `Bearer ${t.key}` };
  let payload: string | undefined;
  if (r.raw !== undefined || r.body !== undefined) {
    headers["content-type"] = "application/json";
    payload = r.raw ?? JSON.stringify(r.body);
  }
  let res: Response;
  let text: string;
  try {
    res = await fetch(t.server.url + url, {
      method: r.method,
      headers,
      ...(payload !== undefined && r.method !== "GET" ? { body: payload } : {}),
      // Safety net: a stream the fuzzer opened (a command waiting on stdin) is not a failure.
      signal: AbortSignal.timeout(10_000),
    });
    // The dashboard's event stream never ends: its status and headers are what is under test.
    if (res.headers.get("content-type")?.includes("text/event-stream")) {
      await res.body?.cancel();
      text = "";
    } else text = await res.text();
  } catch (e) {
    if ((e as Error).name === "TimeoutError") return;
    throw e;
  }
  const where = `${r.method} ${url} ${payload ?? ""}`.slice(0, 400);
  assert.ok(res.status < 500, `HTTP ${res.status} for ${where}: ${text.slice(0, 300)}`);
  if (res.status >= 400) {
    const err = JSON.parse(text).error;
    assert.ok(CODES.has(err?.code), `bad error body for ${where}: ${text.slice(0, 300)}`);
    assert.equal(typeof err.message, "string");
  }
}

const hostileString = fc.oneof(
  fc.constantFrom(
    "",
    "\0",
    "A=B",
    "../..",
    "/",
    "/workspace",
    "virtual",
    "python",
    "echo hi",
    "x".repeat(5000),
  ),
  fc.string({ maxLength: 12 }),
);
const hostileNumber = fc.oneof(
  fc.constantFrom(0, -1, 1, 1.5, 2 ** 31 + 1, 2 ** 53, 1e20, 1e300, Number.MAX_VALUE, 4096, 4097),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);
const scalar = fc.oneof(hostileString, hostileNumber, fc.boolean(), fc.constant(null));
const FIELDS = [
  "tier",
  "template",
  "env",
  "cwd",
  "metadata",
  "timeoutMs",
  "lifetimeMs",
  "limits",
  "command",
  "stdin",
  "stdinBase64",
  "background",
  "openStdin",
  "pty",
  "path",
  "from",
  "to",
  "target",
  "cols",
  "rows",
  "data",
  "dataBase64",
  "close",
  "code",
  "language",
  "context",
  "memoryBytes",
  "diskBytes",
  "pids",
];
const value: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: scalar },
  fc.dictionary(fc.oneof(fc.constantFrom(...FIELDS), hostileString), scalar, { maxKeys: 4 }),
  fc.array(scalar, { maxLength: 3 }),
);
// Real tiers would turn a schema fuzz into a slow tier test; everything else goes.
const noRealTier = (v: unknown) => !JSON.stringify(v ?? null).match(/"(namespace|oci|gvisor)"/);
const bodyArb = fc
  .oneof(fc.dictionary(fc.constantFrom(...FIELDS), value, { maxKeys: 6 }), fc.jsonValue({ maxDepth: 3 }))
  .filter(noRealTier)
  .map((b) => {
    // Commands run for real: keep them short so that the fuzz stays about the schemas.
    if (b && typeof b === "object" && "command" in b && typeof b.command === "string")
      b.command = "echo fuzz";
    return b;
  });
const queryArb = fc.dictionary(
  fc.constantFrom("path", "depth", "limit", "metadata", "state", "format"),
  fc.oneof(hostileString, hostileNumber.map(String)),
  { maxKeys: 3 },
);

test("fuzz: random JSON against every REST operation is never a 5xx and always the error shape", async () => {
  const failures: string[] = [];
  for (const r of corpus) {
    await send(r, "1").catch((e: Error) => failures.push(e.message.split("\n")[0]!));
    await tidy().catch((e: Error) =>
      failures.push(`after ${JSON.stringify(r)}: ${e.message.split("\n")[0]!}`),
    );
  }
  assert.deepEqual(failures, []);
  await fc.assert(
    fc.asyncProperty(
      fc.nat({ max: 1000 }),
      fc.option(bodyArb, { nil: undefined }),
      queryArb,
      fc.oneof(
        fc.constantFrom("1", "0", "-1", "x", "99999999999999999999", "1e3"),
        fc.string({ maxLength: 5 }),
      ),
      async (i, b, query, pid) => {
        const op = ops[i % ops.length]!;
        await send({ ...op, ...(b !== undefined ? { body: b } : {}), query }, pid);
        await tidy();
      },
    ),
    { numRuns: 300, interruptAfterTimeLimit: 6_000 },
  );
});
