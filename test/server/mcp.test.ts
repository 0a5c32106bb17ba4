/**
 * MCP on `kiln serve` (`/mcp`, streamable HTTP), driven by the MCP SDK's own
 * client with real API keys: it needs a key, and a key's tools see only that
 * key's sandboxes, the same ones Kiln's REST API shows it.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { KilnClient } from "../../src/client/index.ts";
import { type RunningServer, startServer } from "../../src/server/index.ts";
import { exitCode, failsWith, ok, section } from "../mcp/helpers.ts";

describe("MCP on kiln serve", () => {
  let dataDir: string;
  let server: RunningServer;
  let keyA: string;
  let keyB: string;
  const clients: Client[] = [];

  const connect = async (key: string) => {
    const client = new Client({ name: "kiln-test", version: "1.0.0" });
    await client.connect(
      new StreamableHTTPClientTransport(new URL("/mcp", server.url), {
        requestInit: { headers: { authorization: `Bearer ${key}` } },
      }),
    );
    clients.push(client);
    return client;
  };

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "kiln-mcp-serve-"));
    server = await startServer({ dataDir, port: 0 });
    keyA = server.keys.create({ name: "a" }).key;
    keyB = server.keys.create({ name: "b" }).key;
  });
  after(async () => {
    for (const c of clients) await c.close().catch(() => {});
    await server.close(1000);
    rmSync(dataDir, { recursive: true, force: true });
  });

  test("without a valid key: 401", async () => {
    const init = {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: "{}",
    };
    assert.equal((await fetch(new URL("/mcp", server.url), init)).status, 401);
    const wrong = { ...init, headers: { ...init.headers, authorization: "Bearer nope" } };
    assert.equal((await fetch(new URL("/mcp", server.url), wrong)).status, 401);
  });

  test("tools run in the key's own sandboxes, which its REST client sees too", async () => {
    const a = await connect(keyA);
    const created = JSON.parse(await ok(a, "sandbox_create"));
    const out = await ok(a, "run_command", {
      sandboxId: created.id,
      command: "echo from-mcp > f.txt; cat f.txt",
    });
    assert.equal(exitCode(out), 0);
    assert.equal(section(out, "stdout").trim(), "from-mcp");
    const rest = await KilnClient.open({ url: server.url, apiKey: keyA });
    const sb = await rest.connect(created.id);
    assert.equal(await sb.files.read("/workspace/f.txt"), "from-mcp\n");
    await rest.close();

    const b = await connect(keyB);
    assert.deepEqual(JSON.parse(await ok(b, "sandbox_list")), []);
    await failsWith(b, "run_command", { sandboxId: created.id, command: "true" }, "not_found");
    await failsWith(b, "sandbox_kill", { sandboxId: created.id }, "not_found");
    await ok(a, "sandbox_kill", { sandboxId: created.id });
  });
});
