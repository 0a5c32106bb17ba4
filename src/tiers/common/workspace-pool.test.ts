/**
 * The warm pool of workspace images: a process's pool is its own, it is
 * drained on close, and the pools of processes that died without draining
 * (mounts included) are swept by the next process. Needs root and mkfs.ext4.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { processToken } from "../../core/process-token.ts";
import { WorkspaceImage } from "./workspace-image.ts";
import { drainPool, poolFor, sweepStalePools } from "./workspace-pool.ts";

const why =
  process.getuid?.() !== 0 ? "needs root (loop mounts)" : (WorkspaceImage.unavailableReason() ?? undefined);
const MiB = 1024 * 1024;

const mounted = (path: string) =>
  readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .some((l) => l.split(" ")[4] === path);

/** A process that has ended: its pid and start time no longer match anything. */
function deadOwner(): string {
  const r = spawnSync("true");
  return `${r.pid}-1`;
}

test("a dead process's pool, mounted images included, is swept; a live one's is kept", {
  skip: why,
}, async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-pool-"));
  try {
    // The pool of a process that was SIGKILLed while it built an image.
    const stale = join(dataDir, "pool", deadOwner());
    const building = new WorkspaceImage(join(stale, ".building-0123456789ab"), ".");
    await building.create(16 * MiB);
    assert.ok(mounted(building.mountPath));
    // An image left directly under pool/ by an interrupted build.
    const loose = new WorkspaceImage(join(dataDir, "pool", ".building-ba9876543210"), ".");
    await loose.create(16 * MiB);
    // The pool of a live process (pid 1 with its real start time) stays.
    const live = join(dataDir, "pool", processToken(1)!);
    mkdirSync(live, { recursive: true });

    await sweepStalePools(dataDir);
    assert.equal(mounted(building.mountPath), false, "the stale build is still mounted");
    assert.equal(mounted(loose.mountPath), false, "the loose build is still mounted");
    assert.deepEqual(readdirSync(join(dataDir, "pool")), [live.split("/").pop()]);
  } finally {
    await drainPool(dataDir);
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test("a process's pool fills, hands out mounted images, and drains on close", { skip: why }, async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-pool-"));
  try {
    const pool = poolFor(dataDir);
    pool.refill(16 * MiB);
    await pool.settled();
    const dest = join(dataDir, "sb", "ws");
    mkdirSync(join(dataDir, "sb"));
    assert.equal(pool.take(16 * MiB, dest), true);
    const img = new WorkspaceImage(join(dataDir, "sb"));
    assert.ok(mounted(img.mountPath), "the taken image is not mounted where it was moved");
    assert.equal(pool.take(32 * MiB, join(dataDir, "other")), false, "no image of that size is ready");
    await drainPool(dataDir);
    assert.equal(existsSync(join(dataDir, "pool")) && readdirSync(join(dataDir, "pool")).length, 0);
    assert.ok(mounted(img.mountPath), "draining the pool touched a sandbox's workspace");
    await img.destroy();
  } finally {
    await drainPool(dataDir);
    rmSync(dataDir, { recursive: true, force: true });
  }
});
