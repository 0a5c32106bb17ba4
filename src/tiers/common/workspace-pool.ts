/**
 * A warm pool of formatted, mounted workspace images, so that creating a
 * real-tier sandbox does not wait for truncate, mkfs and mount (about 25 ms
 * of process spawns): it renames a ready entry into its state directory (a
 * mount moves with the directory that holds it) and the pool refills in the
 * background.
 *
 * Each Kiln process has its own pool directory, `<dataDir>/pool/<pid>-<start>`
 * (its pid and start time, so a reused pid is not mistaken for it). The pool
 * fills after the process's first real-tier sandbox is created and is drained
 * (unmounted, deleted) when the process closes its Kiln. A process killed
 * outright cannot drain its pool: the next process to use the data directory
 * sweeps the pools whose owner is gone (`sweepStalePools`), so their mounts do
 * not outlive them for long. `KILN_WORKSPACE_POOL` sets the pool's size per
 * disk size (default 2; 0 turns it off).
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { OWN_PROCESS_TOKEN, processAlive } from "../../core/process-token.ts";
import { WorkspaceImage } from "./workspace-image.ts";

const READY = "ready";
/** Delay before refilling after a take, ms. */
const REFILL_DELAY_MS = 250;

/** The pool of one data directory in this process. */
export class WorkspacePool {
  private readonly root: string;
  private readonly size: number;
  private filling: Promise<void> | undefined;
  private closed = false;

  constructor(root: string, size = Number(process.env.KILN_WORKSPACE_POOL ?? 2)) {
    this.root = root;
    this.size = Number.isFinite(size) && size > 0 ? Math.floor(size) : 0;
  }

  private entries(diskBytes: number): string[] {
    try {
      return readdirSync(this.root).filter(
        (n) => n.startsWith(`${diskBytes}-`) && existsSync(join(this.root, n, READY)),
      );
    } catch {
      return [];
    }
  }

  /**
   * Moves a ready image of `diskBytes` to `dest` (which must not exist).
   * Returns false when none is ready; refills in the background either way.
   */
  take(diskBytes: number, dest: string): boolean {
    let taken = false;
    for (const name of this.entries(diskBytes)) {
      try {
        rmSync(join(this.root, name, READY));
        renameSync(join(this.root, name), dest);
        taken = true;
        break;
      } catch {
        // Another taker won this entry: try the next.
      }
    }
    // Refill after the caller's sandbox has started: on two cores, mkfs would slow its start.
    setTimeout(() => this.refill(diskBytes), REFILL_DELAY_MS).unref();
    return taken;
  }

  /** Starts filling the pool up to its size (one image at a time, off the caller's path). */
  refill(diskBytes: number): void {
    if (this.size === 0 || this.closed || this.filling) return;
    this.filling = (async () => {
      while (!this.closed && this.entries(diskBytes).length < this.size) {
        const building = join(this.root, `.building-${randomBytes(6).toString("hex")}`);
        mkdirSync(building, { recursive: true });
        const img = new WorkspaceImage(building, ".");
        try {
          await img.create(diskBytes);
          writeFileSync(join(building, READY), "");
          renameSync(building, join(this.root, `${diskBytes}-${randomBytes(6).toString("hex")}`));
        } catch {
          await img.destroy().catch(() => {});
          rmSync(building, { recursive: true, force: true });
          return;
        }
      }
    })().finally(() => {
      this.filling = undefined;
    });
  }

  /** Waits for a refill under way (benchmarks and tests). */
  async settled(): Promise<void> {
    await this.filling;
  }

  /** Unmounts and deletes every pooled image, and the pool's directory. */
  async drain(): Promise<void> {
    this.closed = true;
    await this.filling?.catch(() => {});
    await destroyAll(this.root);
    rmSync(this.root, { recursive: true, force: true });
  }
}

const pools = new Map<string, WorkspacePool>();
const swept = new Map<string, Promise<void>>();

/** Unmounts and deletes every entry under `dir`, then `dir` itself. */
async function destroyAll(dir: string): Promise<void> {
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) {
    await new WorkspaceImage(join(dir, n), ".").destroy().catch(() => {});
    rmSync(join(dir, n), { recursive: true, force: true });
  }
}

/**
 * Removes the pools of processes that ended without draining them (SIGKILL, a
 * crash), mounts included. Runs once per data directory per process; callers
 * await it before they use the data directory's pool.
 */
export function sweepStalePools(dataDir: string): Promise<void> {
  let done = swept.get(dataDir);
  if (!done) {
    done = (async () => {
      const root = join(dataDir, "pool");
      let names: string[] = [];
      try {
        names = readdirSync(root);
      } catch {
        return;
      }
      for (const n of names) {
        if (n === OWN_PROCESS_TOKEN || processAlive(n)) continue;
        const dir = join(root, n);
        try {
          // A pool directory holds images; an image directory (the layout of
          // earlier versions, or a build cut short) is one itself.
          if (existsSync(join(dir, "workspace.img")) || n.startsWith(".building-")) {
            await new WorkspaceImage(dir, ".").destroy();
          } else {
            await destroyAll(dir);
          }
          rmSync(dir, { recursive: true, force: true });
        } catch {
          // Still busy: the next process tries again; it never blocks a create.
        }
      }
    })();
    swept.set(dataDir, done);
  }
  return done;
}

/** The pool of `dataDir` in this process. */
export function poolFor(dataDir: string): WorkspacePool {
  let p = pools.get(dataDir);
  if (!p) {
    p = new WorkspacePool(join(dataDir, "pool", OWN_PROCESS_TOKEN));
    pools.set(dataDir, p);
  }
  return p;
}

/** Drains the pool of `dataDir` (called when a tier's backend closes). */
export async function drainPool(dataDir: string): Promise<void> {
  const p = pools.get(dataDir);
  pools.delete(dataDir);
  swept.delete(dataDir);
  await p?.drain();
}
