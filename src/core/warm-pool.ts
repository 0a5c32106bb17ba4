/**
 * Warm sandboxes: instances started ahead of demand, so that `create` on a
 * real-binary tier hands out a running sandbox instead of waiting for its
 * runtime, workspace and agent to start.
 *
 * The pool learns what to keep from what is created: after a successful
 * `create` of a given tier, template and start-relevant limits (a "shape"),
 * it starts `size` sandboxes of that shape in the background, a short delay
 * after the caller's own sandbox (on two cores a start would slow the
 * caller). It keeps the `maxShapes` most recently created shapes and stops
 * the rest.
 *
 * A warm sandbox has its id and state directory from the start, stamped with
 * its owner's process token (`WARM_MARKER`) and no record: it is invisible to
 * `list` and `connect` until `take` hands it out. If its process is killed, the
 * next Kiln on the data directory finds the stamp of a dead owner and
 * destroys it (`Kiln.open`).
 */
import type { Instance } from "./backend.ts";
import type { Limits } from "./limits.ts";
import type { TierName } from "./types.ts";

/** What a warm sandbox is started as; a `create` asking for the same gets it. */
export interface WarmShape {
  tier: TierName;
  template: string;
  limits: Limits;
}

/** A started, unclaimed sandbox. */
export interface WarmSandbox {
  id: string;
  shape: WarmShape;
  instance: Instance;
  /** The template digest it was started from (`Backend.templateDigest`), when the tier tells. */
  digest?: string;
}

/** How the pool starts and stops sandboxes (Kiln provides it). */
export interface WarmPoolHost {
  /** Starts a sandbox of `shape` under a new id, stamped as warm. */
  start(shape: WarmShape): Promise<WarmSandbox>;
  /** Stops an unclaimed sandbox and deletes everything it made. */
  discard(sandbox: WarmSandbox): Promise<void>;
}

/** File in a warm sandbox's state directory: `{ owner, tier, template, limits }`. */
export const WARM_MARKER = "warm.json";

/** Delay between a `take` and the start of the refill, ms. */
const REFILL_DELAY_MS = 250;

/**
 * A stable key of a shape: the limits a runtime is started with. The others
 * (time, output, file size, the interpreter's) are enforced per command by
 * core, so creates that differ only in them share warm sandboxes.
 */
function keyOf(s: WarmShape): string {
  const { memoryBytes, cpuCount, pids, diskBytes } = s.limits;
  return JSON.stringify([s.tier, s.template, memoryBytes, cpuCount, pids, diskBytes]);
}

/** Pre-started sandboxes by shape. */
export class WarmPool {
  private readonly ready = new Map<string, WarmSandbox[]>();
  private readonly filling = new Map<string, Promise<void>>();
  /** Refills scheduled after a `take`, by shape. */
  private readonly pending = new Map<string, Promise<void>>();
  /** Shapes asked for, least recent first. */
  private readonly shapes: string[] = [];
  /** Discards under way (drain waits for them). */
  private readonly discarding = new Set<Promise<void>>();
  private closed = false;

  private readonly host: WarmPoolHost;
  /** Sandboxes kept per shape (0: the pool is off). */
  readonly size: number;
  private readonly maxShapes: number;

  constructor(host: WarmPoolHost, size: number, maxShapes = 2) {
    this.host = host;
    this.size = size;
    this.maxShapes = maxShapes;
  }

  /** A warm sandbox of `shape`, or undefined when none is ready. */
  take(shape: WarmShape): WarmSandbox | undefined {
    if (this.size === 0 || this.closed) return undefined;
    return this.ready.get(keyOf(shape))?.shift();
  }

  /**
   * Notes that a sandbox of `shape` was created (taken or started cold): the
   * shape is remembered and its pool refilled in the background. Called only
   * after a create succeeded, so that failing creates (an unknown template)
   * cannot push the shapes in use out of the pool.
   */
  created(shape: WarmShape): void {
    if (this.size === 0 || this.closed) return;
    const key = keyOf(shape);
    this.remember(key);
    if (!this.pending.has(key)) {
      const later = new Promise<void>((resolve) =>
        setTimeout(() => {
          this.pending.delete(key);
          this.fill(key, shape);
          resolve();
        }, REFILL_DELAY_MS),
      );
      this.pending.set(key, later);
    }
  }

  /** Remembers `shape` and starts filling its pool now. */
  prewarm(shape: WarmShape): void {
    if (this.size === 0 || this.closed) return;
    const key = keyOf(shape);
    this.remember(key);
    this.fill(key, shape);
  }

  /** Number of ready sandboxes (all shapes). */
  count(): number {
    let n = 0;
    for (const l of this.ready.values()) n += l.length;
    return n;
  }

  /** Waits until no start is under way (tests and benchmarks). */
  async settled(): Promise<void> {
    while (this.filling.size > 0 || this.pending.size > 0) {
      await Promise.all([...this.pending.values(), ...this.filling.values()]);
    }
  }

  private remember(key: string): void {
    const i = this.shapes.indexOf(key);
    if (i >= 0) this.shapes.splice(i, 1);
    this.shapes.push(key);
    while (this.shapes.length > this.maxShapes) {
      const old = this.shapes.shift()!;
      const stale = this.ready.get(old) ?? [];
      this.ready.delete(old);
      for (const s of stale) this.discard(s);
    }
  }

  /** Stops an unclaimed sandbox in the background (drain waits for it). */
  discard(sb: WarmSandbox): void {
    const p = this.host.discard(sb).catch(() => {});
    this.discarding.add(p);
    void p.finally(() => this.discarding.delete(p));
  }

  /** Starts sandboxes of `shape` one at a time until `size` are ready. */
  private fill(key: string, shape: WarmShape): void {
    if (this.closed || this.filling.has(key) || !this.shapes.includes(key)) return;
    const run = (async () => {
      while (!this.closed && this.shapes.includes(key) && (this.ready.get(key)?.length ?? 0) < this.size) {
        let sb: WarmSandbox;
        try {
          sb = await this.host.start(shape);
        } catch {
          return; // the caller's own create reports the reason; do not retry in a loop
        }
        if (this.closed || !this.shapes.includes(key)) {
          await this.host.discard(sb).catch(() => {});
          return;
        }
        this.ready.set(key, [...(this.ready.get(key) ?? []), sb]);
      }
    })();
    this.filling.set(key, run);
    void run.finally(() => this.filling.delete(key));
  }

  /** Stops every unclaimed sandbox; the pool takes no more. */
  async drain(): Promise<void> {
    this.closed = true;
    await this.settled();
    const all = [...this.ready.values()].flat();
    this.ready.clear();
    for (const s of all) this.discard(s);
    await Promise.all(this.discarding);
  }
}
