/**
 * E2B's `getMetrics` sample from Kiln's stats: memory and disk as measured,
 * and CPU as a percentage of the sandbox's CPUs over the time since the
 * previous sample of the same sandbox (or over a short window of its own when
 * there is none recent), since Kiln's stats give cumulative CPU time.
 */
import type { InstanceStats } from "../core/backend.ts";
import type { SandboxInfo } from "../core/types.ts";

/** The window a first sample measures CPU over, in ms. */
const FIRST_WINDOW_MS = 250;
/** An earlier sample older than this is not used as the start of a window, in ms. */
const STALE_MS = 60_000;

/** Remembers the last CPU reading per sandbox, to turn cumulative CPU time into a rate. */
export class CpuSampler {
  private readonly last = new Map<string, { cpuMs: number; atMs: number }>();

  /**
   * One E2B metrics sample of a sandbox. `read` takes Kiln's stats; it is
   * called twice, `FIRST_WINDOW_MS` apart, when no recent earlier sample exists.
   */
  async sample(info: SandboxInfo, read: () => Promise<InstanceStats>): Promise<Record<string, unknown>> {
    const now = () => performance.now();
    let stats = await read();
    let at = now();
    let cpuUsedPct = 0;
    if (stats.cpuMs !== undefined) {
      let base = this.last.get(info.id);
      if (!base || at - base.atMs > STALE_MS || at - base.atMs < 50) {
        base = { cpuMs: stats.cpuMs, atMs: at };
        await new Promise((r) => setTimeout(r, FIRST_WINDOW_MS));
        stats = await read();
        at = now();
      }
      const cores = Math.max(info.limits.cpuCount, 0.01);
      const used = ((stats.cpuMs ?? base.cpuMs) - base.cpuMs) / (at - base.atMs);
      cpuUsedPct = Math.round(Math.min(100, Math.max(0, (used / cores) * 100)) * 100) / 100;
      this.last.set(info.id, { cpuMs: stats.cpuMs ?? base.cpuMs, atMs: at });
      this.prune(at);
    }
    return {
      timestamp: new Date().toISOString(),
      timestampUnix: Math.floor(Date.now() / 1000),
      cpuCount: Math.max(1, Math.ceil(info.limits.cpuCount)),
      cpuUsedPct,
      memUsed: stats.memoryBytes ?? 0,
      memTotal: info.limits.memoryBytes,
      memCache: 0,
      diskUsed: stats.diskBytes ?? 0,
      diskTotal: info.limits.diskBytes,
    };
  }

  private prune(at: number): void {
    if (this.last.size < 1024) return;
    for (const [id, s] of this.last) if (at - s.atMs > STALE_MS) this.last.delete(id);
  }
}
