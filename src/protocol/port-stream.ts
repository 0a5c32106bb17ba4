/**
 * A TCP connection to a port inside a sandbox, carried by the agent's frame
 * stream (the `connect` op, docs/protocol.md): a Node `Duplex` whose bytes are
 * the socket's. Both directions are windowed: the agent sends at most
 * {@link PORT_WINDOW} bytes ahead of what the consumer has read (CREDIT h→a),
 * and the host keeps at most {@link PORT_WINDOW} bytes written but not yet
 * acknowledged by the agent (CREDIT a→h), so a slow peer on either side
 * holds back the other instead of filling memory.
 */
import { Duplex } from "node:stream";
import { encodeFrame, encodeJsonFrame, FrameType } from "./frames.ts";

/** Bytes in flight per direction of a port connection. */
export const PORT_WINDOW = 1024 * 1024;
/** Largest DATA frame sent; matches the agent's chunk size. */
const CHUNK = 64 * 1024;

/** What a port stream needs from the agent connection that carries it. */
export interface FrameLink {
  register(
    id: number,
    handler: { onFrame(type: number, payload: Uint8Array): void; onClose(e: Error): void },
  ): void;
  unregister(id: number): void;
  send(frame: Uint8Array, onError?: (e: Error) => void): boolean;
  trySend(frame: Uint8Array): void;
  sendAndDrain(frame: Uint8Array): Promise<void>;
}

function credit(id: number, bytes: number): Uint8Array {
  const n = new Uint8Array(4);
  new DataView(n.buffer).setUint32(0, bytes);
  return encodeFrame(FrameType.Credit, id, n);
}

/** One port connection; made by `AgentClient.connectPort`. */
export class PortStream extends Duplex {
  private readonly link: FrameLink;
  private readonly id: number;
  private readonly errorOf: (payload: Uint8Array) => Error;
  /** Bytes received from the agent, and bytes the agent was allowed to send. */
  private received = 0;
  private granted = PORT_WINDOW;
  /** Bytes sent to the agent and not yet written by it. */
  private inflight = 0;
  private sent = 0;

  /** Bytes received from the port (as `net.Socket`'s). */
  get bytesRead(): number {
    return this.received;
  }

  /** Bytes sent to the port (as `net.Socket`'s). */
  get bytesWritten(): number {
    return this.sent;
  }
  private windowWaiters: (() => void)[] = [];
  /** The agent ended its side (END or ERROR), and we ended ours (END or CANCEL). */
  private remoteDone = false;
  private localDone = false;

  /** @internal */
  constructor(link: FrameLink, id: number, errorOf: (payload: Uint8Array) => Error) {
    super({ allowHalfOpen: true, readableHighWaterMark: PORT_WINDOW, writableHighWaterMark: CHUNK });
    this.link = link;
    this.id = id;
    this.errorOf = errorOf;
  }

  /** Sends the `connect` request; resolves once the agent has connected. @internal */
  open(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      let started = false;
      this.link.register(this.id, {
        onFrame: (type, payload) => {
          switch (type) {
            case FrameType.Response:
              started = true;
              resolve();
              break;
            case FrameType.Data:
              this.received += payload.length;
              // The payload is a view into the decoder's buffer: keep a copy.
              this.push(Buffer.from(payload));
              break;
            case FrameType.End:
              this.remoteDone = true;
              this.push(null);
              this.settle();
              break;
            case FrameType.Credit:
              if (payload.length === 4) {
                this.inflight -= new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0);
                this.wake();
              }
              break;
            case FrameType.Error: {
              this.remoteDone = true;
              const e = this.errorOf(payload);
              if (!started) {
                this.localDone = true;
                this.settle();
                reject(e);
              } else this.destroy(e);
              break;
            }
          }
        },
        onClose: (e) => {
          this.remoteDone = this.localDone = true;
          this.link.unregister(this.id);
          if (!started) reject(e);
          else this.destroy(e);
          this.wake();
        },
      });
      this.link.send(
        encodeJsonFrame(FrameType.Request, this.id, { op: "connect", port, window: PORT_WINDOW }),
        reject,
      );
    });
  }

  override _read(): void {
    if (this.remoteDone) return;
    // Keep granted == consumed + window, in steps of a quarter window.
    const consumed = this.received - this.readableLength;
    const more = consumed + PORT_WINDOW - this.granted;
    if (more >= PORT_WINDOW / 4) {
      this.granted += more;
      this.link.trySend(credit(this.id, more));
    }
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.pushOut(chunk).then(() => cb(), cb);
  }

  private async pushOut(chunk: Uint8Array): Promise<void> {
    for (let at = 0; at < chunk.length; at += CHUNK) {
      // The agent credits every DATA it takes, even after its socket broke, so this wait ends.
      while (this.inflight >= PORT_WINDOW && !this.destroyed) {
        await new Promise<void>((r) => this.windowWaiters.push(r));
      }
      if (this.destroyed) throw new Error("the port connection is closed");
      const part = chunk.subarray(at, at + CHUNK);
      this.inflight += part.length;
      this.sent += part.length;
      await this.link.sendAndDrain(encodeFrame(FrameType.Data, this.id, part));
    }
  }

  override _final(cb: (e?: Error | null) => void): void {
    if (!this.localDone) {
      this.localDone = true;
      this.link.trySend(encodeFrame(FrameType.End, this.id));
      this.settle();
    }
    cb();
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    if (!this.remoteDone || !this.localDone) {
      this.localDone = this.remoteDone = true;
      this.link.trySend(encodeFrame(FrameType.Cancel, this.id));
    }
    this.link.unregister(this.id);
    this.wake();
    cb(err);
  }

  /** Forgets the id once both sides have ended. */
  private settle(): void {
    if (this.remoteDone && this.localDone) this.link.unregister(this.id);
  }

  private wake(): void {
    const w = this.windowWaiters;
    this.windowWaiters = [];
    for (const f of w) f();
  }
}
