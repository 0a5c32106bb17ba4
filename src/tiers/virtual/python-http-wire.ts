/**
 * The wire of /dev/kiln-http, the virtual tier's Python's way to HTTP
 * (python-http.ts): what the worker thread needs, without the host's egress
 * code. Both ways: 16 bytes of space-padded decimal length, that many bytes
 * of JSON, then the body (`bodyLength` in the JSON).
 */
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

/** Largest JSON head of a request, bytes (1 MiB). */
const MAX_HEAD_BYTES = 1 << 20;
/** Largest request body, bytes (64 MiB). */
export const MAX_REQUEST_BODY_BYTES = 64 << 20;

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
  if (!Number.isSafeInteger(n) || n < 2 || n > MAX_HEAD_BYTES) throw new Error("a malformed request");
  if (buf.length < 16 + n) return undefined;
  const head = JSON.parse(buf.subarray(16, 16 + n).toString()) as Omit<PythonHttpRequest, "body"> & {
    bodyLength: number;
  };
  if (!Number.isSafeInteger(head.bodyLength) || head.bodyLength < 0) throw new Error("a malformed request");
  if (head.bodyLength > MAX_REQUEST_BODY_BYTES)
    throw new Error(`a request body over ${MAX_REQUEST_BODY_BYTES} bytes`);
  if (buf.length < 16 + n + head.bodyLength) return undefined;
  return {
    method: String(head.method),
    url: String(head.url),
    headers: Array.isArray(head.headers) ? head.headers.map(([k, v]) => [String(k), String(v)]) : [],
    timeoutMs: typeof head.timeoutMs === "number" ? head.timeoutMs : null,
    body: new Uint8Array(buf.subarray(16 + n, 16 + n + head.bodyLength)),
  };
}
