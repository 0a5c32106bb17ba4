/**
 * HTTP for the virtual tier's Python: the interpreter has no sockets, so
 * `urllib.request` (python-http.py, loaded by the driver) writes each request
 * to the device /dev/kiln-http and blocks reading the answer. The worker
 * posts the request to the host; the host runs it through the sandbox's egress
 * fetch (src/network/fetch.ts: policy, secrets, caps, audit, the same as
 * `curl`) and answers on a port of its own, which the worker waits on.
 *
 * Device wire format, both ways: 16 bytes of space-padded decimal length,
 * that many bytes of JSON, then the body (`bodyLength` in the JSON).
 *
 * ```
 * python (WASM)          worker thread                     host (main thread)
 * write(request) ----->  buffered until whole
 * read()  blocks ----->  post {type:"http", id, request} -> fetch through egress
 *                        Atomics.wait(answer signal)   <-- port.postMessage({id, head, body}); notify
 *         <-----------   answer bytes
 * ```
 */
import { type EgressFetchOptions, type EgressFetchResult, EgressRefusedError } from "../../network/fetch.ts";

/** A request as Python sent it. */
export interface PythonHttpRequest {
  method: string;
  url: string;
  headers: [string, string][];
  /** urllib's timeout, ms; null: none given. */
  timeoutMs: number | null;
  body: Uint8Array;
}

/** The JSON part of an answer. */
export interface PythonHttpHead {
  status?: number;
  reason?: string;
  headers?: [string, string][];
  url?: string;
  /** Set when there is no HTTP answer (urllib raises URLError with it). */
  error?: string;
  bodyLength: number;
}

/** An answer to request `id`, as the host posts it to the worker. */
export interface PythonHttpAnswer {
  id: number;
  head: PythonHttpHead;
  body: Uint8Array;
}

/** The fetch Python's requests go through (the sandbox's egress fetch), or undefined without egress. */
export type PythonFetch = (url: string, options: EgressFetchOptions) => Promise<EgressFetchResult>;

const NO_BODY = new Uint8Array(0);

/**
 * Answers one request through `fetch`. A refusal by the policy is a 403
 * naming the rule (body and `X-Kiln-Rule`), as on the real tiers; any other
 * failure is an `error`. Redirects are left to urllib, so each hop is checked.
 */
export async function answerPythonHttp(
  request: PythonHttpRequest,
  fetch: PythonFetch | undefined,
  signal?: AbortSignal,
): Promise<Omit<PythonHttpAnswer, "id">> {
  if (!fetch)
    return {
      head: { error: "Kiln: this sandbox has no network egress (its policy allows none)", bodyLength: 0 },
      body: NO_BODY,
    };
  try {
    const headers: Record<string, string> = {};
    for (const [k, v] of request.headers) headers[k] = v;
    const r = await fetch(request.url, {
      method: request.method,
      headers,
      ...(request.body.length > 0 ? { body: request.body } : {}),
      followRedirects: false,
      ...(request.timeoutMs !== null ? { timeoutMs: request.timeoutMs } : {}),
      ...(signal ? { signal } : {}),
    });
    return {
      head: {
        status: r.status,
        reason: r.statusText,
        headers: Object.entries(r.headers),
        url: r.url,
        bodyLength: r.body.length,
      },
      body: r.body,
    };
  } catch (e) {
    if (e instanceof EgressRefusedError) {
      const body = new TextEncoder().encode(`${e.message}\n`);
      return {
        head: {
          status: 403,
          reason: "Forbidden",
          headers: [
            ["content-type", "text/plain; charset=utf-8"],
            ["x-kiln-rule", e.rule],
          ],
          url: request.url,
          bodyLength: body.length,
        },
        body,
      };
    }
    return {
      head: { error: `Kiln: ${e instanceof Error ? e.message : String(e)}`, bodyLength: 0 },
      body: NO_BODY,
    };
  }
}

/** Frames a length-prefixed JSON head and a body, as the device carries them. */
export function frame(head: object, body: Uint8Array): Uint8Array {
  const json = Buffer.from(JSON.stringify(head));
  return Buffer.concat([Buffer.from(String(json.length).padStart(16, " ")), json, body]);
}

/**
 * Parses a whole request from what Python wrote, or undefined while it is not
 * whole yet. @throws Error for bytes that are not a request
 */
export function parseRequest(bytes: Uint8Array): PythonHttpRequest | undefined {
  if (bytes.length < 16) return undefined;
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const n = Number(buf.subarray(0, 16).toString().trim());
  if (!Number.isSafeInteger(n) || n < 2) throw new Error("bad request frame");
  if (buf.length < 16 + n) return undefined;
  const head = JSON.parse(buf.subarray(16, 16 + n).toString()) as Omit<PythonHttpRequest, "body"> & {
    bodyLength: number;
  };
  if (buf.length < 16 + n + head.bodyLength) return undefined;
  return {
    method: String(head.method),
    url: String(head.url),
    headers: Array.isArray(head.headers) ? head.headers.map(([k, v]) => [String(k), String(v)]) : [],
    timeoutMs: typeof head.timeoutMs === "number" ? head.timeoutMs : null,
    body: new Uint8Array(buf.subarray(16 + n, 16 + n + head.bodyLength)),
  };
}
