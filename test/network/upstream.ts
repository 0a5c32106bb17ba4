/**
 * Test upstreams on loopback addresses (127.0.0.2 as `files.test`, 127.0.0.3 as
 * `other.test`): an HTTP and an HTTPS server each, answering
 * `<name>:<method> <path> host=<Host>`.
 */
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { makeTestCertificates, type TestCertificates } from "./test-ca.ts";

/** Running test upstreams. */
export interface Upstreams {
  certs: TestCertificates;
  /** Port of the HTTP servers (the same on both addresses). */
  httpPort: number;
  /** Port of the HTTPS servers. */
  httpsPort: number;
  close(): Promise<void>;
}

function handler(name: string): http.RequestListener {
  return (req, res) => {
    req.resume();
    req.on("end", () => res.end(`${name}:${req.method} ${req.url} host=${req.headers.host}`));
  };
}

async function listen(server: http.Server, host: string, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return (server.address() as AddressInfo).port;
}

/** Starts HTTP and HTTPS servers on 127.0.0.2 (files) and 127.0.0.3 (other). */
export async function startUpstreams(): Promise<Upstreams> {
  const certs = makeTestCertificates(["files.test", "other.test"]);
  const servers: http.Server[] = [];
  const make = (tls: boolean, name: string) => {
    const s = tls
      ? https.createServer({ key: certs.key, cert: certs.cert }, handler(name))
      : http.createServer(handler(name));
    servers.push(s);
    return s;
  };
  const httpPort = await listen(make(false, "files"), "127.0.0.2", 0);
  await listen(make(false, "other"), "127.0.0.3", httpPort);
  const httpsPort = await listen(make(true, "files"), "127.0.0.2", 0);
  await listen(make(true, "other"), "127.0.0.3", httpsPort);
  return {
    certs,
    httpPort,
    httpsPort,
    close: async () => {
      await Promise.all(
        servers.map((s) =>
          new Promise<void>((resolve) => s.close(() => resolve())).then(() => s.closeAllConnections()),
        ),
      );
    },
  };
}
