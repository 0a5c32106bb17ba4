/**
 * A sandbox's /workspace on the real-binary tiers: a sparse ext4 image of
 * `limits.diskBytes` in the sandbox's state directory, loop-mounted while the
 * sandbox runs. The filesystem itself enforces the disk limit (ENOSPC), the
 * workspace survives restarts, and it costs only the blocks it uses.
 */
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  statfsSync,
  truncateSync,
} from "node:fs";
import { join } from "node:path";
import { run, which } from "./host.ts";

/**
 * Copies an image keeping its holes. ext4 here has no reflink, so this costs
 * the blocks in use (docs/architecture.md, "Snapshots and fork").
 */
async function copySparse(from: string, to: string): Promise<void> {
  await run("cp", ["--sparse=always", "--reflink=auto", "--", from, to], { timeoutMs: 600_000 });
}

/** Where ready-made images come from (the workspace pool): moves one of `diskBytes` into `dir`, or says false. */
export interface ReadyImages {
  take(diskBytes: number, dir: string): boolean;
}

/** Paths of one sandbox's workspace image. */
export class WorkspaceImage {
  /** The image file. */
  readonly imagePath: string;
  /** Where it is mounted on the host while the sandbox runs. */
  readonly mountPath: string;

  /** The directory holding the image and its mount point (moved as one from the warm pool). */
  readonly dir: string;

  /** `stateDir/sub` holds the image and the mount point; default `ws`. */
  constructor(stateDir: string, sub = "ws") {
    this.dir = join(stateDir, sub);
    this.imagePath = join(this.dir, "workspace.img");
    this.mountPath = join(this.dir, "workspace");
  }

  /** Why images cannot be made here, or undefined when they can. */
  static unavailableReason(): string | undefined {
    if (!which("mkfs.ext4")) return "mkfs.ext4 not found (install e2fsprogs)";
    if (!existsSync("/dev/loop-control") && !existsSync("/dev/loop0"))
      return "no loop devices (/dev/loop-control)";
    return undefined;
  }

  /** Makes the image (sparse) and its filesystem, taking a ready one from `pool` when it has one. */
  async create(diskBytes: number, pool?: ReadyImages): Promise<void> {
    if (pool?.take(diskBytes, this.dir)) return;
    mkdirSync(this.dir, { recursive: true });
    // ext4 needs a few MiB for its own structures; below that the limit could not hold a file.
    const size = Math.max(diskBytes, 8 * 1024 * 1024);
    closeSync(openSync(this.imagePath, "w"));
    truncateSync(this.imagePath, size);
    await run(which("mkfs.ext4") ?? "mkfs.ext4", [
      "-q",
      "-F",
      "-m",
      "0",
      "-E",
      "lazy_itable_init=1,lazy_journal_init=1,root_owner=0:0",
      this.imagePath,
    ]);
    await this.mount();
    rmSync(join(this.mountPath, "lost+found"), { recursive: true, force: true });
  }

  /** Makes the image a copy of `source` (a saved image: holes stay holes), and mounts it. */
  async createFrom(source: string): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    await copySparse(source, this.imagePath);
    await this.mount();
  }

  /**
   * Copies the image into `dest`, consistent even while mounted and written
   * to: the filesystem is frozen (its journal flushed, writers held) for the
   * copy and thawed after it. Returns the bytes the copy takes on disk.
   */
  async saveTo(dest: string): Promise<void> {
    const frozen = this.mounted();
    if (frozen) await run(which("fsfreeze") ?? "fsfreeze", ["--freeze", this.mountPath]);
    try {
      await copySparse(this.imagePath, dest);
    } finally {
      if (frozen) await this.thaw();
    }
  }

  /** Thaws the filesystem if frozen (a crash during `saveTo` leaves it frozen). Idempotent. */
  async thaw(): Promise<void> {
    if (!this.mounted()) return;
    await run(which("fsfreeze") ?? "fsfreeze", ["--unfreeze", this.mountPath]).catch(() => {});
  }

  /** True when the image is mounted at `mountPath`. */
  mounted(): boolean {
    try {
      return readFileSync("/proc/self/mountinfo", "utf8")
        .split("\n")
        .some((l) => l.split(" ")[4] === this.mountPath);
    } catch {
      return false;
    }
  }

  /** Mounts the image (idempotent). */
  async mount(): Promise<void> {
    if (this.mounted()) return;
    mkdirSync(this.mountPath, { recursive: true, mode: 0o755 });
    await run("mount", ["-o", "loop,nosuid,nodev", this.imagePath, this.mountPath]);
  }

  /** Unmounts the image (idempotent; lazily when something still holds it). */
  async unmount(): Promise<void> {
    if (!this.mounted()) return;
    try {
      await run("umount", [this.mountPath]);
    } catch {
      await run("umount", ["-l", this.mountPath]);
    }
  }

  /** Bytes used in the workspace. */
  usedBytes(): number | undefined {
    if (!this.mounted()) return undefined;
    const s = statfsSync(this.mountPath);
    return (s.blocks - s.bfree) * s.bsize;
  }

  /** Bytes still free in the workspace. */
  freeBytes(): number | undefined {
    if (!this.mounted()) return undefined;
    const s = statfsSync(this.mountPath);
    return s.bavail * s.bsize;
  }

  /** Unmounts and deletes the image. */
  async destroy(): Promise<void> {
    await this.unmount();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
