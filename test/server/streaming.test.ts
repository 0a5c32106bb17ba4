/** Streaming: NDJSON events in order over chunked HTTP; background commands, reattach, stdin, errors. */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { body, type TestServer, testServer } from "./helpers.ts";

let t: TestServer;
let base: string;
/** A sandbox on a tier that streams output as it is produced (namespace), when one is ready here. */
let streamingBase: string | undefined;

type Ev = {
  type: string;
  data?: string;
  pid?: number;
  result?: Record<string, unknown>;
  error?: Record<string, unknown>;
};

async function readEvents(res: Response, onEvent?: (e: Ev, at: number) => void): Promise<Ev[]> {
  const out: Ev[] = [];
  const decoder = new TextDecoder();
  let buf = "";
  for await (const chunk of res.body!) {
    buf += decoder.decode(chunk, { stream: true });
    let i = buf.indexOf("\n");
    while (i >= 0) {
      const e = JSON.parse(buf.slice(0, i)) as Ev;
      out.push(e);
      onEvent?.(e, Date.now());
      buf = buf.slice(i + 1);
      i = buf.indexOf("\n");
    }
  }
  return out;
}

before(async () => {
  t = await testServer();
  base = `/v1/sandboxes/${(await body(t.req("POST", "/v1/sandboxes", { json: {} }))).id}`;
  const caps = await body(t.req("GET", "/v1/tiers/namespace/capabilities"));
  const ready = (await body(t.req("GET", "/v1/doctor"))).some(
    (s: { tier: string; available: boolean }) => s.tier === "namespace" && s.available,
  );
  if (ready && caps.streamingOutput) {
    const res = await t.req("POST", "/v1/sandboxes", { json: { tier: "namespace" } });
    if (res.status === 201) streamingBase = `/v1/sandboxes/${(await body(res)).id}`;
  }
});
after(() => t.dispose());

test("start first, output in order, exit last with the full result", async () => {
  const res = await t.req("POST", `${base}/commands`, {
    json: { command: "for i in 1 2 3 4 5 6 7 8; do echo o$i; echo e$i >&2; done; exit 3" },
  });
  assert.equal(res.status, 200);
  const evs = await readEvents(res);
  assert.equal(evs[0]!.type, "start");
  assert.equal(evs.at(-1)!.type, "exit");
  assert.equal(evs.filter((e) => e.type === "exit").length, 1);
  const out = evs
    .filter((e) => e.type === "stdout")
    .map((e) => e.data)
    .join("");
  const err = evs
    .filter((e) => e.type === "stderr")
    .map((e) => e.data)
    .join("");
  assert.equal(out, "o1\no2\no3\no4\no5\no6\no7\no8\n");
  assert.equal(err, "e1\ne2\ne3\ne4\ne5\ne6\ne7\ne8\n");
  assert.equal(evs.at(-1)!.result!.exitCode, 3);
  assert.equal(evs.at(-1)!.result!.stdout, out);
});

test("output arrives while the command runs (chunked, not buffered)", async (c) => {
  if (!streamingBase) return c.skip("no streaming tier (namespace) ready here");
  const res = await t.req("POST", `${streamingBase}/commands`, {
    json: { command: "echo first; sleep 0.6; echo second" },
  });
  const times: Record<string, number> = {};
  await readEvents(res, (e, at) => {
    if (e.data) times[e.data.trim()] = at;
  });
  assert.ok(
    times.second! - times.first! >= 400,
    `first line must arrive before the sleep ends (${times.second! - times.first!} ms)`,
  );
});

test("a timeout ends the stream with exit.error.code = timeout and the partial result", async () => {
  const evs = await readEvents(
    await t.req("POST", `${streamingBase ?? base}/commands`, {
      json: { command: "echo before; sleep 30", timeoutMs: 300 },
    }),
  );
  const exit = evs.at(-1)!;
  assert.equal(exit.type, "exit");
  assert.equal(exit.error!.code, "timeout");
  assert.equal(exit.error!.timeoutMs, 300);
  if (streamingBase) assert.equal(exit.result!.stdout, "before\n");
});

test("background: pid, stdin, reattach, and the result after the end", async () => {
  const started = await t.req("POST", `${base}/commands`, {
    json: { command: "cat; echo done", background: true, openStdin: true },
  });
  assert.equal(started.status, 201);
  const { pid } = await body(started);
  const events = t.req("GET", `${base}/commands/${pid}/events`).then((r) => readEvents(r));
  assert.equal(
    (await t.req("POST", `${base}/commands/${pid}/stdin`, { json: { data: "abc\n" } })).status,
    204,
  );
  assert.equal(
    (
      await t.req("POST", `${base}/commands/${pid}/stdin`, {
        json: { dataBase64: Buffer.from("xyz").toString("base64"), close: true },
      })
    ).status,
    204,
  );
  const evs = await events;
  assert.equal(evs[0]!.type, "start");
  assert.equal(evs.at(-1)!.result!.stdout, "abc\nxyzdone\n");
  // After the end, reattaching still gives the result.
  const again = await readEvents(await t.req("GET", `${base}/commands/${pid}/events`));
  assert.equal(again.at(-1)!.result!.exitCode, 0);
});

test("a client that goes away kills its foreground command", async () => {
  const ac = new AbortController();
  const res = await fetch(`${t.server.url}${base}/commands`, {
    method: "POST",
    headers: { authorization: `Bearer ${t.key}`, "content-type": "application/json" },
    body: JSON.stringify({ command: "sleep 30" }),
    signal: ac.signal,
  });
  const reader = res.body!.getReader();
  const first = JSON.parse(new TextDecoder().decode((await reader.read()).value).split("\n")[0]!);
  assert.equal(first.type, "start");
  ac.abort();
  for (let i = 0; i < 50; i++) {
    const running = await body(t.req("GET", `${base}/commands`));
    if (!running.some((p: { pid: number }) => p.pid === first.pid)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail("the command kept running after its client went away");
});

test("a short command answered whole, then a long one streamed, on one kept-alive connection", async () => {
  // A command that ends at once is sent with Content-Length; the next response on the same
  // connection must not inherit it (a shared headers object once made it cut the stream short).
  for (let i = 0; i < 2; i++) {
    const short = await readEvents(
      await t.req("POST", `${base}/commands`, { json: { command: "echo one" } }),
    );
    assert.equal(short.at(-1)!.result!.stdout, "one\n");
    const long = await readEvents(
      await t.req("POST", `${base}/commands`, { json: { command: "echo two; sleep 0.3; echo three" } }),
    );
    assert.equal(long[0]!.type, "start");
    assert.equal(long.at(-1)!.type, "exit");
    assert.equal(long.at(-1)!.result!.stdout, "two\nthree\n");
  }
});
