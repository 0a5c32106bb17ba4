/**
 * Host side of the agent protocol (see frames.ts and docs/protocol.md): one
 * {@link AgentClient} per agent process, multiplexing processes and file
 * operations over a single byte stream.
 */
import { randomInt } from "node:crypto";
import { constants } from "node:os";
import type { Readable, Writable } from "node:stream";
import type { ExitStatus, SpawnedProcess, SpawnRequest, WatchEvent, Watching } from "../core/backend.ts";
import type { EntryInfo } from "../core/types.ts";
import {
  decodeJson,
  type ErrorMessage,
  type ExitMessage,
  encodeFrame,
  encodeJsonFrame,
  FrameDecoder,
  FrameType,
  type HelloMessage,
  type Op,
  PROTOCOL_VERSION,
  type Requests,
  type WireEntry,
} from "./frames.ts";
import { PortStream } from "./port-stream.ts";

/** An error reported by the agent (or by the connection to it), with an errno-style code. */
export class AgentError extends Error {
  /** errno-style code, e.g. ENOENT; ECONNRESET when the agent went away, EPROTO on protocol trouble. */
  readonly errno: string;

  constructor(errno: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "AgentError";
    this.errno = errno;
  }
}

/** Options of {@link AgentClient.connect}. */
export interface ConnectOptions {
  /** Aborts waiting for the agent's HELLO. */
  signal?: AbortSignal;
  /** How long to wait for HELLO; default 10 000 ms. */
  timeoutMs?: number;
}

/** Receives the frames of one request id. */
interface Handler {
  onFrame(type: number, payload: Uint8Array): void;
  /** The connection ended with the request still open. */
  onClose(error: AgentError): void;
}

/** Largest data frame we send; matches the agent's chunk size. */
const CHUNK = 64 * 1024;
/** Unacknowledged stdin bytes per process; bounds the agent's stdin queue. */
const STDIN_WINDOW = 1024 * 1024;
/** Unconsumed bytes per file read; bounds host memory for slow consumers. */
const READ_WINDOW = 1024 * 1024;

const noop = () => {};

function toError(payload: Uint8Array): AgentError {
  try {
    const e = decodeJson<ErrorMessage>(payload);
    return new AgentError(e.errno, e.message);
  } catch {
    return new AgentError("EPROTO", "agent sent an unreadable error");
  }
}

/** A control payload that must be a JSON object. @throws AgentError (EPROTO) otherwise */
function decodeObject<T>(payload: Uint8Array): T {
  let body: unknown;
  try {
    body = decodeJson(payload);
  } catch {
    throw new AgentError("EPROTO", "agent sent unreadable JSON");
  }
  if (body === null || typeof body !== "object" || Array.isArray(body))
    throw new AgentError("EPROTO", "agent sent JSON that is not an object");
  return body as T;
}

function toEntry(w: WireEntry): EntryInfo {
  const entry: EntryInfo = {
    name: w.name,
    path: w.path,
    // EntryInfo has no kind for fifos, sockets and devices; they read like files.
    type: w.type === "other" ? "file" : w.type,
    size: w.size,
    mode: w.mode,
    mtimeMs: w.mtimeMs,
  };
  if (w.symlinkTarget !== undefined) entry.symlinkTarget = w.symlinkTarget;
  return entry;
}

/** A connection to one kiln-agent. */
export class AgentClient {
  /** What the agent announced in its HELLO. */
  hello!: HelloMessage;
  /** Resolves when the connection has ended, for whatever reason. */
  readonly closed: Promise<void>;

  private readonly readable: Readable;
  private readonly writable: Writable;
  private readonly decoder = new FrameDecoder();
  private readonly handlers = new Map<number, Handler>();
  private readonly helloReceived: Promise<HelloMessage>;
  private helloWaiter: { resolve(h: HelloMessage): void; reject(e: Error): void } | undefined;
  private drainWaiters: (() => void)[] = [];
  private nextId = 1;
  private error: AgentError | undefined;
  private resolveClosed: () => void = noop;

  private constructor(readable: Readable, writable: Writable) {
    this.readable = readable;
    this.writable = writable;
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    this.helloReceived = new Promise((resolve, reject) => {
      this.helloWaiter = { resolve, reject };
    });
    this.helloReceived.catch(noop);
    readable.on("data", (chunk: Uint8Array) => this.onData(chunk));
    readable.on("end", () => this.fail(new AgentError("ECONNRESET", "agent closed its output stream")));
    readable.on("close", () => this.fail(new AgentError("ECONNRESET", "agent output stream closed")));
    readable.on("error", (e) =>
      this.fail(new AgentError("ECONNRESET", `agent stream: ${e.message}`, { cause: e })),
    );
    writable.on("error", (e) =>
      this.fail(new AgentError("ECONNRESET", `agent stream: ${e.message}`, { cause: e })),
    );
    writable.on("drain", () => this.wakeDrain());
  }

  /**
   * Wraps a byte stream to an agent and waits for its HELLO.
   * @throws AgentError: ETIMEDOUT, ECANCELED, EPROTO (version mismatch), ECONNRESET
   */
  static async connect(
    readable: Readable,
    writable: Writable,
    options: ConnectOptions = {},
  ): Promise<AgentClient> {
    const client = new AgentClient(readable, writable);
    const timeoutMs = options.timeoutMs ?? 10_000;
    const { signal } = options;
    let timer: NodeJS.Timeout | undefined;
    let onAbort = noop;
    try {
      const hello = await new Promise<HelloMessage>((resolve, reject) => {
        client.helloReceived.then(resolve, reject);
        timer = setTimeout(
          () => reject(new AgentError("ETIMEDOUT", `no HELLO from the agent within ${timeoutMs} ms`)),
          timeoutMs,
        );
        onAbort = () => reject(new AgentError("ECANCELED", "connect aborted", { cause: signal?.reason }));
        if (signal?.aborted) onAbort();
        signal?.addEventListener("abort", onAbort, { once: true });
      });
      if (hello.protocol !== PROTOCOL_VERSION) {
        throw new AgentError(
          "EPROTO",
          `agent speaks protocol ${hello.protocol} (agent ${hello.version}) but this host speaks ` +
            `protocol ${PROTOCOL_VERSION}; install a matching kiln-agent`,
        );
      }
      client.hello = hello;
      return client;
    } catch (e) {
      client.destroy(e instanceof AgentError ? e : new AgentError("EPROTO", String(e)));
      throw e;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /**
   * Wraps a byte stream to an agent that is already running (restored from a
   * checkpoint: it said HELLO to an earlier host). Checks that it answers a
   * ping; request ids start at a random point, so that they do not meet the
   * ids of processes the agent still runs for the earlier host.
   * @throws AgentError: ETIMEDOUT, ECANCELED, ECONNRESET
   */
  static async reconnect(
    readable: Readable,
    writable: Writable,
    options: ConnectOptions = {},
  ): Promise<AgentClient> {
    const client = new AgentClient(readable, writable);
    client.nextId = 0x40000000 + randomInt(0x3fffffff);
    const timeoutMs = options.timeoutMs ?? 10_000;
    const { signal } = options;
    let timer: NodeJS.Timeout | undefined;
    let onAbort = noop;
    try {
      const pong = await new Promise<{ version: string; ops?: string[] }>((resolve, reject) => {
        client.ping().then(resolve, reject);
        timer = setTimeout(
          () =>
            reject(new AgentError("ETIMEDOUT", `no answer from the restored agent within ${timeoutMs} ms`)),
          timeoutMs,
        );
        onAbort = () => reject(new AgentError("ECANCELED", "connect aborted", { cause: signal?.reason }));
        if (signal?.aborted) onAbort();
        signal?.addEventListener("abort", onAbort, { once: true });
      });
      // Its ping names the ops it serves (its HELLO went to an earlier host); empty means "not known".
      client.hello = { protocol: PROTOCOL_VERSION, version: pong.version, pid: 1, ops: pong.ops ?? [] };
      return client;
    } catch (e) {
      client.destroy(e instanceof AgentError ? e : new AgentError("EPROTO", String(e)));
      throw e;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Round trip to the agent. */
  ping(): Promise<{ version: string; ops?: string[] }> {
    return this.request("ping", {});
  }

  /**
   * Sets a VM's wall clock to `timeMs` (ms since the epoch).
   * @throws AgentError: ENOTSUP (not a VM's agent), ENOSYS (an agent without `clock`), EPERM
   */
  async setClock(timeMs: number): Promise<void> {
    await this.request("clock", { timeMs });
  }

  /**
   * Has the agent stop writing until this connection (or the next one, after a restore) sends it a
   * frame; resolves once every frame it wrote before has arrived. @throws AgentError: ENOSYS (an agent without `hold`)
   */
  async hold(): Promise<void> {
    await this.request("hold", {});
  }

  /**
   * Makes a VM restored from a saved state that other sandboxes share this sandbox's own: its
   * hostname (and /etc/hostname, /etc/hosts), its process limit (`pids`; undefined: none) and its
   * random pool, reseeded with `entropy` (16 to 512 bytes from the host's random source).
   * @throws AgentError: ENOTSUP (not a VM's agent), ENOSYS (an agent without `adopt`), EINVAL
   */
  async adopt(hostname: string, pids: number | undefined, entropy: Uint8Array): Promise<void> {
    await this.request("adopt", {
      hostname,
      ...(pids === undefined ? {} : { pids }),
      entropy: Buffer.from(entropy).toString("hex"),
    });
  }

  /**
   * Starts `bash -c command` in its own process group. Resolves once the agent
   * has started it. @throws AgentError (e.g. ENOENT for a missing cwd)
   */
  async spawn(req: SpawnRequest): Promise<SpawnedProcess> {
    // An agent that predates terminals would run the command on pipes: refuse instead.
    if (req.pty && this.hello?.ops?.length && !this.hello.ops.includes("resize")) {
      throw new AgentError("ENOTSUP", `this agent (${this.hello.version}) has no terminals; rebuild it`);
    }
    const proc = new AgentProcess(this, this.allocId(), req);
    const mode = req.stdin === undefined ? "null" : "pipe";
    await proc.start(mode);
    if (req.stdin instanceof Uint8Array) {
      // The caller cannot see these; a process that does not read stdin is not an error.
      proc.writeStdin(req.stdin).catch(noop);
      proc.closeStdin().catch(noop);
    }
    return proc;
  }

  /**
   * A TCP connection to `port` on the sandbox's loopback, as a Duplex (see port-stream.ts).
   * Resolves once the agent has connected.
   * @throws AgentError: ECONNREFUSED (nothing listens), ETIMEDOUT, EAGAIN (too many connections),
   *   ENOTSUP (an agent without `connect`)
   */
  async connectPort(port: number): Promise<PortStream> {
    if (this.hello?.ops?.length && !this.hello.ops.includes("connect")) {
      throw new AgentError("ENOTSUP", `this agent (${this.hello.version}) cannot open ports; rebuild it`);
    }
    const stream = new PortStream(this, this.allocId(), toError);
    await stream.open(port);
    return stream;
  }

  /** Entry at `path` (lstat: a final symlink is not followed). */
  async stat(path: string): Promise<EntryInfo> {
    return toEntry(await this.request("stat", { path }));
  }

  /** Entries below `path` to `depth` levels, depth-first, sorted by name. */
  async list(path: string, depth: number): Promise<EntryInfo[]> {
    return (await this.listWithSpecial(path, depth)).map((e) => e.entry);
  }

  /**
   * As {@link list}, telling FIFOs, sockets and devices (`special`) from regular files, and
   * entries whose name or link target is not UTF-8 (`lossy`: shown with U+FFFD, it names no file).
   */
  async listWithSpecial(
    path: string,
    depth: number,
  ): Promise<{ entry: EntryInfo; special: boolean; lossy: boolean }[]> {
    const res = await this.request("list", { path, depth });
    if (!Array.isArray(res?.entries)) throw new AgentError("EPROTO", "agent sent a list without entries");
    return res.entries.map((w) => ({
      entry: toEntry(w),
      special: w.type === "other",
      lossy: w.lossy === true,
    }));
  }

  /**
   * The file's bytes as a stream. The agent sends at most about 1 MiB ahead of
   * the consumer; cancelling the stream stops the agent. @throws AgentError (ENOENT, EISDIR)
   */
  read(path: string): Promise<ReadableStream<Uint8Array>> {
    const id = this.allocId();
    let ctrl!: ReadableStreamDefaultController<Uint8Array>;
    let open = true;
    let received = 0;
    let granted = READ_WINDOW;
    const finish = () => {
      open = false;
      this.handlers.delete(id);
    };
    const stream = new ReadableStream<Uint8Array>(
      {
        start: (c) => {
          ctrl = c;
        },
        pull: (c) => {
          // Keep granted == consumed + window: credit what the consumer took off the queue.
          const queued = Math.max(0, READ_WINDOW - (c.desiredSize ?? 0));
          const more = received - queued + READ_WINDOW - granted;
          if (open && more >= READ_WINDOW / 4) {
            granted += more;
            const n = new Uint8Array(4);
            new DataView(n.buffer).setUint32(0, more);
            this.trySend(encodeFrame(FrameType.Credit, id, n));
          }
        },
        cancel: () => {
          if (!open) return;
          finish();
          this.trySend(encodeFrame(FrameType.Cancel, id));
        },
      },
      { highWaterMark: READ_WINDOW, size: (chunk) => chunk.byteLength },
    );
    return new Promise((resolve, reject) => {
      let started = false;
      this.handlers.set(id, {
        onFrame: (type, payload) => {
          if (type === FrameType.Response) {
            started = true;
            resolve(stream);
          } else if (type === FrameType.Data && open) {
            received += payload.length;
            ctrl.enqueue(payload);
          } else if (type === FrameType.End) {
            finish();
            ctrl.close();
            if (!started) reject(new AgentError("EPROTO", "agent ended a read it never started"));
          } else if (type === FrameType.Error) {
            finish();
            if (started) ctrl.error(toError(payload));
            else reject(toError(payload));
          }
        },
        onClose: (e) => {
          finish();
          if (started) ctrl.error(e);
          else reject(e);
        },
      });
      this.send(encodeJsonFrame(FrameType.Request, id, { op: "read", path, window: READ_WINDOW }), reject);
    });
  }

  /**
   * Writes (replacing) a file from a stream, creating parent directories. The
   * agent writes to a temporary file and renames it at the end, so a failed
   * write leaves any previous file untouched.
   * @throws AgentError: EFBIG past `maxBytes`, EISDIR, ENOSPC, ...
   */
  async write(path: string, data: ReadableStream<Uint8Array>, maxBytes: number): Promise<EntryInfo> {
    const id = this.allocId();
    let failed: Error | undefined;
    const result = new Promise<WireEntry>((resolve, reject) => {
      const done = (e: Error) => {
        failed = e;
        reject(e);
      };
      this.handlers.set(id, {
        onFrame: (type, payload) => {
          this.handlers.delete(id);
          if (type === FrameType.Response) resolve(decodeObject<WireEntry>(payload));
          else
            done(type === FrameType.Error ? toError(payload) : new AgentError("EPROTO", "unexpected frame"));
        },
        onClose: done,
      });
    });
    result.catch(noop);
    this.send(encodeJsonFrame(FrameType.Request, id, { op: "write", path, maxBytes }));
    const reader = data.getReader();
    try {
      while (!failed) {
        const { done, value } = await reader.read();
        if (done) break;
        for (let at = 0; at < value.length && !failed; at += CHUNK) {
          await this.sendAndDrain(encodeFrame(FrameType.Data, id, value.subarray(at, at + CHUNK)));
        }
      }
    } catch (e) {
      // The source failed: tell the agent to drop the temporary file.
      if (!failed) {
        this.handlers.delete(id);
        this.trySend(encodeFrame(FrameType.Cancel, id));
      }
      throw e;
    }
    if (failed) reader.cancel().catch(noop);
    else this.trySend(encodeFrame(FrameType.End, id));
    return toEntry(await result);
  }

  /**
   * Watches a directory through the agent (inotify); resolves once the watch
   * is in place. @throws AgentError (ENOENT, ENOTDIR; ENOTSUP from an agent without `watch`)
   */
  watch(path: string, recursive: boolean, onEvent: (e: WatchEvent) => void): Promise<Watching> {
    if (this.hello.ops.length && !this.hello.ops.includes("watch")) {
      return Promise.reject(
        new AgentError("ENOTSUP", `this agent (${this.hello.version}) cannot watch; rebuild it`),
      );
    }
    const id = this.allocId();
    let open = true;
    let endWatch = noop;
    const ended = new Promise<void>((r) => {
      endWatch = r;
    });
    const finish = () => {
      open = false;
      this.handlers.delete(id);
      endWatch();
    };
    const stop = () => {
      if (!open) return;
      finish();
      this.trySend(encodeFrame(FrameType.Cancel, id));
    };
    return new Promise((resolve, reject) => {
      let started = false;
      this.handlers.set(id, {
        onFrame: (type, payload) => {
          if (type === FrameType.Response) {
            started = true;
            resolve({ ended, stop });
          } else if (type === FrameType.Data && open) {
            let batch: { events?: WatchEvent[] };
            try {
              batch = decodeObject<{ events?: WatchEvent[] }>(payload);
            } catch {
              return;
            }
            for (const e of batch.events ?? []) onEvent({ type: e.type, name: e.name });
          } else if (type === FrameType.End) {
            finish();
          } else if (type === FrameType.Error) {
            finish();
            if (!started) reject(toError(payload));
          }
        },
        onClose: (e) => {
          finish();
          if (!started) reject(e);
        },
      });
      this.send(encodeJsonFrame(FrameType.Request, id, { op: "watch", path, recursive }), reject);
    });
  }

  /** Creates a directory and its parents; false when it already existed. @throws AgentError EEXIST */
  async mkdir(path: string): Promise<boolean> {
    return (await this.request("mkdir", { path })).created;
  }

  /** Removes a file, symlink or directory tree. @throws AgentError ENOENT */
  async remove(path: string): Promise<void> {
    await this.request("remove", { path });
  }

  /** rename(2): replaces a file at `to`. @throws AgentError ENOENT, EISDIR, ENOTEMPTY */
  async rename(from: string, to: string): Promise<void> {
    await this.request("rename", { from, to });
  }

  /** Creates a symlink at `path` pointing to `target`. @throws AgentError EEXIST */
  async symlink(target: string, path: string): Promise<void> {
    await this.request("symlink", { target, path });
  }

  /** Sets permission bits (follows symlinks, like chmod(2)). */
  async chmod(path: string, mode: number): Promise<void> {
    await this.request("chmod", { path, mode });
  }

  /** Sets times in ms since the epoch (an omitted atime is left alone); symlinks are not followed. */
  async utimes(path: string, mtimeMs: number, atimeMs?: number): Promise<void> {
    await this.request("utimes", atimeMs === undefined ? { path, mtimeMs } : { path, mtimeMs, atimeMs });
  }

  /**
   * Ends the stream to the agent, which then kills its processes and exits.
   * Resolves when the agent's side has closed (or after `timeoutMs`, when the
   * streams are destroyed).
   */
  async close(timeoutMs = 2000): Promise<void> {
    if (!this.error) this.writable.end();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    await Promise.race([this.closed, timeout]);
    clearTimeout(timer);
    this.destroy(new AgentError("ECONNRESET", "agent connection closed"));
  }

  // ---- internals shared with AgentProcess ----------------------------------

  /** Sends a request and resolves with its RESPONSE body. @internal */
  request<K extends Op>(op: K, body: Requests[K]["req"]): Promise<Requests[K]["res"]> {
    const id = this.allocId();
    return new Promise((resolve, reject) => {
      this.handlers.set(id, {
        onFrame: (type, payload) => {
          this.handlers.delete(id);
          if (type === FrameType.Response) resolve(decodeObject<Requests[K]["res"]>(payload));
          else if (type === FrameType.Error) reject(toError(payload));
          else reject(new AgentError("EPROTO", `unexpected frame type ${type} for ${op}`));
        },
        onClose: reject,
      });
      this.send(encodeJsonFrame(FrameType.Request, id, { op, ...body }), reject);
    });
  }

  /** @internal */
  register(id: number, handler: Handler): void {
    this.handlers.set(id, handler);
  }

  /** @internal */
  unregister(id: number): void {
    this.handlers.delete(id);
  }

  /** Writes a frame, or reports the connection's error to `onError` (else throws it). @internal */
  send(frame: Uint8Array, onError?: (e: AgentError) => void): boolean {
    if (this.error) {
      if (onError) {
        onError(this.error);
        return false;
      }
      throw this.error;
    }
    return this.writable.write(frame);
  }

  /** Like send, ignoring a dead connection (used for best-effort notices). @internal */
  trySend(frame: Uint8Array): void {
    if (!this.error) this.writable.write(frame);
  }

  /** Sends and waits until the stream has room again (backpressure). @internal */
  async sendAndDrain(frame: Uint8Array): Promise<void> {
    if (this.send(frame)) return;
    await new Promise<void>((resolve) => {
      if (this.error) resolve();
      else this.drainWaiters.push(resolve);
    });
    if (this.error) throw this.error;
  }

  /** Ids are never 0 (reserved for HELLO and connection errors) and never in use. */
  private allocId(): number {
    do {
      this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    } while (this.handlers.has(this.nextId));
    return this.nextId;
  }

  private wakeDrain(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }

  private onData(chunk: Uint8Array): void {
    let frames: ReturnType<FrameDecoder["push"]>;
    try {
      frames = this.decoder.push(chunk);
    } catch (e) {
      this.destroy(new AgentError("EPROTO", `bad data from the agent: ${(e as Error).message}`));
      return;
    }
    for (const f of frames) {
      if (f.type === FrameType.Hello) {
        try {
          this.helloWaiter?.resolve(decodeObject<HelloMessage>(f.payload));
        } catch {
          this.helloWaiter?.reject(new AgentError("EPROTO", "unreadable HELLO"));
        }
      } else if (f.id === 0 && f.type === FrameType.Error) {
        // A connection-level error: the agent is about to exit.
        const e = toError(f.payload);
        this.destroy(new AgentError(e.errno, `agent: ${e.message}`));
      } else {
        const handler = this.handlers.get(f.id);
        if (!handler) continue;
        try {
          handler.onFrame(f.type, f.payload);
        } catch (e) {
          // An unreadable payload means the agent cannot be trusted to frame anything else
          // either; throwing here would escape the stream's handler and end the whole process.
          const error = new AgentError("EPROTO", `unreadable frame from the agent: ${(e as Error).message}`);
          handler.onClose(error);
          this.destroy(error);
          return;
        }
      }
    }
  }

  /** Fails everything pending; the connection is unusable afterwards. */
  private fail(error: AgentError): void {
    if (this.error) return;
    this.error = error;
    this.helloWaiter?.reject(error);
    const handlers = [...this.handlers.values()];
    this.handlers.clear();
    for (const h of handlers) h.onClose(error);
    this.wakeDrain();
    this.resolveClosed();
  }

  private destroy(error: AgentError): void {
    this.fail(error);
    this.readable.destroy();
    this.writable.destroy();
  }
}

/** A process started through an agent. */
class AgentProcess implements SpawnedProcess {
  pid = 0;
  readonly exited: Promise<ExitStatus>;

  private readonly client: AgentClient;
  private readonly id: number;
  private readonly req: SpawnRequest;
  private resolveExit: (s: ExitStatus) => void = noop;
  private rejectExit: (e: Error) => void = noop;
  private done = false;
  private stdinClosed = false;
  /** Serialises stdin operations so chunks and the close keep their order. */
  private chain: Promise<void> = Promise.resolve();
  private inflight = 0;
  private acks: { bytes: number; resolve(): void; reject(e: Error): void }[] = [];
  private windowWaiters: (() => void)[] = [];

  constructor(client: AgentClient, id: number, req: SpawnRequest) {
    this.client = client;
    this.id = id;
    this.req = req;
    this.exited = new Promise((resolve, reject) => {
      this.resolveExit = resolve;
      this.rejectExit = reject;
    });
    // Marks the promise handled: a lost connection must not crash a caller that never awaits it.
    this.exited.catch(noop);
  }

  start(stdin: "pipe" | "null"): Promise<void> {
    const { command, cwd, env } = this.req;
    return new Promise((resolve, reject) => {
      let started = false;
      this.client.register(this.id, {
        onFrame: (type, payload) => {
          switch (type) {
            case FrameType.Response:
              this.pid = decodeObject<{ pid: number }>(payload).pid;
              started = true;
              resolve();
              break;
            case FrameType.Error: {
              this.client.unregister(this.id);
              const e = toError(payload);
              if (!started) reject(e);
              else {
                this.finish();
                this.rejectExit(e);
              }
              break;
            }
            case FrameType.Stdout:
              this.req.onStdout(payload);
              break;
            case FrameType.Stderr:
              this.req.onStderr(payload);
              break;
            case FrameType.StdinAck:
              this.onAck(payload);
              break;
            case FrameType.Exit:
              this.onExit(decodeObject<ExitMessage>(payload));
              if (!started) reject(new AgentError("EPROTO", "agent reported an exit before the start"));
              break;
          }
        },
        onClose: (e) => {
          if (!started) reject(e);
          this.finish();
          this.rejectExit(e);
        },
      });
      const body = { op: "spawn", command, cwd, env, stdin, ...(this.req.pty ? { pty: this.req.pty } : {}) };
      this.client.send(encodeJsonFrame(FrameType.Request, this.id, body), reject);
    });
  }

  writeStdin(data: Uint8Array): Promise<void> {
    const p = this.chain.then(() => this.pushStdin(data));
    this.chain = p.catch(noop);
    return p;
  }

  closeStdin(): Promise<void> {
    const p = this.chain.then(() => {
      if (this.done || this.stdinClosed) return;
      this.stdinClosed = true;
      this.client.send(encodeFrame(FrameType.StdinClose, this.id));
    });
    this.chain = p.catch(noop);
    return p;
  }

  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const signo = constants.signals[signal];
    if (signo === undefined) throw new AgentError("EINVAL", `unknown signal ${signal}`);
    if (this.done) return;
    try {
      await this.client.request("signal", { target: this.id, signal: signo });
    } catch (e) {
      // ESRCH: it exited meanwhile, which is what the caller wanted.
      if (!(e instanceof AgentError && e.errno === "ESRCH")) throw e;
    }
  }

  async resize(cols: number, rows: number): Promise<void> {
    if (this.done) return;
    try {
      await this.client.request("resize", { target: this.id, cols, rows });
    } catch (e) {
      // ESRCH: it exited meanwhile; resizing a terminal that is gone is no error.
      if (!(e instanceof AgentError && e.errno === "ESRCH")) throw e;
    }
  }

  private async pushStdin(data: Uint8Array): Promise<void> {
    const pending: Promise<void>[] = [];
    for (let at = 0; at < data.length; at += CHUNK) {
      while (this.inflight >= STDIN_WINDOW && !this.done) {
        await new Promise<void>((resolve) => this.windowWaiters.push(resolve));
      }
      if (this.done) throw new AgentError("EPIPE", "the process has exited");
      if (this.stdinClosed) throw new AgentError("EPIPE", "stdin is closed");
      const chunk = data.subarray(at, at + CHUNK);
      pending.push(
        new Promise((resolve, reject) => this.acks.push({ bytes: chunk.length, resolve, reject })),
      );
      this.inflight += chunk.length;
      await this.client.sendAndDrain(encodeFrame(FrameType.Stdin, this.id, chunk));
    }
    await Promise.all(pending);
  }

  private onAck(payload: Uint8Array): void {
    const ack = this.acks.shift();
    if (!ack) return;
    this.inflight -= ack.bytes;
    this.wakeWriters();
    if (payload.length === 0) ack.resolve();
    else ack.reject(toError(payload));
  }

  private onExit(msg: ExitMessage): void {
    this.client.unregister(this.id);
    this.finish();
    this.resolveExit({ exitCode: msg.exitCode });
  }

  /** Settles stdin bookkeeping once the process is gone. */
  private finish(): void {
    this.done = true;
    // Unacknowledged chunks reached a process that has now ended: nothing is left to report.
    for (const ack of this.acks.splice(0)) ack.resolve();
    this.inflight = 0;
    this.wakeWriters();
  }

  private wakeWriters(): void {
    const waiters = this.windowWaiters;
    this.windowWaiters = [];
    for (const w of waiters) w();
  }
}
