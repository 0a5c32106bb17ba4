/**
 * A fake "internet" for egress tests: a network namespace made by the test,
 * joined to the host by a veth, holding TEST-NET-2 addresses (a /29 of
 * 198.51.100.0/24 picked from the test's pid): `files` and `other`, each with
 * an HTTP server on 80, an HTTPS server on 443 (a test CA) and an HTTP server
 * on 8080 (`/bytes/N` answers N bytes). Removed by `close`; one left by a killed test run is removed by the
 * next (its name carries the pid that made it).
 */
import { execFileSync, spawn } from "node:child_process";
import { makeTestCertificates, type TestCertificates } from "./test-ca.ts";

/** A running fake internet. */
export interface FakeInternet {
  /** Address of `files.test`. */
  files: string;
  /** Address of `other.test`. */
  other: string;
  /** The host's own address on the link. */
  hostSide: string;
  certs: TestCertificates;
  /** `name=address,...` for KILN_NETWORK_HOSTS. */
  hosts: string;
  /** The same names for `Kiln.open({ networkHosts })`. */
  networkHosts: Record<string, string[]>;
  close(): void;
}

const SERVER = `
const http = require("node:http"), https = require("node:https");
const [files, other] = process.argv.slice(1);
const sha = (v) => require("node:crypto").createHash("sha256").update(v).digest("hex");
// The Authorization header is echoed, and its SHA-256 shows what arrived without the echo carrying it.
const auth = (req) => req.headers.authorization === undefined ? "" : " auth=" + req.headers.authorization + " authsha=" + sha(req.headers.authorization);
// /bytes/N answers N bytes (at most 64 MiB), for bandwidth tests.
const handler = (name) => (req, res) => { req.resume(); req.on("end", () => { const n = /^\\/bytes\\/(\\d+)$/.exec(req.url); if (n) return res.end(Buffer.alloc(Math.min(Number(n[1]), 64 << 20), 120)); res.end(name + ":" + req.method + " " + req.url + " host=" + req.headers.host + auth(req)); }); };
const tls = { key: process.env.TLS_KEY, cert: process.env.TLS_CERT };
let n = 0;
for (const [name, addr] of [["files", files], ["other", other]]) {
  for (const [port, s] of [[80, http.createServer(handler(name))], [443, https.createServer(tls, handler(name))], [8080, http.createServer(handler(name + "-8080"))]]) {
    s.listen(port, addr, () => { if (++n === 6) process.stdout.write("ready\\n"); });
  }
}
`;

function ip(...args: string[]): void {
  execFileSync("ip", args, { stdio: "pipe" });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Whether a fake internet can be made here (root, `ip`); else why not. */
export function fakeInternetUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root to make network namespaces";
  try {
    execFileSync("ip", ["-V"], { stdio: "pipe" });
  } catch {
    return "needs iproute2 (ip)";
  }
  return undefined;
}

/** Makes the namespace, its link and its servers. */
export async function startFakeInternet(): Promise<FakeInternet> {
  for (const name of execFileSync("ip", ["netns", "list"], { encoding: "utf8" }).split("\n")) {
    const m = /^kiln-inet-(\d+)/.exec(name);
    if (m && !alive(Number(m[1])))
      execFileSync("ip", ["netns", "del", `kiln-inet-${m[1]}`], { stdio: "ignore" });
  }
  const ns = `kiln-inet-${process.pid}`;
  const veth = `ki${process.pid.toString(36)}`.slice(0, 15);
  const base = 8 * (process.pid % 32);
  const addr = (i: number) => `198.51.100.${base + i}`;
  const certs = makeTestCertificates(["files.test", "other.test"]);
  ip("netns", "add", ns);
  const close = () => {
    server?.kill("SIGKILL");
    try {
      ip("netns", "del", ns);
    } catch {}
    try {
      ip("link", "del", veth);
    } catch {}
  };
  let server: ReturnType<typeof spawn> | undefined;
  try {
    ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns);
    ip("addr", "add", `${addr(1)}/29`, "dev", veth);
    ip("link", "set", veth, "up");
    ip("-n", ns, "link", "set", "lo", "up");
    ip("-n", ns, "addr", "add", `${addr(2)}/29`, "dev", "eth0");
    ip("-n", ns, "addr", "add", `${addr(3)}/29`, "dev", "eth0");
    ip("-n", ns, "link", "set", "eth0", "up");
    server = spawn("ip", ["netns", "exec", ns, process.execPath, "-e", SERVER, addr(2), addr(3)], {
      stdio: ["ignore", "pipe", "inherit"],
      env: { ...process.env, TLS_KEY: certs.key, TLS_CERT: certs.cert },
    });
    await new Promise<void>((resolve, reject) => {
      server!.stdout!.on("data", (d: Buffer) => {
        if (d.toString().includes("ready")) resolve();
      });
      server!.once("exit", (code) => reject(new Error(`fake internet servers exited (${code})`)));
    });
  } catch (e) {
    close();
    throw e;
  }
  return {
    files: addr(2),
    other: addr(3),
    hostSide: addr(1),
    certs,
    hosts: `files.test=${addr(2)},other.test=${addr(3)}`,
    networkHosts: { "files.test": [addr(2)], "other.test": [addr(3)] },
    close,
  };
}
