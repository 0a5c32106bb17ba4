/**
 * Timing points: with a subscriber on `kiln:step`, a create publishes its
 * steps (start and end on the same context, with the sandbox's id); a step's
 * error still reaches the caller; with none, the step runs as a plain call.
 */
import assert from "node:assert/strict";
import { tracingChannel } from "node:diagnostics_channel";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { Kiln } from "../index.ts";
import { STEP_CHANNEL, type StepContext, traced, tracedSync } from "./trace.ts";

const dataDir = mkdtempSync(join(tmpdir(), "kiln-trace-"));
after(() => rmSync(dataDir, { recursive: true, force: true }));

/** Subscribes while `fn` runs; returns each step's context with its start and end stamps. */
async function recording(fn: () => Promise<void>): Promise<(StepContext & { ended?: boolean })[]> {
  const seen: (StepContext & { ended?: boolean })[] = [];
  const handlers = {
    start: (c: StepContext) => seen.push(c),
    end: () => {},
    asyncStart: () => {},
    asyncEnd: (c: StepContext & { ended?: boolean }) => {
      c.ended = true;
    },
    error: () => {},
  };
  const ch = tracingChannel<unknown, StepContext & { ended?: boolean }>(STEP_CHANNEL);
  ch.subscribe(handlers);
  try {
    await fn();
  } finally {
    ch.unsubscribe(handlers);
  }
  return seen;
}

test("a create publishes its steps with the sandbox's id", async () => {
  const kiln = await Kiln.open({ dataDir });
  let id = "";
  const steps = await recording(async () => {
    const sb = await kiln.create();
    id = sb.id;
    await sb.kill();
  });
  await kiln.close();
  const mine = steps.filter((s) => s.sandboxId === id).map((s) => s.step);
  assert.deepEqual(mine, ["create.state-dir", "create.tier", "create.record"]);
  assert.ok(steps.find((s) => s.step === "create.tier")?.ended, "the tier's step never ended");
});

test("a step's error reaches the caller, subscribed or not", async () => {
  const boom = () => Promise.reject(Object.assign(new Error("x"), { code: "internal" }));
  await assert.rejects(traced("t", undefined, boom), { code: "internal" });
  const steps = await recording(async () => {
    await assert.rejects(traced("t", "sb_x", boom), { code: "internal" });
    assert.throws(
      () =>
        tracedSync("s", undefined, () => {
          throw Object.assign(new Error("y"), { code: "conflict" });
        }),
      { code: "conflict" },
    );
  });
  assert.deepEqual(
    steps.map((s) => s.step),
    ["t", "s"],
  );
});

test("with no subscriber a step is a plain call and returns its value", async () => {
  assert.equal(await traced("t", undefined, async () => 7), 7);
  assert.equal(
    tracedSync("s", undefined, () => 8),
    8,
  );
});
