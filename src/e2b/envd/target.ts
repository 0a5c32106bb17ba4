/**
 * The sandbox an envd call is for, handed from the router (which resolved
 * and authorized it) to the Connect services through context values.
 */
import { Code, ConnectError, createContextKey, type HandlerContext } from "@connectrpc/connect";
import type { Sandbox } from "../../core/sandbox.ts";

/** A resolved, authorized sandbox. */
export interface EnvdTarget {
  sandbox: Sandbox;
}

/** The context key carrying the {@link EnvdTarget}. */
export const TARGET_KEY = createContextKey<EnvdTarget | undefined>(undefined, {
  description: "kiln e2b target",
});

/** The target of a Connect call (always set by the router). */
export function targetOf(ctx: HandlerContext): EnvdTarget {
  const t = ctx.values.get(TARGET_KEY);
  if (!t) throw new Error("envd call without a resolved sandbox");
  return t;
}

/**
 * An async queue that a producer pushes into and one consumer iterates;
 * iteration ends when the queue is closed, throws what `fail` was given, and
 * stops when `signal` fires.
 */
export class EventQueue<T> implements AsyncIterable<T> {
  private readonly items: { item: T; bytes: number }[] = [];
  private bytes = 0;
  /**
   * `sizeOf` weighs an item; when the unread items weigh more than `maxBytes`
   * (a client that stopped reading), the queue fails with `ResourceExhausted`.
   */
  private readonly sizeOf: (item: T) => number;
  private readonly maxBytes: number;
  constructor(sizeOf: (item: T) => number = () => 0, maxBytes = 32 * 1024 * 1024) {
    this.sizeOf = sizeOf;
    this.maxBytes = maxBytes;
  }
  private waiting: (() => void) | undefined;
  private done = false;
  private error: unknown;

  /** Adds an item (ignored once closed). */
  push(item: T): void {
    if (this.done) return;
    const bytes = this.sizeOf(item);
    if (this.bytes + bytes > this.maxBytes) {
      this.items.length = 0;
      this.bytes = 0;
      this.fail(
        new ConnectError(
          `the client stopped reading: over ${this.maxBytes} bytes unread; the stream ended (the process runs on)`,
          Code.ResourceExhausted,
        ),
      );
      return;
    }
    this.bytes += bytes;
    this.items.push({ item, bytes });
    this.wake();
  }

  /** Ends iteration after the queued items. */
  close(): void {
    this.done = true;
    this.wake();
  }

  /** Ends iteration with an error after the queued items. */
  fail(e: unknown): void {
    if (this.done) return;
    this.error = e ?? new Error("failed");
    this.done = true;
    this.wake();
  }

  private wake(): void {
    const w = this.waiting;
    this.waiting = undefined;
    w?.();
  }

  /** Iterates until closed, failed, or `signal` fires. */
  async *drain(signal: AbortSignal): AsyncGenerator<T> {
    const onAbort = () => this.wake();
    signal.addEventListener("abort", onAbort);
    try {
      for (;;) {
        if (signal.aborted) return;
        const next = this.items.shift();
        if (next !== undefined) {
          this.bytes -= next.bytes;
          yield next.item;
          continue;
        }
        if (this.done) {
          if (this.error !== undefined) throw this.error;
          return;
        }
        await new Promise<void>((r) => {
          this.waiting = r;
        });
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return this.drain(new AbortController().signal);
  }
}
