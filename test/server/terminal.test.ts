/**
 * The terminal WebSocket: a real pty shell on tiers with terminals (raw input,
 * output, resize, exit), a line-discipline shell on the virtual tier, and no
 * session without a valid key.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import WebSocket from "ws";
import { tierRequired } from "../conformance/suite.ts";
import { body, type TestServer, testServer } from "./helpers.ts";

const template = process.env.KILN_TEST_TEMPLATE ?? "default";
let srv: TestServer;
/** Each tier with terminals, and why it does not run here when it does not. */
const PTY_TIERS = ["namespace", "oci", "gvisor", "microvm"] as const;
const unavailable = new Map<string, string>();

before(async () => {
  srv = await testServer();
  const doctor = (await body(srv.req("GET", "/v1/doctor"))) as {
    tier: string;
    available: boolean;
    reason: string;
  }[];
  for (const t of PTY_TIERS) {
    const s = doctor.find((d) => d.tier === t);
    if (s?.available) continue;
    if (tierRequired(t)) throw new Error(`tier ${t} required but unavailable: ${s?.reason}`);
    unavailable.set(t, `${t}: ${s?.reason}`);
  }
});
after(() => srv.dispose());

/** A terminal socket, with every message it receives, decoded. */
async function connect(id: string, key = srv.key) {
  const url = `${srv.server.url.replace("http", "ws")}/v1/sandboxes/${id}/terminal`;
  const ws = new WebSocket(url, ["kiln.terminal", `kiln.key.${key}`]);
  const msgs: Record<string, unknown>[] = [];
  ws.on("message", (d) => msgs.push(JSON.parse(String(d))));
  const closed = new Promise<void>((r) => ws.once("close", () => r()));
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  const send = (m: unknown) => ws.send(JSON.stringify(m));
  const output = () =>
    msgs
      .filter((m) => m.t === "out")
      .map((m) => m.data)
      .join("");
  const until = async (what: string, ok: () => boolean) => {
    // An emulated guest (microvm without KVM) can take seconds to start a login shell.
    for (let i = 0; i < 1200 && !ok(); i++) await new Promise((r) => setTimeout(r, 25));
    assert.ok(ok(), `${what}: ${JSON.stringify(msgs).slice(-2000)}`);
  };
  return { ws, msgs, send, output, until, closed };
}

for (const ptyTier of PTY_TIERS) {
  test(`${ptyTier}: a login shell on a real terminal, with input, resize and exit`, async (t) => {
    const why = unavailable.get(ptyTier);
    if (why) {
      t.skip(why);
      return;
    }
    const { id } = (await body(srv.req("POST", "/v1/sandboxes", { json: { tier: ptyTier, template } }))) as {
      id: string;
    };
    const term = await connect(id);
    await term.until("hello", () => term.msgs.length > 0);
    assert.deepEqual(term.msgs[0], {
      t: "hello",
      sandboxId: id,
      tier: ptyTier,
      cwd: "/workspace",
      mode: "pty",
    });
    term.send({ t: "resize", cols: 132, rows: 43 });
    term.send({ t: "input", data: 'stty size; echo "$TERM"; tty; echo do""ne\r' });
    await term.until("the command's output", () => term.output().includes("done\r\n"));
    assert.match(term.output(), /43 132\r\nxterm-256color\r\n\/dev\/pts\/\d+\r\n/);
    // Ctrl-C reaches the foreground job through the terminal, as in any shell.
    term.send({ t: "input", data: "sleep 30\r" });
    await new Promise((r) => setTimeout(r, 300));
    term.send({ t: "input", data: "\x03" });
    term.send({ t: "input", data: 'echo after-int""errupt\r' });
    await term.until("the shell after Ctrl-C", () => term.output().includes("after-interrupt\r\n"));
    term.send({ t: "input", data: "exit 5\r" });
    await term.until("exit", () => term.msgs.some((m) => m.t === "exit"));
    assert.deepEqual(
      term.msgs.find((m) => m.t === "exit"),
      { t: "exit", exitCode: 5 },
    );
    await term.closed;
    await srv.req("DELETE", `/v1/sandboxes/${id}`);
  });
}

test("the virtual tier: a line-mode terminal", async () => {
  const { id } = (await body(srv.req("POST", "/v1/sandboxes", { json: { tier: "virtual" } }))) as {
    id: string;
  };
  const term = await connect(id);
  await term.until("hello", () => term.msgs.length > 0);
  assert.equal(term.msgs[0]!.mode, "line");
  term.send({ t: "run", line: "echo hi | tr a-z A-Z" });
  await term.until("done", () => term.msgs.some((m) => m.t === "done"));
  assert.equal(term.output(), "HI\n");
  term.ws.close();
  await term.closed;
  await srv.req("DELETE", `/v1/sandboxes/${id}`);
});

test("no terminal without a valid key", async () => {
  const { id } = (await body(srv.req("POST", "/v1/sandboxes", { json: { tier: "virtual" } }))) as {
    id: string;
  };
  await assert.rejects(connect(id, "kiln_wrong"), /401/);
  await srv.req("DELETE", `/v1/sandboxes/${id}`);
});
