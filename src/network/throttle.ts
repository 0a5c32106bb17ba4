/**
 * Bandwidth caps: a token bucket per sandbox and direction, shared by all of
 * its connections, and a stream that lets bytes through at the bucket's rate.
 * Waiters are served in order, in pieces of at most 16 KiB, so that the
 * sandbox's connections share its rate; a reader that stops reading holds
 * back only its own connection (backpressure), never the bucket.
 */
import { Transform, type TransformCallback } from "node:stream";

/** Largest piece taken from a bucket at once, bytes. */
const PIECE_BYTES = 16 * 1024;

/** Bytes per second, with a burst of at most 64 KiB (or one second's worth, if less). */
export class TokenBucket {
  /** The rate, bytes per second. */
  readonly bytesPerSecond: number;
  private readonly burst: number;
  private tokens: number;
  private last = performance.now();
  private queue: Promise<void> = Promise.resolve();

  constructor(bytesPerSecond: number) {
    this.bytesPerSecond = bytesPerSecond;
    this.burst = Math.min(bytesPerSecond, 64 * 1024);
    this.tokens = this.burst;
  }

  /** Resolves when `bytes` (at most the burst) may pass; callers are served in order. */
  take(bytes: number): Promise<void> {
    const next = this.queue.then(async () => {
      for (;;) {
        const now = performance.now();
        this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.bytesPerSecond) / 1000);
        this.last = now;
        if (this.tokens >= bytes) {
          this.tokens -= bytes;
          return;
        }
        const waitMs = ((bytes - this.tokens) * 1000) / this.bytesPerSecond;
        await new Promise((r) => setTimeout(r, Math.max(1, Math.ceil(waitMs))));
      }
    });
    this.queue = next;
    return next;
  }

  /** The largest piece one `take` may ask for. */
  get pieceBytes(): number {
    return Math.max(1, Math.min(PIECE_BYTES, this.burst));
  }
}

/** A stream that passes bytes at `bucket`'s rate (or at once, without a bucket). */
export class Throttle extends Transform {
  private readonly bucket: TokenBucket | undefined;

  constructor(bucket: TokenBucket | undefined) {
    super();
    this.bucket = bucket;
  }

  override _transform(chunk: Buffer, _: BufferEncoding, done: TransformCallback): void {
    const bucket = this.bucket;
    if (!bucket) {
      done(null, chunk);
      return;
    }
    (async () => {
      for (let i = 0; i < chunk.length; i += bucket.pieceBytes) {
        const piece = chunk.subarray(i, i + bucket.pieceBytes);
        await bucket.take(piece.length);
        if (this.destroyed) return;
        this.push(piece);
      }
    })().then(
      () => done(),
      (e: Error) => done(e),
    );
  }
}
