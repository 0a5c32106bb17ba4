/**
 * Every time limit is core's, kept one way: on the virtual tier (whose shell
 * and Python run in-process) a command's limit and a cell's limit both end the
 * work through core's clock and surface as `timeout` (TimeoutError with the
 * partial result); the tier keeps no clock of its own.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { CellTimeoutError, Kiln, TimeoutError } from "../index.ts";

let dataDir: string;
let kiln: Kiln;

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "kiln-time-"));
  kiln = await Kiln.open({ dataDir });
});

after(async () => {
  await kiln?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

test("a command runs for its own limit, not the sandbox's default: shell and python3", async () => {
  const sb = await kiln.create({ tier: "virtual", limits: { timeoutMs: 1000 } });
  for (const command of [
    "python3 -c \"import time; time.sleep(2.5); print('done')\"",
    "sleep 2.5; echo done",
  ]) {
    const r = await sb.commands.run(command, { timeoutMs: 0 });
    assert.equal(r.exitCode, 0, `${command}: ${r.stderr}`);
    assert.equal(r.stdout, "done\n", command);
  }
  await sb.kill();
});

test("python3 in the shell past the command's limit is a timeout, like any command", async () => {
  const sb = await kiln.create({ tier: "virtual" });
  const e = await sb.commands.run("python3 -c 'while True: pass'", { timeoutMs: 1000 }).then(
    () => assert.fail("the command outlived its limit"),
    (err: unknown) => err,
  );
  assert.ok(e instanceof TimeoutError, String(e));
  assert.equal(e.code, "timeout");
  assert.equal(e.timeoutMs, 1000);
  await sb.kill();
});

test("a cell past its limit is a timeout with its partial execution; the context keeps its state", async () => {
  const sb = await kiln.create({ tier: "virtual" });
  await sb.runCode("kept = 'yes'"); // the interpreter is up: the limit below measures the cell
  const e = await sb
    .runCode("print('before', flush=True)\nimport time\nwhile True: time.sleep(0.05)", { timeoutMs: 3000 })
    .then(
      () => assert.fail("the cell outlived its limit"),
      (err: unknown) => err,
    );
  assert.ok(e instanceof CellTimeoutError, String(e));
  assert.equal(e.code, "timeout");
  assert.equal(e.timeoutMs, 3000);
  assert.equal(e.execution.logs.stdout.join(""), "before\n");
  const r = await sb.runCode("print(kept)");
  assert.equal(r.logs.stdout.join(""), "yes\n");
  await sb.kill();
});

test("a sandbox's lifetime and a command's limit have distinct names; the old names still set the lifetime", async () => {
  const sb = await kiln.create({ tier: "virtual", lifetimeMs: 600_000, limits: { timeoutMs: 5000 } });
  const info = await sb.info();
  assert.ok(info.expiresAt !== null && Date.parse(info.expiresAt) > Date.now() + 500_000);
  assert.equal(info.limits.timeoutMs, 5000);
  await sb.setLifetime(0);
  assert.equal((await sb.info()).expiresAt, null);
  await sb.setTimeout(600_000); // the old name
  assert.ok((await sb.info()).expiresAt !== null);
  const old = await kiln.create({ tier: "virtual", timeoutMs: 600_000 });
  assert.ok((await old.info()).expiresAt !== null);
  await assert.rejects(
    kiln.create({ tier: "virtual", lifetimeMs: 1000, timeoutMs: 2000 }),
    (e: { code?: string }) => e.code === "invalid_argument",
  );
  await old.kill();
  await sb.kill();
});
