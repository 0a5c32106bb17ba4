/** Shared by the server tests: a real server on an ephemeral loopback port, and raw HTTP helpers. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { KilnApi } from "../../src/client/api.ts";
import { KilnClient } from "../../src/client/index.ts";
import { type RunningServer, type ServeOptions, startServer } from "../../src/server/index.ts";

/** A server on a fresh data directory, with one key. */
export interface TestServer {
  server: RunningServer;
  key: string;
  dataDir: string;
  /** Raw request with the key. */
  req(
    method: string,
    path: string,
    init?: { json?: unknown; body?: BodyInitLike; key?: string | null },
  ): Promise<Response>;
  /** Stops the server and removes the data directory. */
  dispose(): Promise<void>;
}

type BodyInitLike = string | Uint8Array;

/** Starts a server on an ephemeral port. */
export async function testServer(
  options: {
    dataDir?: string;
    key?: Parameters<RunningServer["keys"]["create"]>[0];
    serve?: Omit<ServeOptions, "dataDir" | "port">;
  } = {},
): Promise<TestServer> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "kiln-srv-"));
  const server = await startServer({ dataDir, port: 0, graceMs: 2000, ...options.serve });
  const { key } = server.keys.create({ name: "test", ...(options.key ?? {}) });
  return {
    server,
    key,
    dataDir,
    req: (method, path, init = {}) =>
      request(server.url, method, path, { ...init, key: init.key === undefined ? key : init.key }),
    async dispose() {
      await server.close(500);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A raw HTTP request. */
export async function request(
  base: string,
  method: string,
  path: string,
  init: { json?: unknown; body?: BodyInitLike; key?: string | null } = {},
): Promise<Response> {
  const headers: Record<string, string> = {};
  if (init.key) headers.authorization = `Bearer ${init.key}`;
  let body: string | Uint8Array | undefined;
  if (init.json !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(init.json);
  } else if (init.body !== undefined) {
    headers["content-type"] = "application/octet-stream";
    body = init.body;
  }
  return fetch(base + path, { method, headers, ...(body !== undefined ? { body } : {}) });
}

/** Asserts a response is the error shape with `code` (and the status the code maps to). */
export async function assertError(
  res: Response,
  code: string,
  status?: number,
): Promise<Record<string, unknown>> {
  const text = await res.text();
  let body: { error?: Record<string, unknown> };
  try {
    body = JSON.parse(text);
  } catch {
    assert.fail(`not JSON (HTTP ${res.status}): ${text.slice(0, 200)}`);
  }
  assert.equal(body.error?.code, code, `expected ${code}, got HTTP ${res.status} ${text.slice(0, 300)}`);
  assert.equal(typeof body.error?.message, "string");
  if (status !== undefined) assert.equal(res.status, status);
  return body.error!;
}

/**
 * An `open` for the conformance suite: a real server on the data directory
 * (restarted on the same directory when called again), and a client with a
 * key stored there. Closing the client stops the server.
 */
export function clientOpener(): (dataDir: string) => Promise<KilnApi> {
  let server: RunningServer | undefined;
  const keys = new Map<string, string>();
  return async (dataDir) => {
    await server?.close(1000);
    const s = await startServer({ dataDir, port: 0, graceMs: 1000 });
    server = s;
    let key = keys.get(dataDir);
    if (!key) {
      key = s.keys.create({ name: "conformance" }).key;
      keys.set(dataDir, key);
    }
    const client = await KilnClient.open({ url: s.url, apiKey: key });
    const close = client.close.bind(client);
    client.close = async () => {
      await close();
      await s.close(1000);
    };
    return client;
  };
}

/** A JSON response body, shape unchecked (tests assert on it). */
// biome-ignore lint/suspicious/noExplicitAny: response bodies are checked by the assertions that read them
export async function body(res: Response | Promise<Response>): Promise<any> {
  return (await res).json();
}
