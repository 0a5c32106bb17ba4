/**
 * Per-key quotas: how many live sandboxes a key may own, and the total
 * `limits.memoryBytes` they may reserve. Creations of one key are serialized
 * so that two concurrent requests cannot both pass the check.
 */
import type { Kiln } from "../core/kiln.ts";
import { QuotaExceededError } from "./errors.ts";
import type { ApiKeyInfo } from "./keys.ts";
import { ownedList } from "./ownership.ts";

const queues = new Map<string, Promise<unknown>>();

/** Runs `fn` after every earlier call for the same key has settled. */
export async function serializedPerKey<T>(keyId: string, fn: () => Promise<T>): Promise<T> {
  const prev = queues.get(keyId) ?? Promise.resolve();
  const run = prev.then(fn, fn);
  const settled = run.catch(() => undefined);
  queues.set(keyId, settled);
  void settled.then(() => {
    if (queues.get(keyId) === settled) queues.delete(keyId);
  });
  return run;
}

/**
 * Checks that `key` may create one more sandbox reserving `memoryBytes`.
 * @throws QuotaExceededError (`limit_exceeded`, `limit` = `maxSandboxes` or `maxMemoryBytes`)
 */
export async function checkQuotas(kiln: Kiln, key: ApiKeyInfo, memoryBytes: number): Promise<void> {
  if (key.maxSandboxes === null && key.maxMemoryBytes === null) return;
  const owned = await ownedList(kiln, key.id);
  if (key.maxSandboxes !== null && owned.length + 1 > key.maxSandboxes) {
    throw new QuotaExceededError(
      "maxSandboxes",
      key.maxSandboxes,
      `quota exceeded: maxSandboxes (${key.maxSandboxes}); this key owns ${owned.length} live sandboxes`,
    );
  }
  if (key.maxMemoryBytes !== null) {
    const used = owned.reduce((sum, s) => sum + s.limits.memoryBytes, 0);
    if (used + memoryBytes > key.maxMemoryBytes) {
      throw new QuotaExceededError(
        "maxMemoryBytes",
        key.maxMemoryBytes,
        `quota exceeded: maxMemoryBytes (${key.maxMemoryBytes}); in use ${used}, requested ${memoryBytes}`,
      );
    }
  }
}
