/** The load test at CI size: 20 concurrent clients x 5 commands, no errors. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { runLoad } from "../../bench/load.ts";

test("20 concurrent clients x 5 commands through the client: all complete, no errors", async () => {
  const r = await runLoad({ clients: 20, commandsPerClient: 5, deadlineMs: 120_000, inline: true });
  assert.deepEqual(r.errorSamples, []);
  assert.equal(r.errors, 0);
  assert.equal(r.completed, 100);
});
