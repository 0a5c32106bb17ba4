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

  /** Sends one event (ignored once the stream has ended). */
  send(event: StreamEvent): void {
    if (this.ended) return;
    if (-(this.controller.desiredSize ?? 0) > MAX_UNREAD_BYTES) {
      const message = `the client stopped reading: over ${MAX_UNREAD_BYTES} bytes of events unread; the stream ended (the command runs on)`;
      this.end({ type: "exit", error: { code: "limit_exceeded", message } });
      this.abort.abort(new Error(message));
      return;
    }
    this.controller.enqueue(encoder.encode(`${JSON.stringify(event)}\n`));
  }

  /** Sends the final event and closes the stream. */
  end(event: StreamEvent): void {
    if (this.ended) return;
    this.send(event);
    this.finish();
    this.controller.close();
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

/** A streamed NDJSON response. */
export function ndjsonResponse(stream: EventStream): Response {
  return new Response(stream.body, {
    status: 200,
    headers: { "content-type": NDJSON, "cache-control": "no-store", "x-content-type-options": "nosniff" },
  });
}
