/** `sandbox.files` over HTTP: bytes streamed both ways, metadata as JSON. */

import type { WatchEvent, Watching } from "../core/backend.ts";
import { InvalidArgumentError, throwIfAborted } from "../core/errors.ts";
import { type CallOptions, existsBy, type WriteData } from "../core/files.ts";
import type { EntryInfo } from "../core/types.ts";
import type { FilesApi } from "./api.ts";
import { errorFromWire, type WireError } from "./errors.ts";
import { type Transport, wireFailure } from "./http.ts";
import { events } from "./ndjson.ts";

function toBody(data: WriteData): Uint8Array | ReadableStream<Uint8Array> {
  if (data instanceof ReadableStream) return data;
  if (typeof data === "string") return new TextEncoder().encode(data);
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  throw new InvalidArgumentError("data must be a string, Uint8Array, ArrayBuffer or ReadableStream");
}

function checkPath(p: unknown): string {
  if (typeof p !== "string") throw new InvalidArgumentError("path must be a string");
  return p;
}

/** `sandbox.files` of a remote sandbox. Errors are those of the library's `Files`, plus `unauthenticated`. */
export class RemoteFiles implements FilesApi {
  private readonly http: Transport;
  private readonly base: string;

  constructor(http: Transport, sandboxPath: string) {
    this.http = http;
    this.base = `${sandboxPath}/files`;
  }

  /**
   * Watches a directory over the server's NDJSON stream (see the library's
   * `Files.watch`); resolves once the server is watching.
   * @throws NotFoundError, InvalidArgumentError (not a directory, bad path), AbortedError
   */
  async watch(
    path: string,
    options: CallOptions & { recursive?: boolean },
    onEvent: (e: WatchEvent) => void,
  ): Promise<Watching> {
    throwIfAborted(options.signal);
    const ac = new AbortController();
    const onAbort = () => ac.abort();
    options.signal?.addEventListener("abort", onAbort, { once: true });
    const res = await this.http.request("GET", `${this.base}/watch`, {
      query: { path: checkPath(path), recursive: options.recursive === true ? "true" : "false" },
      signal: ac.signal,
    });
    const lines = events(res, ac.signal)[Symbol.asyncIterator]();
    const first = await lines.next();
    if (first.done || (first.value as { type: string }).type !== "watching") {
      ac.abort();
      const err = (first.value as { error?: WireError } | undefined)?.error;
      throw err ? errorFromWire(err) : new InvalidArgumentError("the server did not start watching");
    }
    const ended = (async () => {
      try {
        for (;;) {
          const next = await lines.next();
          if (next.done) break;
          const line = next.value as { type: string; change?: WatchEvent };
          if (line.type === "change" && line.change) onEvent(line.change);
          if (line.type === "exit") break;
        }
      } catch {
        // stopped, or the connection went: the watch is over either way
      } finally {
        options.signal?.removeEventListener("abort", onAbort);
        ac.abort();
      }
    })();
    return { ended, stop: () => ac.abort() };
  }

  /**
   * Reads a file as text (UTF-8, the default), bytes, or a web stream.
   * @throws NotFoundError, InvalidArgumentError (bad path, a directory), AbortedError
   */
  read(path: string, options?: CallOptions & { format?: "text" }): Promise<string>;
  read(path: string, options: CallOptions & { format: "bytes" }): Promise<Uint8Array>;
  read(path: string, options: CallOptions & { format: "stream" }): Promise<ReadableStream<Uint8Array>>;
  async read(
    path: string,
    options: CallOptions & { format?: "text" | "bytes" | "stream" } = {},
  ): Promise<string | Uint8Array | ReadableStream<Uint8Array>> {
    throwIfAborted(options.signal);
    const res = await this.http.request("GET", this.base, {
      query: { path: checkPath(path) },
      signal: options.signal,
    });
    if (options.format === "stream") return res.body ?? new ReadableStream({ start: (c) => c.close() });
    try {
      const bytes = new Uint8Array(await res.arrayBuffer());
      return options.format === "bytes" ? bytes : new TextDecoder().decode(bytes);
    } catch (e) {
      throw wireFailure(e, options.signal);
    }
  }

  /**
   * Writes (replacing) a file, streaming `data`; creates parents. A failed write keeps the old file.
   * @throws LimitExceededError (`maxFileBytes`, `diskBytes`), InvalidArgumentError, AbortedError
   */
  async write(path: string, data: WriteData, options: CallOptions = {}): Promise<EntryInfo> {
    throwIfAborted(options.signal);
    return this.http.json<EntryInfo>("PUT", this.base, {
      query: { path: checkPath(path) },
      body: toBody(data),
      signal: options.signal,
    });
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

  /** Entries below a directory, `depth` levels deep (default 1). @throws NotFoundError, InvalidArgumentError */
  async list(path: string, options: CallOptions & { depth?: number } = {}): Promise<EntryInfo[]> {
    return this.http.json<EntryInfo[]>("GET", `${this.base}/list`, {
      query: { path: checkPath(path), depth: options.depth },
      signal: options.signal,
    });
  }

  /** Creates a directory and its parents; false when it already existed. */
  async makeDir(path: string, options: CallOptions = {}): Promise<boolean> {
    const r = await this.http.json<{ created: boolean }>("POST", `${this.base}/mkdir`, {
      json: { path: checkPath(path) },
      signal: options.signal,
    });
    return r.created;
  }

  /** Removes a file, symlink or directory tree. @throws NotFoundError */
  async remove(path: string, options: CallOptions = {}): Promise<void> {
    await this.http.empty("DELETE", this.base, { query: { path: checkPath(path) }, signal: options.signal });
  }

  /** Renames or moves an entry. @throws NotFoundError, ConflictError */
  async rename(from: string, to: string, options: CallOptions = {}): Promise<EntryInfo> {
    return this.http.json<EntryInfo>("POST", `${this.base}/rename`, {
      json: { from: checkPath(from), to: checkPath(to) },
      signal: options.signal,
    });
  }

  /** Whether an entry exists (a dangling symlink exists). */
  exists(path: string, options: CallOptions = {}): Promise<boolean> {
    return existsBy(() => this.stat(path, options));
  }

  /** The entry at a path (a final symlink is not followed). @throws NotFoundError */
  async stat(path: string, options: CallOptions = {}): Promise<EntryInfo> {
    return this.http.json<EntryInfo>("GET", `${this.base}/stat`, {
      query: { path: checkPath(path) },
      signal: options.signal,
    });
  }

  /** Creates a symlink at `path` pointing at `target`. @throws ConflictError, InvalidArgumentError */
  async symlink(target: string, path: string, options: CallOptions = {}): Promise<EntryInfo> {
    return this.http.json<EntryInfo>("POST", `${this.base}/symlink`, {
      json: { target, path: checkPath(path) },
      signal: options.signal,
    });
  }

  /** The directory at `path` as a tar stream. @throws NotFoundError */
  async exportTar(path: string, options: CallOptions = {}): Promise<ReadableStream<Uint8Array>> {
    const res = await this.http.request("GET", `${this.base}/tar`, {
      query: { path: checkPath(path) },
      signal: options.signal,
    });
    return res.body ?? new ReadableStream({ start: (c) => c.close() });
  }

  /** Unpacks a tar stream (or bytes) into the directory at `path`. @throws InvalidArgumentError */
  async importTar(
    path: string,
    tar: ReadableStream<Uint8Array> | Uint8Array,
    options: CallOptions = {},
  ): Promise<void> {
    await this.http.empty("PUT", `${this.base}/tar`, {
      query: { path: checkPath(path) },
      body: tar,
      signal: options.signal,
    });
  }
}
