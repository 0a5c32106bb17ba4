/**
 * A cap on the growth of a sandbox's network audit log: at most so many
 * entries a second (with a burst), so that a flood (a DNS-tunnelling loop,
 * thousands of refused connections) costs the host a bounded amount of disk
 * writes however fast the sandbox sends. Entries over the rate are counted,
 * not written; the count goes into the log as one entry of kind `audit`
 * (`rule`: `audit rate: N entries dropped`) once the rate allows, or after a
 * second. The log also keeps only its newest entries (`MAX_NETWORK_AUDIT_ENTRIES`).
 */
import type { NetworkAuditEntry } from "../core/types.ts";

/** Default entries a second per sandbox. */
export const DEFAULT_AUDIT_ENTRIES_PER_SECOND = 200;

type Entry = Omit<NetworkAuditEntry, "id">;

/**
 * `sink`, written at most `entriesPerSecond` entries a second (a burst of
 * that many at once); the rest counted and summarised. `close` writes a
 * pending summary and stops its timer.
 */
export function limitAuditRate(
  sink: (e: Entry) => void,
  entriesPerSecond = DEFAULT_AUDIT_ENTRIES_PER_SECOND,
): { record(e: Entry): void; close(): void } {
  let tokens = entriesPerSecond;
  let last = performance.now();
  let dropped = 0;
  let firstDropMs = 0;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const refill = () => {
    const now = performance.now();
    tokens = Math.min(entriesPerSecond, tokens + ((now - last) * entriesPerSecond) / 1000);
    last = now;
  };
  const summarise = () => {
    if (dropped === 0 || closed) return;
    const n = dropped;
    dropped = 0;
    if (timer) clearTimeout(timer);
    timer = undefined;
    sink({
      kind: "audit",
      atMs: firstDropMs,
      allowed: false,
      rule: `audit rate: ${n} entries dropped (over ${entriesPerSecond} a second)`,
      bytesUp: 0,
      bytesDown: 0,
      durationMs: Date.now() - firstDropMs,
    });
  };
  return {
    record(e: Entry) {
      if (closed) return;
      refill();
      if (tokens >= 1) {
        tokens -= 1;
        if (dropped > 0 && tokens >= 1) {
          tokens -= 1;
          summarise();
        }
        sink(e);
        return;
      }
      if (dropped++ === 0) {
        firstDropMs = Date.now();
        timer = setTimeout(summarise, 1000);
        timer.unref();
      }
    },
    close() {
      summarise();
      closed = true;
      if (timer) clearTimeout(timer);
    },
  };
}
