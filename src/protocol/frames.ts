/**
 * Wire format between Kiln's host and the in-sandbox agent (agent/src).
 * Full description: docs/protocol.md.
 *
 * One frame, all integers big-endian:
 *
 *   0               4      5               9
 *   +---------------+------+---------------+------------------------+
 *   | length (u32)  | type | id (u32)      | payload (length-5 B)   |
 *   +---------------+------+---------------+------------------------+
 *
 * `length` counts type + id + payload, so it is at least 5 and at most
 * {@link MAX_FRAME_LENGTH}. `id` is the host-chosen request id; a process's
 * stdio frames and a file's data frames carry the id of the request that
 * started them (0 for HELLO and connection-level errors). Control payloads
 * (HELLO, REQUEST, RESPONSE, ERROR, EXIT) are UTF-8 JSON; STDIN, STDOUT,
 * STDERR and DATA carry raw bytes; CREDIT carries a u32.
 */

/** Major protocol version. A host refuses an agent whose HELLO names another. */
export const PROTOCOL_VERSION = 1;

/** Bytes before the payload: length (4) + type (1) + id (4). */
export const HEADER_SIZE = 9;

/** Largest value of the length field: 16 MiB of payload plus type and id. */
export const MAX_FRAME_LENGTH = 16 * 1024 * 1024 + 5;

/** Frame types. Direction: a = agent, h = host. */
export const FrameType = {
  /** a→h, id 0, JSON {@link HelloMessage}; first frame on the stream. */
  Hello: 0x01,
  /** h→a, JSON {@link Request}. */
  Request: 0x02,
  /** a→h, JSON result of a request (see {@link Responses}). */
  Response: 0x03,
  /** a→h, JSON {@link ErrorMessage}; ends a request (id 0: the connection). */
  Error: 0x04,
  /** h→a, raw bytes for a process's stdin; each is acknowledged by STDIN_ACK. */
  Stdin: 0x10,
  /** h→a, empty; closes a process's stdin after the queued bytes. */
  StdinClose: 0x11,
  /** a→h, empty (written) or JSON {@link ErrorMessage} (not written). */
  StdinAck: 0x12,
  /** a→h, raw process output. */
  Stdout: 0x13,
  /** a→h, raw process error output. */
  Stderr: 0x14,
  /** a→h, JSON {@link ExitMessage}; the last frame of a process. */
  Exit: 0x15,
  /** both ways, raw file bytes of a read (a→h) or write (h→a). */
  Data: 0x20,
  /** both ways, empty; the end of a read's or write's data. */
  End: 0x21,
  /** h→a, empty; abandons a read or write. */
  Cancel: 0x22,
  /** both ways, u32 byte count: h→a more window for a read or a connection; a→h bytes of a connection written. */
  Credit: 0x23,
} as const;

/** One of the {@link FrameType} codes. */
export type FrameTypeCode = (typeof FrameType)[keyof typeof FrameType];

/** A decoded frame. */
export interface Frame {
  /** Frame type (unknown codes are passed through). */
  type: number;
  /** Request or stream id. */
  id: number;
  /** Payload bytes (a view into the decoder's buffer; copy to keep beyond the callback). */
  payload: Uint8Array;
}

/** The first frame the agent sends. */
export interface HelloMessage {
  /** Major protocol version; see {@link PROTOCOL_VERSION}. */
  protocol: number;
  /** Agent build version, e.g. "0.1.0". */
  version: string;
  /** The agent's pid (1 when it is a container's init). */
  pid: number;
  /** Request ops this agent serves; newer ops may be absent on older agents. */
  ops: string[];
}

/** Body of an ERROR frame and of a failed STDIN_ACK. */
export interface ErrorMessage {
  /** errno-style code: ENOENT, EEXIST, ENOTDIR, EISDIR, ENOTEMPTY, EACCES, EINVAL, ENOSPC, EFBIG, EPROTO,
   * EAGAIN (the process limit), ENOTTY (no terminal could be opened), ...; `agent-errors.ts` maps them. */
  errno: string;
  /** Human-readable detail, including the operation and path. */
  message: string;
}

/** Body of an EXIT frame. */
export interface ExitMessage {
  /** Exit code; 128+N after signal N. */
  exitCode: number;
  /** The signal that ended the process, if any. */
  signal?: number;
}

/** A filesystem entry as the agent reports it (lstat semantics). */
export interface WireEntry {
  name: string;
  path: string;
  /** "other" covers fifos, sockets and devices. */
  type: "file" | "dir" | "symlink" | "other";
  size: number;
  /** Permission bits (mode & 0o7777). */
  mode: number;
  mtimeMs: number;
  symlinkTarget?: string;
  /** True when the name (its own or a parent's) or a link's target is not UTF-8: shown with U+FFFD, it names no file. */
  lossy?: boolean;
}

/** Requests by op: the JSON body (without `op`) and the RESPONSE body. */
export interface Requests {
  /** Liveness check. */
  /** `ops`: the ops it serves, as in HELLO (absent from agents before it; a restored agent's host never saw its HELLO). */
  ping: { req: Record<string, never>; res: { version: string; ops?: string[] } };
  /** Starts `bash -c command` in its own session; RESPONSE, then STDOUT/STDERR..., EXIT. */
  spawn: {
    req: {
      command: string;
      cwd: string;
      env: Record<string, string>;
      stdin: "pipe" | "null";
      /** Run on a new pty of this size: stdio is its slave side; all output comes as STDOUT. */
      pty?: { cols: number; rows: number };
    };
    res: { pid: number };
  };
  /** Sends signal number `signal` to the process group of the process started by request `target`. */
  signal: { req: { target: number; signal: number }; res: Record<string, never> };
  /** Sets the terminal size of the process started (with `pty`) by request `target`; ENOTTY without one. */
  resize: { req: { target: number; cols: number; rows: number }; res: Record<string, never> };
  stat: { req: { path: string }; res: WireEntry };
  /** Depth-first, sorted by name; `depth` 1 lists children only. */
  list: { req: { path: string; depth: number }; res: { entries: WireEntry[] } };
  /** RESPONSE {size}, then DATA..., END. With `window`, the agent waits for CREDIT beyond it. */
  read: { req: { path: string; window?: number }; res: { size: number } };
  /** Followed by DATA... and END from the host; RESPONSE comes after END. */
  write: { req: { path: string; maxBytes: number }; res: WireEntry };
  mkdir: { req: { path: string }; res: { created: boolean } };
  remove: { req: { path: string }; res: Record<string, never> };
  rename: { req: { from: string; to: string }; res: Record<string, never> };
  symlink: { req: { target: string; path: string }; res: Record<string, never> };
  chmod: { req: { path: string; mode: number }; res: Record<string, never> };
  /** Times in ms since the epoch; an omitted time is left unchanged; symlinks are not followed. */
  utimes: { req: { path: string; mtimeMs?: number; atimeMs?: number }; res: Record<string, never> };
  /**
   * Opens a TCP connection to `port` on the sandbox's loopback (127.0.0.1, else ::1). RESPONSE once
   * connected; then DATA both ways, END for each side's end, CANCEL (h→a) to close; CREDIT both ways
   * (h→a: the host took more of the agent's bytes; a→h: the agent wrote more of the host's).
   */
  connect: { req: { port: number; window?: number }; res: Record<string, never> };
  /**
   * Watches a directory (inotify): RESPONSE once watching, then DATA frames of
   * `{ events: WatchEvent[] }` (names relative to `path`), END after CANCEL or
   * when the directory goes. Agents whose HELLO lacks `watch` cannot.
   */
  watch: { req: { path: string; recursive: boolean }; res: Record<string, never> };
  /**
   * Sets the sandbox's wall clock to `timeMs` (ms since the epoch): only a VM's agent (`--vm`), whose
   * clock stood still while its state was saved; elsewhere ENOTSUP. Agents whose HELLO lacks `clock` cannot.
   */
  clock: { req: { timeMs: number }; res: Record<string, never> };
  /**
   * The host is about to save the sandbox (a VM's migration): the agent answers once every frame it
   * wrote before has gone out, and writes no frame after it until the host's next frame (any), so
   * that none is cut in two by the save. Agents whose HELLO lacks `hold` cannot.
   */
  hold: { req: Record<string, never>; res: Record<string, never> };
  /**
   * Makes a VM restored from a saved state shared by other sandboxes this sandbox's own: sets the
   * hostname and rewrites /etc/hostname and /etc/hosts, sets the process limit (`pids`; absent:
   * none), mixes `entropy` (hex, 16 to 512 bytes from the host) into the random pool and reseeds
   * the kernel's generator from it. Only a VM's agent (`--vm`); elsewhere ENOTSUP. Agents whose
   * HELLO lacks `adopt` cannot.
   */
  adopt: { req: { hostname: string; pids?: number; entropy: string }; res: Record<string, never> };
}

/** A request op name. */
export type Op = keyof Requests;

/** A REQUEST frame body. */
export type Request = { [K in Op]: { op: K } & Requests[K]["req"] }[Op];

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Encodes one frame. */
export function encodeFrame(type: number, id: number, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  if (payload.length + 5 > MAX_FRAME_LENGTH)
    throw new RangeError(`frame payload too large: ${payload.length}`);
  const buf = new Uint8Array(HEADER_SIZE + payload.length);
  const view = new DataView(buf.buffer);
  view.setUint32(0, payload.length + 5);
  view.setUint8(4, type);
  view.setUint32(5, id);
  buf.set(payload, HEADER_SIZE);
  return buf;
}

/** Encodes a frame whose payload is `body` as JSON. */
export function encodeJsonFrame(type: number, id: number, body: unknown): Uint8Array {
  return encodeFrame(type, id, encoder.encode(JSON.stringify(body)));
}

/** Parses a JSON payload. @throws SyntaxError */
export function decodeJson<T>(payload: Uint8Array): T {
  return JSON.parse(decoder.decode(payload)) as T;
}

/** Thrown by {@link FrameDecoder} when the input cannot be frames. */
export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FrameError";
  }
}

/**
 * Incremental decoder: feed it chunks as they arrive, get whole frames back.
 * It never writes into memory it has handed out, so payload views stay valid.
 */
export class FrameDecoder {
  private buf: Uint8Array = new Uint8Array(0);
  private start = 0;
  /** Chunks that arrived while a frame was incomplete, joined once it can be. */
  private parts: Uint8Array[] = [];
  private partBytes = 0;
  /** Bytes needed from `start` before parsing can progress. */
  private need = 4;

  /** Adds bytes and returns every frame completed by them. @throws FrameError on a bad length */
  push(chunk: Uint8Array): Frame[] {
    if (this.pending === 0) {
      this.buf = chunk;
      this.start = 0;
    } else {
      // Joining only when the frame is complete keeps big frames linear, not quadratic.
      this.parts.push(chunk);
      this.partBytes += chunk.length;
      if (this.pending < this.need) return [];
      const joined = new Uint8Array(this.pending);
      joined.set(this.buf.subarray(this.start));
      let at = this.buf.length - this.start;
      for (const part of this.parts) {
        joined.set(part, at);
        at += part.length;
      }
      this.buf = joined;
      this.start = 0;
      this.parts = [];
      this.partBytes = 0;
    }
    const frames: Frame[] = [];
    this.need = 4;
    while (this.buf.length - this.start >= 4) {
      const view = new DataView(this.buf.buffer, this.buf.byteOffset + this.start);
      const length = view.getUint32(0);
      if (length < 5 || length > MAX_FRAME_LENGTH) throw new FrameError(`bad frame length ${length}`);
      if (this.buf.length - this.start < 4 + length) {
        this.need = 4 + length;
        break;
      }
      frames.push({
        type: view.getUint8(4),
        id: view.getUint32(5),
        payload: this.buf.subarray(this.start + HEADER_SIZE, this.start + 4 + length),
      });
      this.start += 4 + length;
    }
    return frames;
  }

  /** Bytes of an incomplete frame held back. */
  get pending(): number {
    return this.buf.length - this.start + this.partBytes;
  }
}
