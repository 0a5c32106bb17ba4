/**
 * Streamed responses: newline-delimited JSON (`application/x-ndjson`), one
 * event per line, over chunked HTTP. Every open stream is tracked so that a
 * shutdown can wait for it, and end it as interrupted when the grace period
 * runs out.
 */
import type { WatchEvent } from "../core/backend.ts";
import type { CellError, CellResult, Execution } from "../core/execution.ts";
import type { CommandResult } from "../core/types.ts";
import { type ErrorBody, errorBody } from "./errors.ts";

/** One line of a command or code stream. */
export type StreamEvent =
  | { type: "start"; pid: number }
  | { type: "stdout"; data: string }
  | { type: "stderr"; data: string }
  /** A code cell's displayed value. */
  | { type: "result"; result: CellResult }
  /** The error a code cell raised (the cell's own exception, not Kiln's). */
  | { type: "cell_error"; error: CellError }
  | {
      type: "exit";
      result?: CommandResult | Execution | Record<string, unknown>;
      error?: ErrorBody["error"];
    }
  | { type: "watching" }
  | { type: "change"; change: WatchEvent };

/** The NDJSON content type. */
export const NDJSON = "application/x-ndjson";

const encoder = new TextEncoder();

/**
 * The most bytes a stream may hold that its client has not read. A terminal's
 * output is not capped by `maxOutputBytes`, so a client that stops reading (a
 * tab in the background) would otherwise make the server buffer without
 * bound; past this the stream ends with `limit_exceeded` (the command runs on).
 */
export const MAX_UNREAD_BYTES = 32 * 1024 * 1024;

// Taken when the server loads: events can be sent from inside a virtual-tier command (a watched
// write), where just-bash's defence blocks callbacks scheduled through the global functions.
const later = globalThis.setImmediate.bind(globalThis);
const cancelLater = globalThis.clearImmediate.bind(globalThis);

/** One open stream. */
export class EventStream {
  /** The response body. */
  readonly body: ReadableStream<Uint8Array>;
  /** Fires when the client goes away or the stream is interrupted. */
  readonly signal: AbortSignal;
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  private readonly abort = new AbortController();
  private ended = false;
  private readonly onEnd: () => void;
  /** Events sent since the last flush, as lines, and their length. */
  private pending: string[] = [];
  private pendingBytes = 0;
  private flushScheduled: NodeJS.Immediate | undefined;
  /** While true, events wait in `pending` (see {@link settledNdjsonResponse}). */
  private holding = false;

  constructor(onEnd: () => void) {
    this.onEnd = onEnd;
    this.signal = this.abort.signal;
    this.body = new ReadableStream<Uint8Array>(
      {
        start: (c) => {
          this.controller = c;
        },
        cancel: () => {
          this.finish();
          this.abort.abort(new Error("client went away"));
        },
      },
      // desiredSize is then minus the bytes the client has not read yet.
      new ByteLengthQueuingStrategy({ highWaterMark: 0 }),
    );
  }

  /**
   * Sends one event (ignored once the stream has ended). Events sent in one
   * turn of the event loop go out as one chunk: a short command's start,
   * output and exit are then one write to the socket, not one each.
   */
  send(event: StreamEvent): void {
    if (this.ended) return;
    if (this.pendingBytes - (this.controller.desiredSize ?? 0) > MAX_UNREAD_BYTES) {
      const message = `the client stopped reading: over ${MAX_UNREAD_BYTES} bytes of events unread; the stream ended (the command runs on)`;
      this.end({ type: "exit", error: { code: "limit_exceeded", message } });
      this.abort.abort(new Error(message));
      return;
    }
    this.push(event);
  }

  private push(event: StreamEvent): void {
    const line = `${JSON.stringify(event)}\n`;
    this.pending.push(line);
    this.pendingBytes += line.length;
    this.flushScheduled ??= later(() => this.flush());
  }

  /** Sends the final event and closes the stream. */
  end(event: StreamEvent): void {
    if (this.ended) return;
    this.push(event);
    this.flush();
    this.finish();
    if (!this.holding) this.controller.close();
  }

  /** Keeps every event in memory until {@link release}. */
  hold(): void {
    this.holding = true;
  }

  /**
   * Stops holding. Returns the whole stream as text when it has ended (its
   * body is then never read), or undefined when it has not: what was held
   * goes out as the body's first chunk, and events flow from then on.
   */
  release(): string | undefined {
    if (!this.holding) return undefined;
    this.holding = false;
    if (this.ended) {
      const text = this.pending.join("");
      this.pending = [];
      this.pendingBytes = 0;
      return text;
    }
    this.flush();
    return undefined;
  }

  private flush(): void {
    if (this.flushScheduled) cancelLater(this.flushScheduled);
    this.flushScheduled = undefined;
    if (this.holding || this.pending.length === 0 || this.ended) return;
    const text = this.pending.length === 1 ? this.pending[0]! : this.pending.join("");
    this.pending = [];
    this.pendingBytes = 0;
    this.controller.enqueue(encoder.encode(text));
  }

  /** Ends the stream with `{ type: "exit", error }` for `e`. */
  fail(e: unknown, result?: CommandResult | Execution | Record<string, unknown>): void {
    const { error } = errorBody(e);
    this.end({ type: "exit", ...(result ? { result } : {}), error });
  }

  /** Ends the stream because the server is stopping: the exit event carries `sandbox_stopped`. */
  interrupt(): void {
    this.end({
      type: "exit",
      error: { code: "sandbox_stopped", message: "the server shut down; the command was interrupted" },
    });
    this.abort.abort(new Error("server shutting down"));
  }

  private finish(): void {
    if (this.ended) return;
    this.ended = true;
    this.onEnd();
  }
}

/** The open streams of one server. */
export class StreamTracker {
  private readonly open = new Set<EventStream>();
  private readonly idle = new Set<() => void>();

  /** A new tracked stream. */
  create(): EventStream {
    const s: EventStream = new EventStream(() => {
      this.open.delete(s);
      if (this.open.size === 0) for (const f of this.idle) f();
    });
    this.open.add(s);
    return s;
  }

  /** How many streams are open. */
  get size(): number {
    return this.open.size;
  }

  /**
   * Waits up to `graceMs` for every open stream to end by itself, then
   * interrupts the rest. Resolves with how many were interrupted.
   */
  async drain(graceMs: number): Promise<number> {
    if (this.open.size > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, graceMs);
        function done() {
          clearTimeout(t);
          resolve();
        }
        this.idle.add(done);
      });
    }
    const rest = [...this.open];
    for (const s of rest) s.interrupt();
    this.idle.clear();
    return rest.length;
  }
}

/** The headers of an NDJSON response: a new object each time (the HTTP layer adds Content-Length to it). */
const ndjsonHeaders = () => ({
  "content-type": NDJSON,
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
});

/** A streamed NDJSON response. */
export function ndjsonResponse(stream: EventStream): Response {
  stream.release();
  return new Response(stream.body, { status: 200, headers: ndjsonHeaders() });
}

/**
 * The response of a stream that may well end at once (a short command), made
 * with {@link EventStream.hold} called before its first event: after one turn
 * of the event loop, a stream that has ended is sent whole, headers and body
 * in one write (a chunked stream costs a write for the headers and one per
 * chunk, most of a short command's cost on a busy server); one still running
 * is streamed as {@link ndjsonResponse} does. The client reads the same lines either way.
 */
export async function settledNdjsonResponse(stream: EventStream): Promise<Response> {
  await new Promise<void>((resolve) => later(resolve));
  const whole = stream.release();
  if (whole === undefined) return new Response(stream.body, { status: 200, headers: ndjsonHeaders() });
  return new Response(whole, { status: 200, headers: ndjsonHeaders() });
}
