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
 * `list` and `connect` until `claim` hands it out. If its process is killed, the
 * next Kiln on the data directory finds the stamp of a dead owner and
 * destroys it (`reapOrphaned`, from `Kiln.open`).
 *
 * The whole lifecycle lives here: starting under a new id, the stamp, the
 * hand-over to a record, the template check, discarding, and the reaping of
 * a dead process's sandboxes. Kiln only asks for one at `create`.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { NO_NETWORK } from "../network/policy.ts";
import type { Backend, Instance, InstanceSpec } from "./backend.ts";
import { newSandboxId } from "./ids.ts";
import type { Limits } from "./limits.ts";
import { WORKSPACE } from "./paths.ts";
import { DEFAULT_PORT_POLICY } from "./ports.ts";
import { OWN_PROCESS_TOKEN, processAlive } from "./process-token.ts";
import type { SandboxInfo, TierName } from "./types.ts";

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

/** What the pool needs from its Kiln. */
export interface WarmPoolHost {
  /** The data directory (sandboxes/<id>/ under it). */
  dataDir: string;
  /** The backend of a tier. */
  backend(tier: TierName): Promise<Backend>;
  /** The instance spec of a sandbox (its paths). */
  spec(info: SandboxInfo): InstanceSpec;
  /** Whether a sandbox has a record (then it is no longer warm). */
  hasRecord(id: string): boolean;
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

  /**
   * Hands out a warm sandbox of `shape` when one is ready on a warm-able tier
   * and still runs the template the name points at now; undefined otherwise.
   * `writeRecord(id)` writes the sandbox's record under the warm sandbox's id:
   * it runs before the warm stamp goes, so that no crash in between can leave
   * the sandbox unowned. What `writeRecord` throws is thrown (the warm sandbox
   * is discarded).
   */
  claim(shape: WarmShape, backend: Backend, writeRecord: (id: string) => void): WarmSandbox | undefined {
    if (this.size === 0 || this.closed || !backend.capabilities.warmable) return undefined;
    const warm = this.ready.get(keyOf(shape))?.shift();
    if (!warm) return undefined;
    if (warm.digest !== backend.templateDigest?.(this.host.dataDir, shape.template)) {
      // The template was rebuilt or re-imported since this one started: it is not what was asked for.
      this.discard(warm);
      return undefined;
    }
    try {
      writeRecord(warm.id);
    } catch (e) {
      this.discard(warm);
      throw e;
    }
    rmSync(join(this.stateDir(warm.id), WARM_MARKER), { force: true });
    return warm;
  }

  /**
   * Notes that a sandbox of `shape` was created on `backend` (taken or started
   * cold): on a warm-able tier the shape is remembered and its pool refilled in
   * the background. Called only after a create succeeded, so that failing
   * creates (an unknown template) cannot push the shapes in use out of the pool.
   */
  created(shape: WarmShape, backend: Backend): void {
    if (this.size === 0 || this.closed || !backend.capabilities.warmable) return;
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

  /** On a warm-able tier, remembers `shape` and starts filling its pool now. */
  prewarm(shape: WarmShape, backend: Backend): void {
    if (this.size === 0 || this.closed || !backend.capabilities.warmable) return;
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
  private discard(sb: WarmSandbox): void {
    const p = this.destroy(sb).catch(() => {});
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
          sb = await this.start(shape);
        } catch {
          return; // the caller's own create reports the reason; do not retry in a loop
        }
        if (this.closed || !this.shapes.includes(key)) {
          await this.destroy(sb).catch(() => {});
          return;
        }
        this.ready.set(key, [...(this.ready.get(key) ?? []), sb]);
      }
    })();
    this.filling.set(key, run);
    void run.finally(() => this.filling.delete(key));
  }

  private stateDir(id: string): string {
    return join(this.host.dataDir, "sandboxes", id);
  }

  /** The spec of a warm sandbox (it has no record yet). */
  private spec(id: string, shape: WarmShape): InstanceSpec {
    return this.host.spec({
      id,
      ...shape,
      state: "running",
      env: {},
      cwd: WORKSPACE,
      metadata: {},
      network: { ...NO_NETWORK, allow: [], deny: [] },
      ports: { ...DEFAULT_PORT_POLICY },
      volumes: [],
      createdAt: new Date().toISOString(),
      expiresAt: null,
    });
  }

  /** Starts a sandbox of `shape` under a new id, stamped as warm by this process. */
  private async start(shape: WarmShape): Promise<WarmSandbox> {
    const backend = await this.host.backend(shape.tier);
    const id = newSandboxId();
    const spec = this.spec(id, shape);
    mkdirSync(spec.stateDir, { recursive: true, mode: 0o700 });
    writeFileSync(join(spec.stateDir, WARM_MARKER), JSON.stringify({ owner: OWN_PROCESS_TOKEN, ...shape }));
    try {
      const instance = await backend.create(spec);
      const digest = backend.templateDigest?.(this.host.dataDir, shape.template);
      return { id, shape, instance, ...(digest !== undefined ? { digest } : {}) };
    } catch (e) {
      await backend.destroy(spec).catch(() => {});
      rmSync(spec.stateDir, { recursive: true, force: true });
      throw e;
    }
  }

  /** Stops an unclaimed sandbox and deletes everything it made. */
  private async destroy(sb: WarmSandbox): Promise<void> {
    const spec = this.spec(sb.id, sb.shape);
    await sb.instance.close().catch(() => {});
    await (await this.host.backend(sb.shape.tier)).destroy(spec).catch(() => {});
    rmSync(spec.stateDir, { recursive: true, force: true });
  }

  /** Destroys warm sandboxes whose process ended without handing them out or stopping them. */
  async reapOrphaned(): Promise<void> {
    const root = join(this.host.dataDir, "sandboxes");
    for (const id of readdirSync(root)) {
      const marker = join(root, id, WARM_MARKER);
      if (!existsSync(marker) || this.host.hasRecord(id)) continue;
      let stamp: WarmShape & { owner: string };
      try {
        stamp = JSON.parse(readFileSync(marker, "utf8"));
      } catch {
        continue; // being written by its (live) owner
      }
      if (processAlive(stamp.owner)) continue;
      try {
        await (await this.host.backend(stamp.tier)).destroy(this.spec(id, stamp));
      } catch {
        // The tier is gone from this build: its state directory is all there is to remove.
      }
      rmSync(join(root, id), { recursive: true, force: true });
    }
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
