/**
 * HTTP for the virtual tier's Python: the interpreter has no sockets, so
 * `urllib.request` (python-http.py, loaded by the driver) writes each request
 * to the device /dev/kiln-http and blocks reading the answer. The worker
 * posts the request to the host; the host runs it through the sandbox's egress
 * fetch (src/network/fetch.ts: policy, secrets, caps, audit, the same as
 * `curl`) and answers on a port of its own, which the worker waits on.
 *
 * The device's wire format is in python-http-wire.ts.
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
import type { PythonHttpAnswer, PythonHttpRequest } from "./python-http-wire.ts";

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
