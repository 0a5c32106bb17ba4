/**
 * A sandbox's /workspace as a plain directory of the host, for Kiln run by an
 * ordinary user, who cannot mount the ext4 image that holds the disk limit
 * (`WorkspaceImage`): nothing limits its size but the host filesystem. It sits
 * where the image would be mounted (`<stateDir>/ws/workspace`), so the same
 * paths serve both. A saved copy (snapshot, fork, pause) is one tar file.
 *
 * The sandbox runs as the same host user as Kiln and may change its tree
 * while a copy is taken (a directory swapped for a link to the user's files,
 * say), so the copy is not read by a host process: GNU tar reads it inside a
 * bubblewrap jail that holds only the workspace and the host's public system
 * directories, read-only, so any link resolves inside the jail. A copy is
 * written back into a new, empty directory (no sandbox running there yet) by
 * Kiln's own tar code through the host-tree sink, which never writes through
 * a link (`workspace/tar.ts`, `workspace/host-tree.ts`).
 */

import { spawn } from "node:child_process";
import { once } from "node:events";
import {
  chmodSync,
  createReadStream,
  createWriteStream,
  lstatSync,
  mkdirSync,
  readdirSync,
  rmSync,
} from "node:fs";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import type { ReadableStream } from "node:stream/web";
import { hostTreeSink } from "../../workspace/host-tree.ts";
import { unpackTree } from "../../workspace/tar.ts";
import { which } from "./host.ts";

/** The file of a saved workspace in a state directory (state directories hold files only). */
const SAVED_TAR = "workspace.tar";

/**
 * bubblewrap running `command` in a jail of its own: every namespace unshared, no capabilities,
 * the workspace read-only at /w and, besides, only the host's system directories (public files).
 */
export function jailArgs(workspace: string, command: readonly string[]): string[] {
  return [
    "--unshare-all",
    "--die-with-parent",
    "--new-session",
    "--cap-drop",
    "ALL",
    "--ro-bind",
    "/usr",
    "/usr",
    ...["/bin", "/lib", "/lib64"].flatMap((d) => ["--ro-bind-try", d, d]),
    "--dev",
    "/dev",
    "--ro-bind",
    workspace,
    "/w",
    "--",
    ...command,
  ];
}

/** GNU tar of /w: hard links stored as files (Kiln's tar import takes none), owners as numbers. */
const TAR = [
  "/usr/bin/tar",
  "--create",
  "--file=-",
  "--directory=/w",
  "--format=pax",
  "--numeric-owner",
  "--hard-dereference",
  ".",
];

/** Makes every directory below `dir` writable and searchable by its owner (a sandbox may have made one 0), so it can be removed. */
function ownerMayRemove(dir: string): void {
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(dir);
  } catch {
    return;
  }
  if (!st.isDirectory()) return;
  if ((st.mode & 0o700) !== 0o700) chmodSync(dir, (st.mode & 0o7777) | 0o700);
  for (const e of readdirSync(dir, { withFileTypes: true }))
    if (e.isDirectory()) ownerMayRemove(join(dir, e.name));
}

/** One sandbox's workspace directory. */
export class WorkspaceDir {
  /** The directory holding the workspace (`<stateDir>/ws`). */
  readonly dir: string;
  /** The workspace itself, bound at /workspace. */
  readonly mountPath: string;

  constructor(stateDir: string) {
    this.dir = join(stateDir, "ws");
    this.mountPath = join(this.dir, "workspace");
  }

  /** The saved workspace in the state directory `dir` (written by {@link saveTo}). */
  static saved(dir: string): string {
    return join(dir, SAVED_TAR);
  }

  /** Makes it empty. */
  async create(): Promise<void> {
    mkdirSync(this.mountPath, { recursive: true, mode: 0o755 });
  }

  /** Makes it a copy of a saved workspace (`saved(dir)`). */
  async createFrom(saved: string): Promise<void> {
    mkdirSync(this.mountPath, { recursive: true, mode: 0o755 });
    await unpackTree(
      Readable.toWeb(createReadStream(saved)) as ReadableStream<Uint8Array>,
      hostTreeSink(this.mountPath),
    );
  }

  /**
   * Writes it as a tar file `dest` (not frozen: a copy taken while commands write may be torn, as
   * a tar of any live tree); returns the bytes the copy takes on disk.
   */
  async saveTo(dest: string): Promise<number> {
    const out = createWriteStream(dest, { mode: 0o600, flags: "wx" });
    await once(out, "open");
    const tar = spawn(which("bwrap") ?? "bwrap", jailArgs(this.mountPath, TAR), {
      stdio: ["ignore", out, "pipe"],
    });
    let stderr = "";
    tar.stderr!.on("data", (d: Buffer) => {
      if (stderr.length < 4096) stderr += d.toString();
    });
    const [code] = (await once(tar, "close")) as [number | null];
    out.close();
    // GNU tar: 1 is "some files changed while being read" (a live copy), 2 a fatal error.
    if (code !== 0 && code !== 1) throw new Error(`saving the workspace failed (${code}): ${stderr.trim()}`);
    return (await stat(dest)).blocks * 512;
  }

  /** Nothing to mount: the directory is there (made if missing). */
  async mount(): Promise<void> {
    mkdirSync(this.mountPath, { recursive: true, mode: 0o755 });
  }

  /** Nothing to unmount. */
  async unmount(): Promise<void> {}

  /** Unknown: no filesystem of its own. */
  usedBytes(): number | undefined {
    return undefined;
  }

  /** Unknown: no filesystem of its own, so no disk limit to report reached. */
  freeBytes(): number | undefined {
    return undefined;
  }

  /** Deletes it, whatever modes the sandbox left on its directories. */
  async destroy(): Promise<void> {
    ownerMayRemove(this.dir);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
