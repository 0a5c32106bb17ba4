/**
 * `sandbox.files`: the same file API on every tier. Paths are checked here
 * (see paths.ts), data is bytes first (text is UTF-8 on top), and each tier's
 * errno-style failures become Kiln errors.
 */
import { randomBytes } from "node:crypto";
import { posix } from "node:path";
import type { FileOps, WatchEvent, Watching } from "./backend.ts";
import { fromErrno, InvalidArgumentError, LimitExceededError, throwIfAborted } from "./errors.ts";
import type { Limits } from "./limits.ts";
import { sandboxPath } from "./paths.ts";
import { OWN_PROCESS_TOKEN } from "./process-token.ts";
import type { EntryInfo } from "./types.ts";

/** True when `stat` finds the entry, false when it is `not_found`; other errors pass. */
export async function existsBy(stat: () => Promise<unknown>): Promise<boolean> {
  try {
    await stat();
    return true;
  } catch (e) {
    if ((e as { code?: string }).code === "not_found") return false;
    throw e;
  }
}

/** Data accepted by `files.write`. */
export type WriteData = string | Uint8Array | ArrayBuffer | ReadableStream<Uint8Array>;

/** Common options: cancellation. */
export interface CallOptions {
  signal?: AbortSignal;
}

/** Options of {@link Files.write}. */
export interface WriteOptions extends CallOptions {
  /**
   * The size the data will have, as its sender announced it (an HTTP
   * Content-Length): over `maxFileBytes`, the write is refused before a byte
   * is read. The limit is enforced on the bytes themselves either way.
   */
  sizeBytes?: number;
}

function toStream(data: WriteData): ReadableStream<Uint8Array> {
  if (data instanceof ReadableStream) return data;
  let bytes: Uint8Array;
  if (typeof data === "string") bytes = new TextEncoder().encode(data);
  else if (data instanceof Uint8Array) bytes = data;
  else if (data instanceof ArrayBuffer) bytes = new Uint8Array(data);
  else throw new InvalidArgumentError("data must be a string, Uint8Array, ArrayBuffer or ReadableStream");
  return new ReadableStream({
    start(c) {
      if (bytes.length > 0) c.enqueue(bytes);
      c.close();
    },
  });
}

async function collect(stream: ReadableStream<Uint8Array>, signal?: AbortSignal): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const reader = stream.getReader();
  for (;;) {
    throwIfAborted(signal);
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
  }
  return new Uint8Array(Buffer.concat(parts));
}

/** What `Files` needs from its sandbox. */
export interface FilesContext {
  ops: () => Promise<FileOps>;
  defaults: () => { cwd: string; limits: Limits };
}

/** `sandbox.files`. */
export class Files {
  private readonly ctx: FilesContext;

  constructor(ctx: FilesContext) {
    this.ctx = ctx;
  }

  private async call<T>(signal: AbortSignal | undefined, fn: (ops: FileOps) => Promise<T>): Promise<T> {
    throwIfAborted(signal);
    try {
      return await fn(await this.ctx.ops());
    } catch (e) {
      throw fromErrno(e, this.ctx.defaults().limits);
    }
  }

  private path(p: unknown): string {
    return sandboxPath(p, this.ctx.defaults().cwd);
  }

  /**
   * Watches the directory `path` (and, with `recursive`, every directory
   * below it), calling `onEvent` for each change (E2B's event types: create,
   * write, remove, rename, chmod; names relative to `path`) until `signal`
   * aborts, `stop()` is called, the directory goes or the sandbox stops.
   * Resolves once watching, so a change made after that is seen. Real tiers
   * watch with inotify inside the sandbox; the virtual tier follows its
   * store's change feed (changes made through this process).
   * @throws NotFoundError, InvalidArgumentError (not a directory, bad path), AbortedError
   */
  async watch(
    path: string,
    options: CallOptions & { recursive?: boolean },
    onEvent: (e: WatchEvent) => void,
  ): Promise<Watching> {
    const p = this.path(path);
    const st = await this.call(options.signal, (ops) => ops.stat(p));
    if (st.type !== "dir") throw new InvalidArgumentError(`${p} is not a directory`);
    const w = await this.call(options.signal, (ops) => ops.watch(p, options.recursive === true, onEvent));
    const signal = options.signal;
    if (signal) {
      if (signal.aborted) w.stop();
      else {
        const onAbort = () => w.stop();
        signal.addEventListener("abort", onAbort, { once: true });
        void w.ended.then(() => signal.removeEventListener("abort", onAbort));
      }
    }
    return w;
  }

  /**
   * Reads a file as text (UTF-8, the default), bytes, or a web stream.
   * @throws NotFoundError, InvalidArgumentError (bad path, a directory)
   */
  read(path: string, options?: CallOptions & { format?: "text" }): Promise<string>;
  read(path: string, options: CallOptions & { format: "bytes" }): Promise<Uint8Array>;
  read(path: string, options: CallOptions & { format: "stream" }): Promise<ReadableStream<Uint8Array>>;
  async read(
    path: string,
    options: CallOptions & { format?: "text" | "bytes" | "stream" } = {},
  ): Promise<string | Uint8Array | ReadableStream<Uint8Array>> {
    const p = this.path(path);
    const stream = await this.call(options.signal, (ops) => ops.read(p));
    if (options.format === "stream") return stream;
    const bytes = await this.call(options.signal, () => collect(stream, options.signal));
    return options.format === "bytes" ? bytes : new TextDecoder().decode(bytes);
  }

  /**
   * Writes (replacing) a file and creates its parent directories. A write that
   * fails leaves any previous file untouched.
   * @throws LimitExceededError (`maxFileBytes`, `diskBytes`), InvalidArgumentError
   */
  async write(path: string, data: WriteData, options: WriteOptions = {}): Promise<EntryInfo> {
    const p = this.path(path);
    const max = this.ctx.defaults().limits.maxFileBytes;
    if (options.sizeBytes !== undefined && options.sizeBytes > max) {
      if (data instanceof ReadableStream) await data.cancel().catch(() => {});
      throw new LimitExceededError(
        "maxFileBytes",
        max,
        `file too large: ${options.sizeBytes} bytes over maxFileBytes (${max})`,
      );
    }
    const stream = toStream(data);
    return this.call(options.signal, (ops) => ops.write(p, stream, max));
  }

  /** Writes several files; stops at the first failure. */
  async writeFiles(
    files: { path: string; data: WriteData }[],
    options: CallOptions = {},
  ): Promise<EntryInfo[]> {
    const out: EntryInfo[] = [];
    for (const f of files) out.push(await this.write(f.path, f.data, options));
    return out;
  }

  /** Entries below a directory, `depth` levels deep (default 1). @throws NotFoundError */
  async list(path: string, options: CallOptions & { depth?: number } = {}): Promise<EntryInfo[]> {
    const p = this.path(path);
    const depth = options.depth ?? 1;
    if (!Number.isInteger(depth) || depth < 1)
      throw new InvalidArgumentError("depth must be an integer >= 1");
    return this.call(options.signal, (ops) => ops.list(p, depth));
  }

  /** Creates a directory and its parents; false when it already existed. */
  async makeDir(path: string, options: CallOptions = {}): Promise<boolean> {
    const p = this.path(path);
    return this.call(options.signal, (ops) => ops.mkdir(p));
  }

  /** Removes a file, symlink or directory tree. @throws NotFoundError */
  async remove(path: string, options: CallOptions = {}): Promise<void> {
    const p = this.path(path);
    if (p === "/") throw new InvalidArgumentError("refusing to remove /");
    await this.call(options.signal, (ops) => ops.remove(p));
  }

  /** Renames or moves an entry. @throws NotFoundError, ConflictError */
  async rename(from: string, to: string, options: CallOptions = {}): Promise<EntryInfo> {
    const a = this.path(from);
    const b = this.path(to);
    return this.call(options.signal, async (ops) => {
      await ops.rename(a, b);
      return ops.stat(b);
    });
  }

  /** Whether an entry exists (a dangling symlink exists). */
  exists(path: string, options: CallOptions = {}): Promise<boolean> {
    return existsBy(() => this.stat(path, options));
  }

  /** The entry at a path (a final symlink is not followed). @throws NotFoundError */
  async stat(path: string, options: CallOptions = {}): Promise<EntryInfo> {
    const p = this.path(path);
    return this.call(options.signal, (ops) => ops.stat(p));
  }

  /** Creates a symlink at `path` pointing at `target` (resolved inside the sandbox). */
  async symlink(target: string, path: string, options: CallOptions = {}): Promise<EntryInfo> {
    if (typeof target !== "string" || target.length === 0 || target.includes("\0")) {
      throw new InvalidArgumentError("symlink target must be a non-empty string without NUL bytes");
    }
    const p = this.path(path);
    return this.call(options.signal, async (ops) => {
      await ops.symlink(target, p);
      return ops.stat(p);
    });
  }

  /** The directory at `path` as a tar stream (modes, mtimes, symlinks kept). */
  async exportTar(path: string, options: CallOptions = {}): Promise<ReadableStream<Uint8Array>> {
    const p = this.path(path);
    return this.call(options.signal, (ops) => ops.exportTar(p));
  }

  /**
   * Unpacks a tar stream (or bytes) into the directory at `path`, creating it
   * (and its parents) or adding to it. All or nothing: the archive is unpacked
   * into a staging folder first (beside the target, on its filesystem), which
   * becomes the target, or is merged into it, only once the whole archive has
   * unpacked; a failure removes it and any parent it created.
   * @throws InvalidArgumentError (not a tar archive, a member that escapes), LimitExceededError (`diskBytes`)
   */
  async importTar(path: string, tar: ReadableStream<Uint8Array> | Uint8Array, options: CallOptions = {}) {
    const p = this.path(path);
    const stream = toStream(tar);
    await this.call(options.signal, async (ops) => {
      const target = await statOrUndefined(ops, p);
      if (target && target.type !== "dir") throw errno("ENOTDIR", `not a directory: ${p}`);
      // The nearest existing ancestor holds the staging folder; the first missing one is removed on failure.
      let base = p;
      let firstMissing: string | undefined;
      if (!target) {
        for (;;) {
          const up = posix.dirname(base);
          const st = await statOrUndefined(ops, up);
          if (st && st.type !== "dir") throw errno("ENOTDIR", `not a directory: ${up}`);
          firstMissing = base;
          base = up;
          if (st) break;
        }
      }
      const stage = posix.join(
        base,
        `${STAGING_PREFIX}${OWN_PROCESS_TOKEN}-${randomBytes(6).toString("hex")}`,
      );
      try {
        await ops.importTar(stage, stream);
        if (target) {
          await mergeInto(ops, stage, p);
          await ops.remove(stage);
        } else {
          await ops.mkdir(posix.dirname(p));
          await ops.rename(stage, p);
        }
      } catch (e) {
        await ops.remove(stage).catch(() => {});
        if (firstMissing && firstMissing !== p) await ops.remove(firstMissing).catch(() => {});
        throw e;
      }
    });
  }
}

/** Names of the staging folders of tar imports, followed by the process's token (swept after a crash). */
export const STAGING_PREFIX = ".kiln-import-";

/** An errno-style error, which `fromErrno` maps. */
function errno(code: string, message: string): Error {
  return Object.assign(new Error(message), { errno: code });
}

async function statOrUndefined(ops: FileOps, path: string): Promise<EntryInfo | undefined> {
  try {
    return await ops.stat(path);
  } catch (e) {
    if (fromErrnoCode(e) === "ENOENT") return undefined;
    throw e;
  }
}

function fromErrnoCode(e: unknown): unknown {
  return (e as { errno?: unknown })?.errno ?? (e as { code?: unknown })?.code;
}

/** Moves everything below `from` into directory `to`, merging directories that exist in both. */
async function mergeInto(ops: FileOps, from: string, to: string): Promise<void> {
  for (const e of await ops.list(from, 1)) {
    const dest = posix.join(to, e.name);
    const there = await statOrUndefined(ops, dest);
    if (e.type === "dir" && there?.type === "dir") {
      await mergeInto(ops, e.path, dest);
      continue;
    }
    if (there) await ops.remove(dest);
    await ops.rename(e.path, dest);
  }
}
