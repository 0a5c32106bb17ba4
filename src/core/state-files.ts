/**
 * Saved state on disk (snapshots, pause images): written so that a crash at
 * any moment leaves the old state or the new one whole, and checked against a
 * digest kept apart from it (in kiln.db) before anything reads it.
 *
 * A state directory is filled under a temporary name beside its final one,
 * every file fsynced and made mode 0600, then renamed into place and its
 * parent fsynced. A directory under a temporary name is never read, only
 * removed (by the next Kiln, if a crash left it).
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { chmod, lstat, mkdir, open, readdir, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { promisify } from "node:util";
import { InvalidArgumentError } from "./errors.ts";

const execFileP = promisify(execFile);

/** Prefix of a state directory being written. */
export const PARTIAL_PREFIX = ".partial-";

/** The temporary name of `finalDir` while process `owner` (a process token) writes it. */
export function partialDir(finalDir: string, owner: string): string {
  return join(dirname(finalDir), `${PARTIAL_PREFIX}${owner}_${basename(finalDir)}`);
}

/** The owner token and final name of a partial directory's name, or undefined for another name. */
export function parsePartial(name: string): { owner: string; final: string } | undefined {
  const m = /^\.partial-(\d+-\d+)_(.+)$/.exec(name);
  return m ? { owner: m[1]!, final: m[2]! } : undefined;
}

/** Makes the empty temporary directory that will become `finalDir`, stamped with its writer `owner`. */
export async function beginStateDir(finalDir: string, owner: string): Promise<string> {
  const tmp = partialDir(finalDir, owner);
  await rm(tmp, { recursive: true, force: true });
  await mkdir(dirname(finalDir), { recursive: true, mode: 0o700 });
  await mkdir(tmp, { mode: 0o700 });
  return tmp;
}

async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Makes every file of `tmp` mode 0600 and durable, and the directory too.
 * Returns the bytes the directory holds on disk.
 */
export async function sealStateDir(tmp: string): Promise<number> {
  let bytes = 0;
  for (const name of await readdir(tmp)) {
    const p = join(tmp, name);
    await chmod(p, 0o600);
    await fsyncPath(p);
    bytes += (await stat(p)).blocks * 512;
  }
  await fsyncPath(tmp);
  return bytes;
}

/** Renames the sealed `tmp` to `finalDir` (which must not exist) and makes the rename durable. */
export async function placeStateDir(tmp: string, finalDir: string): Promise<void> {
  await rename(tmp, finalDir);
  await fsyncPath(dirname(finalDir));
}

/**
 * Seals `tmp` ({@link sealStateDir}) and puts it in place as `finalDir`
 * ({@link placeStateDir}). Returns the bytes the directory holds on disk.
 */
export async function commitStateDir(tmp: string, finalDir: string): Promise<number> {
  const bytes = await sealStateDir(tmp);
  await placeStateDir(tmp, finalDir);
  return bytes;
}

/** Bytes the files of a state directory hold on disk (0 when it is gone). */
export async function stateDirBytes(dir: string): Promise<number> {
  let bytes = 0;
  for (const name of await readdir(dir).catch(() => [] as string[]))
    bytes += (await stat(join(dir, name)).catch(() => ({ blocks: 0 }))).blocks * 512;
  return bytes;
}

/** The unit of {@link digestStateDir}: blocks of this many bytes that are all zero are skipped. */
const BLOCK = 1024 * 1024;

/**
 * The indexes of the {@link BLOCK}-sized blocks of a file that hold data,
 * from its extent map (`filefrag`, FIEMAP), or undefined when the map cannot
 * be read: then every block is read. Holes read as zeros, so skipping them
 * changes no digest; it only spares reading a sparse gigabyte.
 */
async function dataBlocks(path: string): Promise<Set<number> | undefined> {
  let out: string;
  try {
    out = (await execFileP("filefrag", ["-e", path], { maxBuffer: 64 * 1024 * 1024 })).stdout;
  } catch {
    return undefined;
  }
  const unit = /blocks of (\d+) bytes/.exec(out);
  if (!unit) return undefined;
  const bs = Number(unit[1]);
  const blocks = new Set<number>();
  for (const m of out.matchAll(/^\s*\d+:\s+(\d+)\.\.\s*(\d+):/gm)) {
    const from = Math.floor((Number(m[1]) * bs) / BLOCK);
    const to = Math.floor(((Number(m[2]) + 1) * bs - 1) / BLOCK);
    for (let b = from; b <= to; b++) blocks.add(b);
  }
  return blocks;
}

/**
 * SHA-256 over a state directory: for each regular file, in name order, its
 * name and length, then the index and bytes of each {@link BLOCK} of it that
 * is not all zeros. Anything else in the directory (a link, a folder) is refused.
 * @throws InvalidArgumentError when the directory holds something other than files
 */
export async function digestStateDir(dir: string): Promise<string> {
  const h = createHash("sha256");
  const zero = Buffer.alloc(BLOCK);
  for (const name of (await readdir(dir)).sort()) {
    const p = join(dir, name);
    const st = await lstat(p);
    if (!st.isFile()) throw new InvalidArgumentError(`state directory holds a non-file: ${name}`);
    h.update(`${name}\u0000${st.size}\u0000`);
    const count = Math.ceil(st.size / BLOCK);
    const sparse = st.blocks * 512 < st.size ? await dataBlocks(p) : undefined;
    const fh = await open(p, "r");
    try {
      const buf = Buffer.alloc(BLOCK);
      for (let b = 0; b < count; b++) {
        if (sparse && !sparse.has(b)) continue;
        const { bytesRead } = await fh.read(buf, 0, BLOCK, b * BLOCK);
        const chunk = buf.subarray(0, bytesRead);
        if (chunk.equals(zero.subarray(0, bytesRead))) continue;
        h.update(`${b}\u0000`);
        h.update(chunk);
      }
    } finally {
      await fh.close();
    }
  }
  return h.digest("hex");
}

/** Removes a state directory and the partial ones of the same name beside it. */
export async function removeStateDir(finalDir: string): Promise<void> {
  await rm(finalDir, { recursive: true, force: true });
  const parent = dirname(finalDir);
  const base = basename(finalDir);
  for (const name of await readdir(parent).catch(() => [] as string[])) {
    if (parsePartial(name)?.final === base) await rm(join(parent, name), { recursive: true, force: true });
  }
}
