/**
 * The Streamable HTTP handler, served on loopback by a real HTTP server and
 * driven by the MCP SDK's own client; and owner isolation between handlers.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type ServerType, serve } from "@hono/node-server";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { Kiln } from "../../src/index.ts";
import { createMcpHttpHandler, type McpHttpHandler, OWNER_KEY } from "../../src/mcp/index.ts";
import { tierRequired } from "../conformance/suite.ts";
import { call, failsWith, ok } from "./helpers.ts";
import { toolScenario } from "./scenario.ts";

let dataDir: string;
let kiln: Kiln;
let server: ServerType;
let base: string;
const clients: Client[] = [];

/** Routes `/mcp` (unscoped), `/alice`, `/bob` (fixed owners) and `/header` (owner from a header). */
function routes(k: Kiln): Record<string, McpHttpHandler> {
  return {
    "/mcp": createMcpHttpHandler({ kiln: k }),
    "/alice": createMcpHttpHandler({ kiln: k, owner: "alice" }),
    "/bob": createMcpHttpHandler({ kiln: k, owner: "bob" }),
    "/header": createMcpHttpHandler({ kiln: k, owner: (req) => req.headers.get("x-owner") ?? undefined }),
  };
}

async function connect(path: string, headers: Record<string, string> = {}): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(new URL(path, base), { requestInit: { headers } });
  const client = new Client({ name: "kiln-test", version: "0.0.0" });
  await client.connect(transport);
  clients.push(client);
  return client;
}

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "kiln-mcp-http-"));
  kiln = await Kiln.open({ dataDir });
  const handlers = routes(kiln);
  await new Promise<void>((resolve) => {
    server = serve(
      {
        fetch: (req) =>
          handlers[new URL(req.url).pathname]?.(req) ?? new Response("no route", { status: 404 }),
        port: 0,
        hostname: "127.0.0.1",
      },
      () => resolve(),
    );
  });
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  for (const c of clients) await c.close().catch(() => {});
  await new Promise((resolve) => server.close(resolve));
  await kiln.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe("MCP over Streamable HTTP", () => {
  let client: Client;
  before(async () => {
    client = await connect("/mcp");
  });
  toolScenario(() => client);

  test("GET has no event stream in stateless mode (405)", async () => {
    const r = await fetch(new URL("/mcp", base), { headers: { accept: "text/event-stream" } });
    assert.equal(r.status, 405);
    await r.body?.cancel();
  });
});

describe("owner isolation", () => {
  test("two owners cannot see or touch each other's sandboxes", async () => {
    const alice = await connect("/alice");
    const bob = await connect("/bob");
    const a = JSON.parse(await ok(alice, "sandbox_create", { metadata: { team: "x" } }));
    const b = JSON.parse(await ok(bob, "sandbox_create"));
    assert.deepEqual(a.metadata, { team: "x" }, "the reserved owner key is not shown");
    assert.equal(kiln.record(a.id).metadata[OWNER_KEY], "alice");
    assert.equal(kiln.record(b.id).metadata[OWNER_KEY], "bob");

    const aliceSees = JSON.parse(await ok(alice, "sandbox_list")).map((s: { id: string }) => s.id);
    const bobSees = JSON.parse(await ok(bob, "sandbox_list")).map((s: { id: string }) => s.id);
    assert.deepEqual(aliceSees, [a.id]);
    assert.deepEqual(bobSees, [b.id]);

    for (const [tool, args] of [
      ["run_command", { command: "true" }],
      ["run_code", { code: "1" }],
      ["read_file", { path: "x" }],
      ["write_file", { path: "x", content: "y" }],
      ["list_files", {}],
      ["sandbox_snapshot", {}],
      ["sandbox_fork", {}],
      ["sandbox_pause", {}],
      ["sandbox_resume", {}],
      ["network_get", {}],
      ["network_update", {}],
      ["sandbox_kill", {}],
    ] as const) {
      await failsWith(bob, tool, { sandboxId: a.id, ...args }, "not_found");
    }
    await failsWith(bob, "sandbox_create", { metadata: { [OWNER_KEY]: "alice" } }, "invalid_argument");
    const snap = JSON.parse(await ok(alice, "sandbox_snapshot", { sandboxId: a.id }));
    await failsWith(bob, "sandbox_create", { snapshot: snap.id }, "not_found");
    assert.deepEqual(JSON.parse(await ok(bob, "snapshot_list")), []);
    assert.equal(
      await ok(alice, "run_command", { sandboxId: a.id, command: "echo still here" }).then((t) =>
        t.includes("still here"),
      ),
      true,
    );

    // An owner taken from the request: the same handler serves both.
    const viaHeader = await connect("/header", { "x-owner": "alice" });
    const seen = JSON.parse(await ok(viaHeader, "sandbox_list")).map((s: { id: string }) => s.id);
    assert.deepEqual(seen, [a.id]);

    await ok(alice, "sandbox_kill", { sandboxId: a.id });
    await ok(bob, "sandbox_kill", { sandboxId: b.id });
  });
});

describe("run_code on a real tier", () => {
  test("a matplotlib chart comes back as an MCP image (namespace, code-interpreter template)", async (t) => {
    const status = (await kiln.doctor()).find((s) => s.tier === "namespace");
    const client = await connect("/mcp");
    let why: string | undefined = status?.available
      ? undefined
      : `namespace: ${status?.reason ?? "no backend"}`;
    let id = "";
    if (!why) {
      const r = await call(client, "sandbox_create", { tier: "namespace", template: "code-interpreter" });
      if (r.isError) why = `a namespace sandbox with the code-interpreter template: ${r.texts.join(" ")}`;
      else id = JSON.parse(r.texts[0]!).id;
    }
    if (why) {
      if (tierRequired("namespace")) assert.fail(`required by KILN_REQUIRE_TIERS: ${why}`);
      return t.skip(why);
    }
    try {
      const r = await call(client, "run_code", {
        sandboxId: id,
        code: "import matplotlib.pyplot as plt\nplt.bar(['a', 'b'], [3, 1])\nplt.title('letters')\nplt.show()",
      });
      assert.equal(r.isError, false, r.texts.join("\n"));
      const png = r.images.find((i) => i.mimeType === "image/png");
      assert.ok(png, `an image block: ${r.texts.join("\n")}`);
      const bytes = Buffer.from(png.data, "base64");
      assert.equal(bytes.subarray(1, 4).toString(), "PNG");
      assert.ok(bytes.readUInt32BE(16) >= 100, "a figure's width, from its IHDR");
    } finally {
      await call(client, "sandbox_kill", { sandboxId: id });
    }
  });
});
