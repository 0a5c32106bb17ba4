/**
 * Upstream proxies for tests, on 127.0.0.1, each recording what passed
 * through it: an HTTP proxy that serves CONNECT only (Node's http module),
 * and a SOCKS5 proxy (@mongodb-js/socksv5), both taking a user name and
 * password when given one and refusing anything else.
 */
import http from "node:http";
import { createRequire } from "node:module";
import net, { type AddressInfo, type Socket } from "node:net";

/** A running test proxy. */
export interface TestProxy {
  /** Its port on 127.0.0.1. */
  port: number;
  /** `http://user:password@127.0.0.1:port` (or `socks5://...`), with the credentials it takes. */
  url: string;
  /** Destinations it connected to, `address:port`, in order. */
  tunnels: string[];
  /** Credentials it was given (`user:password`), accepted or not, in order. */
  credentials: string[];
  /** Attempts it refused (bad or missing credentials). */
  refused: number;
  close(): Promise<void>;
}

function closer(server: net.Server, sockets: Set<Socket>): () => Promise<void> {
  return () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
}

/** An HTTP CONNECT proxy; with `user`, it answers 407 to any other credentials. */
export async function startConnectProxy(user?: { name: string; password: string }): Promise<TestProxy> {
  const sockets = new Set<Socket>();
  const server = http.createServer((_req, res) => {
    res.writeHead(405, { connection: "close" });
    res.end();
  });
  const p: TestProxy = {
    port: 0,
    url: "",
    tunnels: [],
    credentials: [],
    refused: 0,
    close: closer(server, sockets),
  };
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  server.on("connect", (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on("error", () => {});
    const auth = req.headers["proxy-authorization"];
    const given =
      typeof auth === "string" && auth.startsWith("Basic ")
        ? Buffer.from(auth.slice(6), "base64").toString()
        : undefined;
    if (given !== undefined) p.credentials.push(given);
    if (user && given !== `${user.name}:${user.password}`) {
      p.refused++;
      socket.end(
        'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n',
      );
      return;
    }
    const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(req.url ?? "");
    if (!m) {
      socket.end("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    p.tunnels.push(req.url!);
    const upstream = net.connect({ host: m[1]!, port: Number(m[2]) });
    sockets.add(upstream);
    upstream.once("close", () => sockets.delete(upstream));
    upstream.on("error", () => socket.destroy());
    upstream.once("connect", () => {
      socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length) upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    socket.once("close", () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  p.port = (server.address() as AddressInfo).port;
  p.url = `http://${user ? `${user.name}:${user.password}@` : ""}127.0.0.1:${p.port}`;
  return p;
}

interface SocksInfo {
  dstAddr: string;
  dstPort: number;
}
interface SocksServer extends net.Server {
  useAuth(handler: unknown): void;
}
interface SocksModule {
  createServer(listener: (info: SocksInfo, accept: () => void, deny: () => void) => void): SocksServer;
  auth: {
    None(): unknown;
    UserPassword(check: (user: string, password: string, cb: (ok: boolean) => void) => void): unknown;
  };
}

/** A SOCKS5 proxy; with `user`, it takes only those credentials (RFC 1929), else none. */
export async function startSocksProxy(user?: { name: string; password: string }): Promise<TestProxy> {
  const socks = createRequire(import.meta.url)("@mongodb-js/socksv5") as SocksModule;
  const server = socks.createServer((info, accept) => {
    p.tunnels.push(`${info.dstAddr}:${info.dstPort}`);
    accept();
  });
  const p: TestProxy = {
    port: 0,
    url: "",
    tunnels: [],
    credentials: [],
    refused: 0,
    // Its "connection" event is a SOCKS request, not a socket: open tunnels end with their clients.
    close: async () => {
      server.close();
    },
  };
  server.useAuth(
    user
      ? socks.auth.UserPassword((name, password, cb) => {
          p.credentials.push(`${name}:${password}`);
          const ok = name === user.name && password === user.password;
          if (!ok) p.refused++;
          cb(ok);
        })
      : socks.auth.None(),
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  p.port = (server.address() as AddressInfo).port;
  p.url = `socks5://${user ? `${user.name}:${user.password}@` : ""}127.0.0.1:${p.port}`;
  return p;
}

/** A port on 127.0.0.1 where nothing listens (a proxy that is down). */
export async function deadPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}
