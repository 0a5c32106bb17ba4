/** The client's HTTP transport: auth header, JSON, error bodies to KilnErrors, aborts. */
import { AbortedError, KilnError, throwIfAborted } from "../core/errors.ts";
import { errorFromWire, type WireError } from "./errors.ts";

/** One request. */
export interface RequestOptions {
  query?: Record<string, string | number | string[] | undefined>;
  /** A JSON body. */
  json?: unknown;
  /** A raw body (bytes, streamed when a ReadableStream). */
  body?: Uint8Array | ReadableStream<Uint8Array>;
  signal?: AbortSignal | undefined;
}

/** Whether `e` is fetch's abort. */
function isAbort(e: unknown): boolean {
  return (e as { name?: string })?.name === "AbortError" || (e as { name?: string })?.name === "TimeoutError";
}

/** Rethrows fetch and stream failures as KilnErrors. */
export function wireFailure(e: unknown, signal?: AbortSignal): KilnError {
  if (e instanceof KilnError) return e;
  if (signal?.aborted || isAbort(e)) return new AbortedError(undefined, { cause: e });
  return new KilnError("internal", `the Kiln server could not be reached: ${(e as Error)?.message ?? e}`, {
    cause: e,
  });
}

/** Talks to one server with one key. */
export class Transport {
  readonly url: string;
  private readonly apiKey: string;
  private readonly fetchFn: typeof fetch;

  constructor(url: string, apiKey: string, fetchFn: typeof fetch = fetch) {
    this.url = url.replace(/\/+$/, "");
    this.apiKey = apiKey;
    this.fetchFn = fetchFn;
  }

  /** Sends a request; resolves with a 2xx response, else throws the server's KilnError. */
  async request(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    throwIfAborted(options.signal);
    const u = new URL(this.url + path);
    for (const [k, v] of Object.entries(options.query ?? {})) {
      if (v === undefined) continue;
      for (const item of Array.isArray(v) ? v : [v]) u.searchParams.append(k, String(item));
    }
    const headers: Record<string, string> = { authorization: `Bearer ${this.apiKey}` };
    let body: string | Uint8Array | ReadableStream<Uint8Array> | undefined;
    if (options.json !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(options.json);
    } else if (options.body !== undefined) {
      headers["content-type"] = "application/octet-stream";
      body = options.body;
    }
    const send = () =>
      this.fetchFn(u, {
        method,
        headers,
        ...(body !== undefined ? { body } : {}),
        ...(body instanceof ReadableStream ? { duplex: "half" } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      } as RequestInit);
    let res: Response;
    try {
      res = await send();
    } catch (e) {
      // A kept-alive connection the server closed meanwhile: a safe request (GET, HEAD) is sent
      // again once on a fresh connection. Others are not: they may have reached the server.
      if ((method !== "GET" && method !== "HEAD") || options.signal?.aborted || !isClosedConnection(e)) {
        throw wireFailure(e, options.signal);
      }
      try {
        res = await send();
      } catch (e2) {
        throw wireFailure(e2, options.signal);
      }
    }
    if (res.ok) return res;
    let wire: WireError;
    try {
      wire = ((await res.json()) as { error: WireError }).error;
    } catch (e) {
      if (options.signal?.aborted) throw wireFailure(e, options.signal);
      wire = { code: "internal", message: `HTTP ${res.status} from the Kiln server` };
    }
    throw errorFromWire(wire ?? { code: "internal", message: `HTTP ${res.status}` });
  }

  /** Sends a request and parses its JSON response. */
  async json<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const res = await this.request(method, path, options);
    try {
      return (await res.json()) as T;
    } catch (e) {
      throw wireFailure(e, options.signal);
    }
  }

  /** Sends a request whose response has no body. */
  async empty(method: string, path: string, options: RequestOptions = {}): Promise<void> {
    const res = await this.request(method, path, options);
    await res.body?.cancel().catch(() => {});
  }
}

/** True when `e` is fetch's failure on a connection the other side had closed. */
function isClosedConnection(e: unknown): boolean {
  const cause = (e as { cause?: { code?: string } })?.cause;
  return cause?.code === "UND_ERR_SOCKET" || cause?.code === "ECONNRESET";
}
