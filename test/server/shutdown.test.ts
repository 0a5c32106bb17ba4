/**
 * Graceful shutdown of a real `kiln serve` process: SIGTERM lets short
 * commands finish, ends the rest with an interrupted exit event, exits 0; a
 * restart on the same data directory serves the same sandboxes.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, test } from "node:test";
import { KilnClient } from "../../src/client/index.ts";
import { KeyStore } from "../../src/server/index.ts";

const root = join(import.meta.dirname, "..", "..");
const dataDir = mkdtempSync(join(tmpdir(), "kiln-shutdown-"));
after(() => rmSync(dataDir, { recursive: true, force: true }));

async function serve(): Promise<{ child: ChildProcess; url: string; exited: Promise<number | null> }> {
  const child = spawn(
    process.execPath,
    [
      join(root, "src", "cli", "main.ts"),
      "--data-dir",
      dataDir,
      "serve",
      "--port",
      "0",
      "--grace-ms",
      "1000",
      "--json",
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  const first = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once("line", resolve);
    child.once("exit", () => reject(new Error("kiln serve exited before listening")));
  });
  return { child, url: JSON.parse(first).url, exited };
}

async function lines(
  res: Response,
): Promise<{ type: string; result?: { stdout: string }; error?: { code: string } }[]> {
  return (await res.text())
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
}

test("SIGTERM: short commands finish, long ones are interrupted, exit 0; sandboxes survive a restart", async () => {
  const keys = new KeyStore(dataDir);
  const { key } = keys.create({ name: "restart" });
  keys.close();

  const first = await serve();
  const client = await KilnClient.open({ url: first.url, apiKey: key });
  const sb = await client.create({ metadata: { keep: "me" } });
  await sb.files.write("/workspace/persist.txt", "still here");
  const run = (command: string) =>
    fetch(`${first.url}/v1/sandboxes/${sb.id}/commands`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ command }),
    });
  const short = await run("sleep 0.3; echo finished");
  const long = await run("sleep 30; echo never");
  first.child.kill("SIGTERM");
  const [s, l] = await Promise.all([lines(short), lines(long)]);
  assert.equal(s.at(-1)!.type, "exit");
  assert.equal(s.at(-1)!.error, undefined);
  assert.equal(s.at(-1)!.result!.stdout, "finished\n");
  assert.equal(l.at(-1)!.type, "exit");
  assert.equal(l.at(-1)!.error!.code, "sandbox_stopped");
  assert.equal(await first.exited, 0);

  const second = await serve();
  try {
    const again = await (await KilnClient.open({ url: second.url, apiKey: key })).connect(sb.id);
    assert.equal(await again.files.read("/workspace/persist.txt"), "still here");
    assert.equal((await again.info()).metadata.keep, "me");
    assert.equal((await again.commands.run("cat persist.txt")).stdout, "still here");
  } finally {
    second.child.kill("SIGINT");
    assert.equal(await second.exited, 0);
  }
});
