/**
 * Kiln's own access to a volume's files on the host (the E2B volume content
 * API), which must never follow a link a sandbox planted: a volume is
 * written by sandboxes, so any name in it may be a symlink to a host path,
 * or become one between two calls.
 *
 * Every path is walked one component at a time from a directory descriptor:
 * each step opens `/proc/self/fd/<dir>/<name>` with O_NOFOLLOW (the magic link
 * names the directory already open, whatever it was renamed to since), so a
 * symlink anywhere fails the walk (ELOOP, seen as `invalid_argument`), `..`
 * is refused before the walk, and every operation acts on one name inside a
 * directory held open. Removal is done the same way, never by path.
 * Reads open with O_NONBLOCK and accept regular files only (a FIFO cannot
 * hold a request open). Modes lose their setuid, setgid bits.
 */
import { randomBytes } from "node:crypto";
import { constants as C, type Stats } from "node:fs";
import { type FileHandle, lstat, mkdir, open, readdir, rename, rmdir, unlink } from "node:fs/promises";
import { Readable } from "node:stream";
import {
  ConflictError,
  InvalidArgumentError,
  KilnError,
  LimitExceededError,
  NotFoundError,
} from "./errors.ts";

/** One entry of a volume, as the E2B volume API describes it. */
export interface VolumeEntry {
  /** Base name (`""` for the root). */
  name: string;
  /** Path from the volume's root, starting with `/`. */
  path: string;
  /** Entry kind. */
  type: "file" | "directory" | "symlink" | "unknown";
  /** Size in bytes. */
  size: number;
  /** Permission bits. */
  mode: number;
  uid: number;
  gid: number;
  atimeMs: number;
  mtimeMs: number;
  ctimeMs: number;
  /** A symlink's target (never followed). */
  target?: string;
}

/** Owner and mode to give an entry. */
export interface EntryMetadata {
  uid?: number;
  gid?: number;
  /** Permission bits; setuid and setgid are dropped. */
  mode?: number;
}

const DIR_FLAGS = C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW;

/** Most entries one `list` returns (a deep listing of a large volume is refused, not buffered). */
export const MAX_LIST_ENTRIES = 100_000;

/** The components of a path inside a volume. @throws InvalidArgumentError */
export function volumePathParts(path: unknown): string[] {
  if (typeof path !== "string" || path.length > 4096 || path.includes("\0"))
    throw new InvalidArgumentError(`not a volume path: ${JSON.stringify(path)}`);
  const parts = path.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) throw new InvalidArgumentError(`a volume path cannot hold "..": ${path}`);
  for (const p of parts) if (p.length > 255) throw new InvalidArgumentError("a path component is too long");
  return parts;
}

function at(fd: FileHandle, name: string): string {
  return `/proc/self/fd/${fd.fd}/${name}`;
}

function mapErrno(e: unknown, path: string): unknown {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return new NotFoundError(`no ${path} in the volume`, { resource: "file" });
  if (code === "ELOOP" || code === "ENOTDIR")
    return new InvalidArgumentError(`${path}: a symlink or a file where a directory was expected`);
  if (code === "EEXIST" || code === "ENOTEMPTY") return new ConflictError(`${path} exists`);
  if (code === "EISDIR") return new InvalidArgumentError(`${path} is a directory`);
  if (code === "ENOSPC" || code === "EDQUOT")
    return new LimitExceededError("diskBytes", 0, "the disk is full");
  if (e instanceof KilnError) return e;
  return e;
}

function entryOf(st: Stats, parts: string[], target?: string): VolumeEntry {
  const type = st.isFile()
    ? "file"
    : st.isDirectory()
      ? "directory"
      : st.isSymbolicLink()
        ? "symlink"
        : "unknown";
  return {
    name: parts.at(-1) ?? "",
    path: `/${parts.join("/")}`,
    type,
    size: st.size,
    mode: st.mode & 0o7777,
    uid: st.uid,
    gid: st.gid,
    atimeMs: st.atimeMs,
    mtimeMs: st.mtimeMs,
    ctimeMs: st.ctimeMs,
    ...(target !== undefined ? { target } : {}),
  };
}

/** Host-side file operations on one volume's directory. */
export class VolumeFiles {
  private readonly root: string;

  /** @param root the volume's host directory (`Kiln.volumeHostPath`) */
  constructor(root: string) {
    this.root = root;
  }

  /** Opens the directory `parts` (each step without following a link); `create` makes missing ones. */
  private async dir(parts: string[], create = false): Promise<FileHandle> {
    let fd = await open(this.root, DIR_FLAGS);
    try {
      for (const p of parts) {
        if (create) {
          try {
            await mkdir(at(fd, p), { mode: 0o755 });
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
          }
        }
        const next = await open(at(fd, p), DIR_FLAGS);
        await fd.close();
        fd = next;
      }
      return fd;
    } catch (e) {
      await fd.close().catch(() => {});
      throw e;
    }
  }

  /** Runs `fn` with the parent directory of `path` open and the entry's name. */
  private async inParent<T>(
    path: string,
    create: boolean,
    fn: (parent: FileHandle, name: string, parts: string[]) => Promise<T>,
  ): Promise<T> {
    const parts = volumePathParts(path);
    if (parts.length === 0) throw new InvalidArgumentError("the volume's root itself cannot be used here");
    try {
      const parent = await this.dir(parts.slice(0, -1), create);
      try {
        return await fn(parent, parts.at(-1)!, parts);
      } finally {
        await parent.close();
      }
    } catch (e) {
      throw mapErrno(e, path);
    }
  }

  private async describe(parent: FileHandle, name: string, parts: string[]): Promise<VolumeEntry> {
    const st = await lstat(at(parent, name));
    if (!st.isSymbolicLink()) return entryOf(st, parts);
    const { readlink } = await import("node:fs/promises");
    return entryOf(st, parts, await readlink(at(parent, name)));
  }

  /** The entry at `path` (a symlink is described, not followed). @throws NotFoundError, InvalidArgumentError */
  async stat(path: string): Promise<VolumeEntry> {
    const parts = volumePathParts(path);
    if (parts.length === 0) {
      try {
        return entryOf(await lstat(this.root), []);
      } catch (e) {
        throw mapErrno(e, path);
      }
    }
    return this.inParent(path, false, (p, n, parts2) => this.describe(p, n, parts2));
  }

  /** Entries below the directory `path`, to `depth` levels (1: children only). @throws NotFoundError */
  async list(path: string, depth = 1): Promise<VolumeEntry[]> {
    if (!Number.isInteger(depth) || depth < 1 || depth > 32)
      throw new InvalidArgumentError("depth must be an integer from 1 to 32");
    const parts = volumePathParts(path);
    const out: VolumeEntry[] = [];
    const walk = async (fd: FileHandle, base: string[], left: number): Promise<void> => {
      for (const name of (await readdir(`/proc/self/fd/${fd.fd}`)).sort()) {
        let e: VolumeEntry;
        try {
          e = await this.describe(fd, name, [...base, name]);
        } catch {
          continue; // gone meanwhile
        }
        out.push(e);
        if (out.length > MAX_LIST_ENTRIES)
          throw new LimitExceededError(
            "maxOutputBytes",
            MAX_LIST_ENTRIES,
            `more than ${MAX_LIST_ENTRIES} entries: list less deep`,
          );
        if (e.type === "directory" && left > 1) {
          let child: FileHandle;
          try {
            child = await open(at(fd, name), DIR_FLAGS);
          } catch {
            continue; // replaced by a link or removed meanwhile: not followed
          }
          try {
            await walk(child, [...base, name], left - 1);
          } finally {
            await child.close();
          }
        }
      }
    };
    try {
      const fd = await this.dir(parts);
      try {
        await walk(fd, parts, depth);
      } finally {
        await fd.close();
      }
    } catch (e) {
      throw mapErrno(e, path);
    }
    return out;
  }

  /**
   * Creates the directory `path`; with `parents`, its missing parents too.
   * @throws ConflictError (it exists), NotFoundError (a parent is missing)
   */
  async mkdir(path: string, options: EntryMetadata & { parents?: boolean } = {}): Promise<VolumeEntry> {
    return this.inParent(path, options.parents === true, async (parent, name, parts) => {
      await mkdir(at(parent, name), { mode: 0o755 });
      await this.apply(parent, name, options);
      return this.describe(parent, name, parts);
    });
  }

  /** The bytes of the regular file at `path`. @throws NotFoundError, InvalidArgumentError (not a file) */
  async read(path: string): Promise<{ size: number; stream: ReadableStream<Uint8Array> }> {
    return this.inParent(path, false, async (parent, name) => {
      const fh = await open(at(parent, name), C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
      try {
        const st = await fh.stat();
        if (!st.isFile()) throw new InvalidArgumentError(`${path} is not a regular file`);
        const stream = Readable.toWeb(fh.createReadStream({ autoClose: true })) as ReadableStream<Uint8Array>;
        return { size: st.size, stream };
      } catch (e) {
        await fh.close().catch(() => {});
        throw e;
      }
    });
  }

  /**
   * Writes (replacing) the file at `path`, creating missing parents: written under a temporary
   * name beside it and renamed over it only when whole. A link at `path` is replaced, not followed.
   * @throws LimitExceededError (`maxFileBytes`), InvalidArgumentError, NotFoundError
   */
  async write(
    path: string,
    data: ReadableStream<Uint8Array>,
    options: EntryMetadata & { maxBytes: number },
  ): Promise<VolumeEntry> {
    return this.inParent(path, true, async (parent, name, parts) => {
      const tmp = `.kiln-upload-${randomBytes(8).toString("hex")}`;
      const fh = await open(at(parent, tmp), C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o644);
      let written = 0;
      try {
        const reader = data.getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          written += value.byteLength;
          if (written > options.maxBytes) {
            await reader.cancel().catch(() => {});
            throw new LimitExceededError("maxFileBytes", options.maxBytes, "the file is too large");
          }
          await fh.write(value);
        }
        await this.applyFd(fh, options);
        await fh.sync();
        await fh.close();
        await rename(at(parent, tmp), at(parent, name));
      } catch (e) {
        await fh.close().catch(() => {});
        await unlink(at(parent, tmp)).catch(() => {});
        throw e;
      }
      return this.describe(parent, name, parts);
    });
  }

  /** Sets the owner and mode of the entry at `path` (not of a symlink). @throws NotFoundError */
  async setMetadata(path: string, metadata: EntryMetadata): Promise<VolumeEntry> {
    return this.inParent(path, false, async (parent, name, parts) => {
      await this.apply(parent, name, metadata);
      return this.describe(parent, name, parts);
    });
  }

  /** Removes the file, link or directory tree at `path`, never following a link. @throws NotFoundError */
  async remove(path: string): Promise<void> {
    await this.inParent(path, false, (parent, name) => removeAt(parent, name));
  }

  private async apply(parent: FileHandle, name: string, m: EntryMetadata): Promise<void> {
    if (m.mode === undefined && m.uid === undefined && m.gid === undefined) return;
    const fh = await open(at(parent, name), C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
    try {
      await this.applyFd(fh, m);
    } finally {
      await fh.close();
    }
  }

  private async applyFd(fh: FileHandle, m: EntryMetadata): Promise<void> {
    for (const [k, v] of Object.entries(m))
      if (
        (k === "uid" || k === "gid" || k === "mode") &&
        v !== undefined &&
        (!Number.isInteger(v) || v < 0 || v > 2 ** 32 - 2)
      )
        throw new InvalidArgumentError(`${k} must be a non-negative integer`);
    if (m.uid !== undefined || m.gid !== undefined) {
      const st = await fh.stat();
      await fh.chown(m.uid ?? st.uid, m.gid ?? st.gid);
    }
    // No setuid or setgid file is made on the host by a request.
    if (m.mode !== undefined) await fh.chmod(m.mode & 0o1777);
  }
}

/** Removes `name` in the directory `parent`; a directory's entries first, each by its own descriptor. */
async function removeAt(parent: FileHandle, name: string): Promise<void> {
  const st = await lstat(at(parent, name));
  if (!st.isDirectory()) {
    await unlink(at(parent, name));
    return;
  }
  const fd = await open(at(parent, name), DIR_FLAGS);
  try {
    for (const child of await readdir(`/proc/self/fd/${fd.fd}`)) {
      try {
        await removeAt(fd, child);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
      }
    }
  } finally {
    await fd.close();
  }
  await rmdir(at(parent, name));
}
