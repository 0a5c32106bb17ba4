/**
 * The egress gate with real FIFOs and its real hook command, run the way an OCI runtime runs a
 * createRuntime hook (the container's state on stdin, the exit status deciding whether it goes on).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { GATE_TIMEOUT_S, openEgressGate } from "./egress-gate.ts";

const dir = mkdtempSync(join(tmpdir(), "kiln-egress-gate-test-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the gate's hook as a runtime would, with `state` on stdin; resolves its exit code. */
function runHook(hook: { path: string; args: string[] }, state: string): Promise<number | null> {
  const [argv0, ...args] = hook.args;
  const child = spawn(hook.path, args, { argv0: argv0!, stdio: ["pipe", "ignore", "ignore"] });
  child.stdin.end(state);
  return new Promise((resolve) => child.on("close", (code) => resolve(code)));
}

test("the hook hands over the sandbox's pid and waits until it is wired, then succeeds", async () => {
  const gate = openEgressGate(join(dir, "ok"));
  assert.equal(gate.hook.timeoutS, GATE_TIMEOUT_S);
  let wiredWhileWaiting = false;
  const hook = runHook(gate.hook, JSON.stringify({ ociVersion: "1.0.2", id: "kiln-x", pid: 4242 }));
  let hookDone = false;
  void hook.then(() => {
    hookDone = true;
  });
  const got = await gate.pass(async (pid) => {
    await new Promise((r) => setTimeout(r, 200));
    wiredWhileWaiting = !hookDone;
    return pid;
  });
  assert.equal(got, 4242);
  assert.equal(wiredWhileWaiting, true, "the hook returned before the wiring ended");
  assert.equal(await hook, 0);
  gate.close();
  assert.equal(existsSync(join(dir, "ok")), false, "the FIFOs are removed");
});

test("a failed wiring fails the hook (and so the runtime's start), and its error is rethrown", async () => {
  const gate = openEgressGate(join(dir, "fail"));
  const hook = runHook(gate.hook, JSON.stringify({ pid: 7 }));
  await assert.rejects(
    gate.pass(async () => {
      throw new Error("no link");
    }),
    /no link/,
  );
  assert.notEqual(await hook, 0);
  gate.close();
});

test("a state without a pid fails the hook", async () => {
  const gate = openEgressGate(join(dir, "nopid"));
  const hook = runHook(gate.hook, "{}");
  let called = false;
  await assert.rejects(
    gate.pass(async () => {
      called = true;
    }),
    /no sandbox pid/,
  );
  assert.equal(called, false);
  assert.notEqual(await hook, 0);
  gate.close();
});

test("closing the gate releases a pass that waits for a runtime that never came", async () => {
  const gate = openEgressGate(join(dir, "never"));
  const waiting = gate.pass(async () => "wired");
  await new Promise((r) => setTimeout(r, 100));
  gate.close();
  assert.equal(await waiting, undefined);
});
