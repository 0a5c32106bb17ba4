/**
 * Host filesystem helpers for building templates: removing a tree without
 * ever crossing into a mount, measuring a tree, and resolving a path inside a
 * root filesystem the way the sandbox will see it (symlinks resolved inside
 * the root, never on the host).
 */

import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { chmod, type FileHandle, lstat, readdir, readlink, rm } from "node:fs/promises";
import { join, posix, resolve, sep } from "node:path";
import type { Readable } from "node:stream";
import { InvalidArgumentError, KilnError } from "../core/errors.ts";

/** Mount points at or below `dir` (absolute), deepest first. */
export function mountsUnder(dir: string): string[] {
  let text: string;
  try {
    text = readFileSync("/proc/self/mountinfo", "utf8");
  } catch {
    return [];
  }
  const base = resolve(dir);
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const field = line.split(" ")[4];
    if (!field) continue;
    // mountinfo escapes space, tab, newline and backslash as octal.
    const mp = field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
    if (mp === base || mp.startsWith(base + sep)) out.push(mp);
  }
  return out.sort((a, b) => b.length - a.length);
}

/**
 * Removes a directory tree that Kiln created (a staging or template dir).
 * Anything mounted below it (debootstrap mounts /proc, /sys, and sometimes
 * bind-mounts devices into its target) is lazily unmounted first, and the
 * removal refuses to run while a mount remains: `rm -rf` through a bind mount
 * would delete host files.
 */
export async function removeTree(dir: string): Promise<void> {
  let mounts = mountsUnder(dir);
  for (const mp of mounts) spawnSync("umount", ["-l", mp], { stdio: "ignore" });
  mounts = mountsUnder(dir);
  if (mounts.length > 0) {
    throw new KilnError(
      "internal",
      `refusing to remove ${dir}: still mounted below it: ${mounts.join(", ")}`,
    );
  }
  try {
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  } catch (e) {
    // A non-root user cannot remove entries of a directory without write permission
    // (an image may ship 0555 dirs): open the directories up and try again.
    if ((e as NodeJS.ErrnoException).code !== "EACCES" && (e as NodeJS.ErrnoException).code !== "EPERM")
      throw e;
    await chmodDirsWritable(dir);
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  }
}

async function chmodDirsWritable(dir: string): Promise<void> {
  const st = await lstat(dir).catch(() => undefined);
  if (!st?.isDirectory()) return;
  await chmod(dir, 0o700).catch(() => {});
  for (const name of await readdir(dir).catch(() => [] as string[])) await chmodDirsWritable(join(dir, name));
}

/** Apparent size of a tree in bytes: regular files (hard links counted once) and symlinks. */
export async function treeSize(dir: string): Promise<number> {
  const seen = new Set<string>();
  let total = 0;
  const walk = async (d: string): Promise<void> => {
    const entries = await readdir(d, { withFileTypes: true });
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        await walk(p);
        continue;
      }
      const st = await lstat(p);
      if (st.isFile()) {
        const key = `${st.dev}:${st.ino}`;
        if (st.nlink > 1) {
          if (seen.has(key)) continue;
          seen.add(key);
        }
        total += st.size;
      } else if (st.isSymbolicLink()) total += st.size;
    }
  };
  await walk(dir);
  return total;
}

/** Splits a member path into its segments; rejects `..`, NUL and absolute names. */
export function memberSegments(name: string, what = "entry"): string[] {
  if (name.includes("\0")) throw new InvalidArgumentError(`${what} has a NUL byte: ${JSON.stringify(name)}`);
  if (name.startsWith("/")) throw new InvalidArgumentError(`${what} is an absolute path: ${name}`);
  const segs = name.split("/").filter((s) => s !== "" && s !== ".");
  if (segs.includes("..")) throw new InvalidArgumentError(`${what} escapes its root: ${name}`);
  return segs;
}

/** How many symlinks one resolution may follow (Linux's MAXSYMLINKS). */
const MAX_LINKS = 40;

/**
 * Resolves `segments` (a path inside `root`) to a host path, following
 * symlinks of every *parent* component inside `root`: an absolute target
 * restarts at `root`, `..` stops at `root`. The last component is never
 * followed. With `create`, missing parent directories are created (mode 0755)
 * and a parent that is not a directory is an error. Returns the host path of
 * the parent directory, the leaf name, and the parent's path inside the root.
 */
export async function resolveInRoot(
  root: string,
  segments: string[],
  options: { create?: (inner: string) => Promise<void> } = {},
): Promise<{ parent: string; leaf: string; innerParent: string[] }> {
  if (segments.length === 0) throw new InvalidArgumentError("empty path");
  const leaf = segments[segments.length - 1]!;
  const parent = await resolveDir(root, segments.slice(0, -1), options.create);
  return { parent: join(root, ...parent), leaf, innerParent: parent };
}

/** Resolves a directory path inside `root`, following every component; returns its real segments. */
export async function resolveDir(
  root: string,
  segments: string[],
  create?: (inner: string) => Promise<void>,
): Promise<string[]> {
  const done: string[] = [];
  const todo = [...segments];
  let links = 0;
  while (todo.length > 0) {
    const seg = todo.shift()!;
    if (seg === "" || seg === ".") continue;
    if (seg === "..") {
      done.pop();
      continue;
    }
    const inner = [...done, seg];
    const host = join(root, ...inner);
    const st = await lstat(host).catch((e: NodeJS.ErrnoException) => {
      if (e.code === "ENOENT") return undefined;
      throw e;
    });
    if (!st) {
      if (!create) throw new InvalidArgumentError(`no such directory in the root: /${inner.join("/")}`);
      await create(inner.join("/"));
      done.push(seg);
      continue;
    }
    if (st.isSymbolicLink()) {
      if (++links > MAX_LINKS)
        throw new InvalidArgumentError(`too many symlinks resolving /${inner.join("/")}`);
      const target = await readlink(host);
      const tsegs = target.split("/");
      if (target.startsWith("/")) done.length = 0;
      todo.unshift(...tsegs);
      continue;
    }
    if (!st.isDirectory()) throw new InvalidArgumentError(`not a directory in the root: /${inner.join("/")}`);
    done.push(seg);
  }
  return done;
}

/** True when `path` (absolute, inside the sandbox) names something that exists in `root`, symlinks followed inside it. */
export async function existsInRoot(root: string, path: string): Promise<boolean> {
  try {
    const segs = posix.normalize(path).split("/").filter(Boolean);
    let links = 0;
    let cur = segs;
    for (;;) {
      const { parent, leaf, innerParent } = await resolveInRoot(root, cur);
      const st = await lstat(join(parent, leaf));
      if (!st.isSymbolicLink()) return true;
      if (++links > MAX_LINKS) return false;
      const target = await readlink(join(parent, leaf));
      cur = target.startsWith("/")
        ? target.split("/").filter(Boolean)
        : [...innerParent, ...target.split("/")];
      cur = posix
        .normalize(`/${cur.join("/")}`)
        .split("/")
        .filter(Boolean);
    }
  } catch {
    return false;
  }
}

/** Writes a stream into an open file handle (which stays open). */
export async function copyInto(data: Readable, fh: FileHandle): Promise<void> {
  for await (const chunk of data) {
    const buf = chunk as Buffer;
    let off = 0;
    while (off < buf.length) off += (await fh.write(buf, off, buf.length - off)).bytesWritten;
  }
}
