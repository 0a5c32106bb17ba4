/** `kiln mcp` as a real child process, driven by the MCP SDK's own stdio client. */

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { toolScenario } from "./scenario.ts";

const MAIN = join(import.meta.dirname, "..", "..", "src", "cli", "main.ts");

describe("kiln mcp (stdio)", () => {
  let dataDir: string;
  let client: Client;

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "kiln-mcp-stdio-"));
    const env = { ...process.env, KILN_DATA_DIR: dataDir } as Record<string, string>;
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: [MAIN, "mcp"],
      env,
      stderr: "inherit",
    });
    client = new Client({ name: "kiln-test", version: "0.0.0" });
    await client.connect(transport);
  });

  after(async () => {
    await client?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  toolScenario(() => client);

  test("the server exits by itself when its stdin ends", async () => {
    const child = spawn(process.execPath, [MAIN, "mcp"], {
      env: { ...process.env, KILN_DATA_DIR: dataDir },
      stdio: ["pipe", "pipe", "inherit"],
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    child.stdin.end();
    const [code] = await once(child, "exit");
    clearTimeout(timer);
    assert.equal(code, 0);
  });
});
