/** Reading the server's NDJSON event streams. */
import type { KilnError } from "../core/errors.ts";
import type { CellError, CellResult } from "../core/execution.ts";
import { errorFromWire, type WireError } from "./errors.ts";
import { wireFailure } from "./http.ts";

/** One event of a command or code stream. */
export type WireEvent =
  | { type: "start"; pid: number }
  | { type: "stdout"; data: string }
  | { type: "stderr"; data: string }
  | { type: "result"; result: CellResult }
  | { type: "cell_error"; error: CellError }
  | { type: "exit"; result?: Record<string, unknown>; error?: WireError };

/** Yields the events of an NDJSON response body. */
export async function* events(res: Response, signal?: AbortSignal): AsyncGenerator<WireEvent> {
  if (!res.body) return;
  const decoder = new TextDecoder();
  let buf = "";
  const reader = res.body.getReader();
  try {
    for (;;) {
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch (e) {
        throw wireFailure(e, signal);
      }
      if (chunk.done) break;
      buf += decoder.decode(chunk.value, { stream: true });
      let nl = buf.indexOf("\n");
      while (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim()) yield JSON.parse(line) as WireEvent;
        nl = buf.indexOf("\n");
      }
    }
    if (buf.trim()) yield JSON.parse(buf) as WireEvent;
  } finally {
    reader.releaseLock();
    await res.body.cancel().catch(() => {});
  }
}

/** What a stream ended with. */
export interface StreamEnd {
  pid: number | undefined;
  result: Record<string, unknown> | undefined;
  error: KilnError | undefined;
}

/**
 * Reads a stream to its `exit` event, calling the output callbacks in order.
 * A stream that ends without `exit` (the server went away) ends with `sandbox_stopped`.
 */
export async function consume(
  res: Response,
  handlers: {
    onStart?: (pid: number) => void;
    onStdout?: (d: string) => void;
    onStderr?: (d: string) => void;
    onResult?: (r: CellResult) => void;
    onError?: (e: CellError) => void;
  },
  signal?: AbortSignal,
): Promise<StreamEnd> {
  let pid: number | undefined;
  for await (const ev of events(res, signal)) {
    if (ev.type === "start") {
      pid = ev.pid;
      handlers.onStart?.(ev.pid);
    } else if (ev.type === "stdout") handlers.onStdout?.(ev.data);
    else if (ev.type === "stderr") handlers.onStderr?.(ev.data);
    else if (ev.type === "result") handlers.onResult?.(ev.result);
    else if (ev.type === "cell_error") handlers.onError?.(ev.error);
    else if (ev.type === "exit") {
      return {
        pid,
        result: ev.result,
        error: ev.error ? errorFromWire({ ...ev.error, result: ev.result ?? ev.error.result }) : undefined,
      };
    }
  }
  if (signal?.aborted) throw wireFailure(new Error("aborted"), signal);
  return {
    pid,
    result: undefined,
    error: errorFromWire({ code: "sandbox_stopped", message: "the stream ended before the command did" }),
  };
}
