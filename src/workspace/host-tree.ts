/**
 * A host directory as a tar source or sink (for `kiln cp` and for tiers whose
 * workspace is a host directory). The sink never writes through a symlink:
 * every parent of a path it writes must be a real directory below the root,
 * so a hostile archive cannot plant a link and then write through it.
 */
import { createReadStream, createWriteStream } from "node:fs";
import { chmod, lstat, lutimes, mkdir, readdir, readlink, rm, symlink, utimes } from "node:fs/promises";
import { join, posix } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { InvalidArgumentError } from "../core/errors.ts";
import type { TreeEntry, TreeSink, TreeSource } from "./tar.ts";

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

/** Checks that every parent of `rel` below `root` is a real directory (creating missing ones). */
async function safeParent(root: string, rel: string): Promise<void> {
  let cur = root;
  for (const part of posix
    .dirname(rel)
    .split("/")
    .filter((p) => p && p !== ".")) {
    cur = join(cur, part);
    const st = await lstat(cur).catch(() => undefined);
    if (!st) await mkdir(cur, { mode: 0o755 });
    else if (!st.isDirectory())
      throw new InvalidArgumentError(`refusing to write through a non-directory: ${rel}`);
  }
}

/** A sink writing below host directory `root`. */
export function hostTreeSink(root: string): TreeSink {
  return {
    async mkdir(rel, mode) {
      await safeParent(root, rel);
      const p = join(root, rel);
      const st = await lstat(p).catch(() => undefined);
      if (st && !st.isDirectory()) await rm(p, { force: true });
      if (!st?.isDirectory()) await mkdir(p, { mode: 0o700 });
      await chmod(p, mode | 0o700);
    },
    async file(rel, mode, mtimeMs, data) {
      await safeParent(root, rel);
      const p = join(root, rel);
      const st = await lstat(p).catch(() => undefined);
      if (st?.isSymbolicLink() || st?.isDirectory()) await rm(p, { recursive: true, force: true });
      await pipeline(data, createWriteStream(p, { mode: 0o600 }));
      await chmod(p, mode);
      await utimes(p, mtimeMs / 1000, mtimeMs / 1000);
    },
    async symlink(rel, target, mtimeMs) {
      await safeParent(root, rel);
      const p = join(root, rel);
      await rm(p, { recursive: true, force: true });
      await symlink(target, p);
      await lutimes(p, mtimeMs / 1000, mtimeMs / 1000).catch(() => {});
    },
    async finish(dirs) {
      for (const d of dirs) {
        const p = join(root, d.path);
        await utimes(p, d.mtimeMs / 1000, d.mtimeMs / 1000).catch(() => {});
      }
    },
  };
}
