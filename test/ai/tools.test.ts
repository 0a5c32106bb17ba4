/** The AI SDK tools, called through their `execute` functions against a real virtual-tier sandbox. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { createKilnTools } from "../../src/ai/index.ts";
import { Kiln, type Sandbox } from "../../src/index.ts";

type Tools = ReturnType<typeof createKilnTools>;
// biome-ignore lint/suspicious/noExplicitAny: results are checked field by field below
type Result = any;

/** Calls a tool's execute as the AI SDK would, without a model. */
async function exec<K extends keyof Tools>(
  tools: Tools,
  name: K,
  input: Record<string, unknown>,
): Promise<Result> {
  const t = tools[name] as unknown as {
    execute: (input: unknown, options: { toolCallId: string; messages: []; context: object }) => unknown;
  };
  return await t.execute(input, { toolCallId: "call-1", messages: [], context: {} });
}

describe("AI SDK tools", () => {
  let dataDir: string;
  let kiln: Kiln;
  let sb: Sandbox;
  let tools: Tools;

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "kiln-ai-"));
    kiln = await Kiln.open({ dataDir });
    sb = await kiln.create({ tier: "virtual" });
    tools = createKilnTools({ sandbox: sb, maxOutputBytes: 1024 });
  });

  after(async () => {
    await kiln.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test("the tools have descriptions and zod input schemas", () => {
    assert.deepEqual(Object.keys(tools).sort(), ["bash", "readFile", "runCode", "writeFile"]);
    for (const t of Object.values(tools)) {
      assert.ok(t.description && t.description.length > 20);
      assert.ok(t.inputSchema);
    }
  });

  test("bash returns exit code, stdout and stderr", async () => {
    const r = await exec(tools, "bash", { command: "echo hi; echo oops >&2; exit 4" });
    assert.equal(r.exitCode, 4);
    assert.equal(r.stdout, "hi\n");
    assert.equal(r.stderr, "oops\n");
    assert.equal(r.truncated, undefined);
    assert.equal(r.error, undefined);
  });

  test("writeFile then readFile, whole and in ranges", async () => {
    assert.deepEqual(await exec(tools, "writeFile", { path: "notes/a.txt", content: "héllo wörld" }), {
      path: "/workspace/notes/a.txt",
      bytes: 13,
    });
    const whole = await exec(tools, "readFile", { path: "notes/a.txt" });
    assert.equal(whole.content, "héllo wörld");
    assert.equal(whole.nextOffset, null);
    // A text range never ends inside a character: 2 bytes from 0 stops before the 2-byte "é".
    const part = await exec(tools, "readFile", { path: "notes/a.txt", offset: 0, length: 2 });
    assert.equal(part.content, "h");
    assert.equal(part.nextOffset, 1);
    const bin = await exec(tools, "writeFile", { path: "b.bin", content: "AAH/", encoding: "base64" });
    assert.equal(bin.bytes, 3);
    const back = await exec(tools, "readFile", { path: "b.bin", encoding: "base64" });
    assert.equal(back.content, "AAH/");
  });

  test("runCode keeps state between calls", async () => {
    await exec(tools, "runCode", { code: "total = sum(range(10))" });
    const r = await exec(tools, "runCode", { code: "print(total)" });
    assert.equal(r.cellError, undefined);
    assert.equal(r.stdout, "45\n");
  });

  test("long output is cut in the middle, and the cut is stated", async () => {
    const r = await exec(tools, "bash", { command: "seq 1 5000" });
    assert.ok(r.stdout.startsWith("1\n2\n"));
    assert.ok(r.stdout.endsWith("4999\n5000\n"));
    assert.ok(r.truncated.stdout > 20000);
    assert.match(r.stdout, /\[stdout: \d+ of 23893 bytes cut from the middle; .*readFile/);
    assert.ok(Buffer.byteLength(r.stdout) < 1024 + 400);
  });

  test("failures return { error: { code } } instead of throwing", async () => {
    assert.equal((await exec(tools, "readFile", { path: "nope.txt" })).error.code, "not_found");
    assert.equal((await exec(tools, "readFile", { path: "/../x" })).error.code, "invalid_argument");
    assert.equal(
      (await exec(tools, "writeFile", { path: "x", content: "%%", encoding: "base64" })).error.code,
      "invalid_argument",
    );
    const slow = await exec(tools, "bash", { command: "sleep 5", timeoutMs: 100 });
    assert.equal(slow.error.code, "timeout");
    assert.equal(typeof slow.exitCode, "number");
  });

  test("tools bound by kiln and sandbox id", async () => {
    const byId = createKilnTools({ kiln, sandboxId: sb.id });
    assert.equal((await exec(byId, "bash", { command: "cat notes/a.txt" })).stdout, "héllo wörld");
    const gone = createKilnTools({ kiln, sandboxId: "sb_aaaaaaaaaaaaaaaaaaaa" });
    assert.equal((await exec(gone, "bash", { command: "true" })).error.code, "not_found");
  });
});
