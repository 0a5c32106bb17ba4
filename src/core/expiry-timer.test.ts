/**
 * A sandbox's lifetime ends on time even when its timer fires before the wall clock says so
 * (Node's timers run on a monotonic clock: here about one in five fires a millisecond or more
 * "early" by Date.now()). The wall clock is held 30 ms behind for the test.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Kiln } from "../index.ts";

test("a lifetime ends even when its timer fires before the wall clock reaches it", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-expiry-timer-"));
  const kiln = await Kiln.open({ dataDir });
  const realNow = Date.now;
  try {
    const sb = await kiln.create({ tier: "virtual" });
    const control = await kiln.create({ tier: "virtual" });
    sb.setLifetime(100);
    // Every timer now fires "early" by the wall clock Kiln reads.
    Date.now = () => realNow() - 30;
    // Polled by its record alone (a list or a call would look for expired sandboxes itself).
    const exists = (id: string) => {
      try {
        kiln.record(id);
        return true;
      } catch {
        return false;
      }
    };
    const deadline = realNow() + 5000;
    while (exists(sb.id) && realNow() < deadline) await new Promise((r) => setTimeout(r, 20));
    Date.now = realNow;
    assert.ok(!exists(sb.id), "the sandbox outlived its lifetime");
    assert.ok(exists(control.id), "a sandbox without a lifetime is still there");
  } finally {
    Date.now = realNow;
    await kiln.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
