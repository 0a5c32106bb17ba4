/**
 * Serving the E2B handler over node:http: `serveE2b` for tests and a
 * standalone endpoint, `e2bNodeListener` to mount it in an existing Node
 * server.
 */
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { createAdaptorServer, getRequestListener } from "@hono/node-server";
import { createE2bHandler, type E2bHandler, type E2bHandlerOptions } from "./handler.ts";

/** Options of {@link serveE2b}. */
export interface ServeE2bOptions extends E2bHandlerOptions {
  /** Port; default 0 (any free port). */
  port?: number;
  /** Host to bind; default `127.0.0.1`. */
  host?: string;
}

/** A running E2B endpoint. */
export interface E2bServer {
  /** Base URL: set both `E2B_API_URL` and `E2B_SANDBOX_URL` (or `apiUrl` / `sandboxUrl`) to it. */
  url: string;
  server: Server;
  /** Stops accepting connections and closes open ones (sandboxes stay). */
  close(): Promise<void>;
}

/** A node:http request listener for an E2B handler (streams responses as they are produced). */
export function e2bNodeListener(handler: E2bHandler): (req: IncomingMessage, res: ServerResponse) => void {
  return getRequestListener(handler);
}

/** Serves the E2B-compatible API on a node:http server. */
export async function serveE2b(options: ServeE2bOptions): Promise<E2bServer> {
  const handler = createE2bHandler(options);
  const server = createAdaptorServer({ fetch: handler }) as Server;
  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(":") ? `[${host}]` : host;
  return {
    url: `http://${urlHost}:${port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
