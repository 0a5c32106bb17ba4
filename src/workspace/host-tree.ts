/**
 * A host directory as a tar source or sink (for `kiln cp`). The sink is what
 * writes a sandbox's files onto the host, so it trusts nothing in the
 * archive:
 * - it never writes through a symlink: every parent of a path it writes must
 *   be a real directory below the root; a file is created exclusively
 *   (`O_EXCL | O_NOFOLLOW`) under a temporary name and renamed into place,
 *   so a link already at its path is replaced, not followed; modes and times
 *   are set on open descriptors, never by path;
 * - it keeps permission bits only: setuid, setgid and sticky bits are dropped;
 * - it creates no device nodes or FIFOs (they are skipped), and replaces
 *   none of the host's (`invalid_argument`);
 * - what it creates belongs to the calling process's user and group.
 * Its guarantees rely on nothing else changing the host tree during the copy.
 */
import { randomBytes } from "node:crypto";
import { constants, createReadStream, type Stats } from "node:fs";
import {
  type FileHandle,
  lstat,
  lutimes,
  mkdir,
  open,
  readdir,
  readlink,
  rename,
  rm,
  symlink,
} from "node:fs/promises";
import { dirname, join, posix } from "node:path";
import type { Readable } from "node:stream";
import { InvalidArgumentError } from "../core/errors.ts";
import type { TreeEntry, TreeSink, TreeSource } from "./tar.ts";

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_RDONLY, O_DIRECTORY } = constants;

/** The mode bits a copy onto the host keeps: permissions, never setuid, setgid or sticky. */
export const HOST_MODE_BITS = 0o777;

/** The tree below host directory `root`. */
export function hostTreeSource(root: string): TreeSource {
  return {
    async *entries(): AsyncIterable<TreeEntry> {
      const walk = async function* (rel: string): AsyncGenerator<TreeEntry> {
        const names = (await readdir(join(root, rel))).sort();
        for (const name of names) {
          const r = rel ? `${rel}/${name}` : name;
          const st = await lstat(join(root, r));
          const base = { path: r, mode: st.mode & 0o7777, mtimeMs: st.mtimeMs };
          if (st.isDirectory()) {
            yield { ...base, type: "dir", size: 0 };
            yield* walk(r);
          } else if (st.isSymbolicLink()) {
            yield { ...base, type: "symlink", size: 0, linkTarget: await readlink(join(root, r)) };
          } else if (st.isFile()) {
            yield { ...base, type: "file", size: st.size };
          }
        }
      };
      yield* walk("");
    },
    async open(rel: string): Promise<Readable> {
      return createReadStream(join(root, rel));
    },
  };
}

/** Makes a new entry belong to the calling process's user and group (a setgid parent would give it its group). */
async function ownByCaller(fh: FileHandle): Promise<void> {
  if (process.geteuid && process.getegid) await fh.chown(process.geteuid(), process.getegid());
}

/** Opens the directory at `path` itself; fails (ELOOP, ENOTDIR) when a link or a non-directory is there. */
function openDirNoFollow(path: string): Promise<FileHandle> {
  return open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
}

/**
 * Writes `data` as a new regular file at host path `path` without following
 * any link there: the bytes go to a temporary file created exclusively beside
 * it, which is then renamed over `path` (a link at `path` is replaced; a
 * directory there is refused). The mode keeps permission bits only; the owner
 * is the calling process. @throws InvalidArgumentError when `path` is a directory
 */
export async function writeHostFile(
  path: string,
  data: Readable,
  mode: number,
  mtimeMs?: number,
): Promise<void> {
  const tmp = join(dirname(path), `.kiln-cp-${randomBytes(6).toString("hex")}`);
  const fh = await open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
  try {
    try {
      for await (const chunk of data) await fh.write(chunk as Uint8Array);
      await ownByCaller(fh);
      await fh.chmod(mode & HOST_MODE_BITS);
      if (mtimeMs !== undefined) await fh.utimes(mtimeMs / 1000, mtimeMs / 1000);
    } finally {
      await fh.close();
    }
    await rename(tmp, path).catch((e: NodeJS.ErrnoException) => {
      if (e.code === "EISDIR" || e.code === "ENOTEMPTY" || e.code === "EEXIST")
        throw new InvalidArgumentError(`cannot overwrite the directory ${path} with a file`, { cause: e });
      throw e;
    });
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/**
 * Makes `path` a real directory, replacing a link or a non-directory there
 * (never following it). One it creates gets `mode`'s permission bits (and
 * owner rights, so that it can be filled) and the calling process as owner;
 * an existing directory is left as it is. Returns whether it created one.
 */
export async function ensureHostDir(path: string, mode: number): Promise<boolean> {
  const st = await lstat(path).catch(() => undefined);
  if (st?.isDirectory()) return false;
  refuseSpecial(st, path);
  if (st) await rm(path, { force: true });
  await mkdir(path, { mode: 0o700 });
  const fh = await openDirNoFollow(path);
  try {
    await ownByCaller(fh);
    await fh.chmod((mode & HOST_MODE_BITS) | 0o700);
  } finally {
    await fh.close();
  }
  return true;
}

/** Refuses to replace a device node, FIFO or socket at `path` (the host's, not the sandbox's). */
function refuseSpecial(st: Stats | undefined, path: string): void {
  if (st && (st.isCharacterDevice() || st.isBlockDevice() || st.isFIFO() || st.isSocket()))
    throw new InvalidArgumentError(`refusing to replace the special file ${path}`);
}

/** Checks that every parent of `rel` below `root` is a real directory (creating missing ones). */
async function safeParent(root: string, rel: string): Promise<void> {
  let cur = root;
  for (const part of posix
    .dirname(rel)
    .split("/")
    .filter((p) => p && p !== ".")) {
    cur = join(cur, part);
    const st = await lstat(cur).catch(() => undefined);
    if (!st) await ensureHostDir(cur, 0o755);
    else if (!st.isDirectory())
      throw new InvalidArgumentError(`refusing to write through a non-directory: ${rel}`);
  }
}

/** Options of {@link hostTreeSink}. */
export interface HostTreeSinkOptions {
  /** Told of each entry not created (device nodes, FIFOs), by path and tar type. */
  onSkip?: (path: string, type: string) => void;
}

/** A sink writing below host directory `root`, which must be a real directory. */
export function hostTreeSink(root: string, options: HostTreeSinkOptions = {}): TreeSink {
  return {
    async mkdir(rel, mode) {
      await safeParent(root, rel);
      await ensureHostDir(join(root, rel), mode);
    },
    async file(rel, mode, mtimeMs, data) {
      await safeParent(root, rel);
      const p = join(root, rel);
      const st = await lstat(p).catch(() => undefined);
      refuseSpecial(st, p);
      if (st?.isDirectory()) await rm(p, { recursive: true, force: true });
      await writeHostFile(p, data, mode, mtimeMs);
    },
    async symlink(rel, target, mtimeMs) {
      await safeParent(root, rel);
      const p = join(root, rel);
      refuseSpecial(await lstat(p).catch(() => undefined), p);
      await rm(p, { recursive: true, force: true });
      await symlink(target, p);
      await lutimes(p, mtimeMs / 1000, mtimeMs / 1000).catch(() => {});
    },
    skip(rel, type) {
      options.onSkip?.(rel, type);
    },
    async finish(dirs) {
      for (const d of dirs) {
        // A later entry may have replaced the directory with a link: its times are then not ours to set.
        const fh = await openDirNoFollow(join(root, d.path)).catch(() => undefined);
        if (!fh) continue;
        try {
          await fh.utimes(d.mtimeMs / 1000, d.mtimeMs / 1000);
        } finally {
          await fh.close();
        }
      }
    },
  };
}
