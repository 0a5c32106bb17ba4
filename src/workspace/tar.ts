/**
 * Tar export and import for any tree, so that a workspace moves between tiers
 * with modes, mtimes and symlinks intact. Tiers supply a {@link TreeSource}
 * (to export) or a {@link TreeSink} (to import); the tar format itself is
 * tar-stream's (ustar with pax headers for long names).
 */
import { createRequire } from "node:module";
import { posix } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type * as TarStream from "tar-stream";
import { InvalidArgumentError, KilnError } from "../core/errors.ts";
import type { EntryType } from "../core/types.ts";

/** One entry of a tree, relative to the exported root. */
export interface TreeEntry {
  /** Path relative to the root, `/`-separated, no leading slash. */
  path: string;
  type: EntryType;
  /** Permission bits. */
  mode: number;
  /** Modification time, ms. */
  mtimeMs: number;
  /** Size of a file, bytes. */
  size: number;
  /** Target of a symlink. */
  linkTarget?: string;
}

/** A tree to export. */
export interface TreeSource {
  /** Entries in an order where a directory comes before what it holds. */
  entries(): AsyncIterable<TreeEntry>;
  /** The bytes of a file entry. */
  open(path: string): Promise<Readable>;
}

/** A tree to import into. */
export interface TreeSink {
  mkdir(path: string, mode: number, mtimeMs: number): Promise<void>;
  file(path: string, mode: number, mtimeMs: number, data: Readable): Promise<void>;
  symlink(path: string, target: string, mtimeMs: number): Promise<void>;
  /**
   * Takes a device node or FIFO entry (by tar type: `character-device`,
   * `block-device`, `fifo`) the sink chooses not to create. Without it such
   * an entry is refused (`invalid_argument`).
   */
  skip?(path: string, type: string): void;
  /** Called once at the end, to restore directory mtimes after their contents were written. */
  finish?(dirs: { path: string; mtimeMs: number }[]): Promise<void>;
}

/** tar-stream, loaded on first use: most sandboxes never export or import a tree. */
function tarStreamModule(): typeof TarStream {
  return createRequire(import.meta.url)("tar-stream") as typeof TarStream;
}

/** Packs a tree into a tar stream. */
export function packTree(source: TreeSource): ReadableStream<Uint8Array> {
  const pack = tarStreamModule().pack();
  (async () => {
    for await (const e of source.entries()) {
      const header = { name: e.path, mode: e.mode, mtime: new Date(e.mtimeMs) };
      if (e.type === "dir") pack.entry({ ...header, name: `${e.path}/`, type: "directory" });
      else if (e.type === "symlink") pack.entry({ ...header, type: "symlink", linkname: e.linkTarget ?? "" });
      else if (e.type === "file") {
        const entry = pack.entry({ ...header, type: "file", size: e.size });
        await pipeline(await source.open(e.path), entry as unknown as NodeJS.WritableStream);
      }
    }
    pack.finalize();
  })().catch((err) => pack.destroy(err));
  return ReadableStream.from(pack as AsyncIterable<Uint8Array>);
}

/** A tar member path made safe: relative, normalized, never escaping the root. */
export function safeMemberPath(name: string): string {
  if (name.includes("\0"))
    throw new InvalidArgumentError(`tar entry has a NUL byte: ${JSON.stringify(name)}`);
  const norm = posix.normalize(`/${name}`).slice(1).replace(/\/$/, "");
  if (name.split("/").includes("..")) throw new InvalidArgumentError(`tar entry escapes its root: ${name}`);
  return norm;
}

/**
 * Refuses a member at or below a symlink that an earlier member of the same
 * archive made: writing through it would land outside the folder being
 * imported into (GNU tar defers such links for the same reason).
 */
function checkNotThroughLink(path: string, links: Set<string>): void {
  for (let at = path.length; at > 0; at = path.lastIndexOf("/", at - 1)) {
    const prefix = path.slice(0, at);
    if (links.has(prefix))
      throw new InvalidArgumentError(`tar entry ${path} goes through the archive's own symlink ${prefix}`);
  }
}

/** A tar-stream parse failure (not a tar, gzip, truncated, bad header) as `invalid_argument`. */
function asTarError(e: unknown): unknown {
  const code = (e as { code?: unknown })?.code;
  if (e instanceof KilnError || (typeof code === "string" && /^E[A-Z]+$/.test(code))) return e;
  return new InvalidArgumentError(`not a valid tar archive: ${(e as Error)?.message ?? e}`, { cause: e });
}

/** Tar entry types for device nodes and FIFOs. */
const SPECIAL_TYPES = new Set(["character-device", "block-device", "fifo"]);

/**
 * Unpacks a tar stream into a sink. Rejects entries that escape the root or
 * pass through the archive's own symlinks, and hard links; device nodes and
 * FIFOs go to `sink.skip` when it has one, and are rejected otherwise.
 * @throws InvalidArgumentError (`invalid_argument`) for any of those and for bytes that are not a tar
 */
export async function unpackTree(tar: ReadableStream<Uint8Array>, sink: TreeSink): Promise<void> {
  try {
    await unpack(tar, sink);
  } catch (e) {
    throw asTarError(e);
  }
}

async function unpack(tar: ReadableStream<Uint8Array>, sink: TreeSink): Promise<void> {
  const extract = tarStreamModule().extract();
  const dirs: { path: string; mtimeMs: number }[] = [];
  const links = new Set<string>();
  const done = (async () => {
    for await (const entry of extract) {
      const h = entry.header;
      const path = safeMemberPath(h.name);
      const mtime = h.mtime?.getTime();
      const mtimeMs = mtime !== undefined && Number.isFinite(mtime) ? mtime : Date.now();
      const mode = (h.mode ?? 0o644) & 0o7777;
      if (path === "") {
        entry.resume();
        continue;
      }
      checkNotThroughLink(path, links);
      if (h.type === "symlink") links.add(path);
      if (h.type === "directory") {
        await sink.mkdir(path, mode, mtimeMs);
        dirs.push({ path, mtimeMs });
        entry.resume();
      } else if (h.type === "file" || h.type === "contiguous-file") {
        await sink.file(path, mode, mtimeMs, entry as unknown as Readable);
      } else if (h.type === "symlink") {
        await sink.symlink(path, h.linkname ?? "", mtimeMs);
        entry.resume();
      } else if (sink.skip && SPECIAL_TYPES.has(h.type ?? "")) {
        sink.skip(path, h.type!);
        entry.resume();
      } else {
        entry.resume();
        throw new InvalidArgumentError(`unsupported tar entry type ${h.type}: ${h.name}`);
      }
    }
  })();
  await Promise.all([
    pipeline(Readable.fromWeb(tar as never), extract as unknown as NodeJS.WritableStream),
    done,
  ]);
  await sink.finish?.(dirs.reverse());
}
