/**
 * A small client of QEMU's machine protocol (QMP) over a connected stream
 * (the socketpair QEMU inherits as its `-mon` chardev): one JSON object per
 * line each way. QEMU greets with `{"QMP": ...}`, is put in command mode with
 * `qmp_capabilities`, and answers each `{"execute": ...}` in order with
 * `{"return": ...}` or `{"error": {"class", "desc"}}`; events
 * (`{"event": ...}`) come in between and are ignored here.
 */
import type { Duplex } from "node:stream";

/** A QMP command that QEMU refused, or a connection that ended. */
export class QmpError extends Error {
  /** QEMU's error class, e.g. `GenericError`; `closed` when the connection ended. */
  readonly errorClass: string;
  constructor(errorClass: string, message: string) {
    super(message);
    this.errorClass = errorClass;
  }
}

interface Waiter {
  resolve(value: unknown): void;
  reject(e: Error): void;
}

/** One QMP connection. */
export class Qmp {
  private readonly stream: Duplex;
  private buffer = "";
  private greeted: Waiter | undefined;
  private readonly waiters: Waiter[] = [];
  private failure: QmpError | undefined;
  private onClosed: () => void = () => {};
  /** Resolves when the connection has ended (QEMU exited, or `close`). */
  readonly closed: Promise<void> = new Promise((resolve) => {
    this.onClosed = resolve;
  });

  private constructor(stream: Duplex) {
    this.stream = stream;
    stream.setEncoding("utf8");
    stream.on("data", (d: string) => this.onData(d));
    stream.on("error", (e) => this.fail(new QmpError("closed", `QMP: ${e.message}`)));
    stream.on("close", () => this.fail(new QmpError("closed", "QMP connection closed")));
  }

  /**
   * Waits for QEMU's greeting and enters command mode.
   * @throws QmpError when QEMU closes the stream or does not greet within `timeoutMs`
   */
  static async open(stream: Duplex, timeoutMs = 30_000): Promise<Qmp> {
    const q = new Qmp(stream);
    let timer: NodeJS.Timeout | undefined;
    try {
      await new Promise((resolve, reject) => {
        q.greeted = { resolve, reject };
        timer = setTimeout(
          () => reject(new QmpError("timeout", `no QMP greeting within ${timeoutMs} ms`)),
          timeoutMs,
        );
      });
    } finally {
      clearTimeout(timer);
    }
    await q.execute("qmp_capabilities");
    return q;
  }

  /** Runs a command; resolves with its `return` value. @throws QmpError */
  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<T>((resolve, reject) => {
      this.waiters.push({ resolve: resolve as (v: unknown) => void, reject });
      this.stream.write(`${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}) })}\n`);
    });
  }

  /** Closes the connection (QEMU carries on). */
  close(): void {
    this.stream.destroy();
  }

  private onData(d: string): void {
    this.buffer += d;
    for (let i = this.buffer.indexOf("\n"); i >= 0; i = this.buffer.indexOf("\n")) {
      const line = this.buffer.slice(0, i).trim();
      this.buffer = this.buffer.slice(i + 1);
      if (!line) continue;
      let msg: { QMP?: unknown; return?: unknown; error?: { class?: string; desc?: string }; event?: string };
      try {
        msg = JSON.parse(line);
      } catch {
        this.fail(new QmpError("closed", `QMP: unreadable line from QEMU: ${line.slice(0, 200)}`));
        this.stream.destroy();
        return;
      }
      if (msg.QMP !== undefined) {
        this.greeted?.resolve(undefined);
        this.greeted = undefined;
      } else if (msg.error !== undefined) {
        this.waiters
          .shift()
          ?.reject(new QmpError(msg.error.class ?? "GenericError", msg.error.desc ?? "QMP error"));
      } else if ("return" in msg) {
        this.waiters.shift()?.resolve(msg.return);
      }
    }
  }

  private fail(e: QmpError): void {
    if (this.failure) return;
    this.failure = e;
    this.onClosed();
    this.greeted?.reject(e);
    for (const w of this.waiters.splice(0)) w.reject(e);
  }
}
