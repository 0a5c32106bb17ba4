/**
 * Per-sandbox caps on the host-side egress path, on loopback: open
 * connections and bandwidth (the policy's `limits`), so that one sandbox
 * cannot starve the others. Each egress path here stands for one sandbox;
 * every refusal or slowdown is beside a positive control.
 */
import assert from "node:assert/strict";
import http from "node:http";
import net, { type AddressInfo, type Server, type Socket } from "node:net";
import { after, before, test } from "node:test";
import type { NetworkAuditEntry } from "../core/types.ts";
import { Egress } from "./egress.ts";
import { egressFetch } from "./fetch.ts";
import { NetworkPolicy, resolveNetwork } from "./policy.ts";
import { parseHostMap, Resolver } from "./resolver.ts";

const MIB = 1024 * 1024;
let big: http.Server;
let bigPort: number;
const listeners: Server[] = [];
const egresses: Egress[] = [];

before(async () => {
  // files.test (127.0.0.2): 1 MiB on GET, the size of the body on POST.
  big = http.createServer((req, res) => {
    if (req.method === "POST") {
      let n = 0;
      req.on("data", (c: Buffer) => {
        n += c.length;
      });
      req.on("end", () => res.end(String(n)));
      return;
    }
    res.end(Buffer.alloc(MIB, 7));
  });
  await new Promise<void>((resolve) => big.listen(0, "127.0.0.2", resolve));
  bigPort = (big.address() as AddressInfo).port;
});

after(async () => {
  for (const e of egresses) e.close();
  for (const l of listeners) l.close();
  big.closeAllConnections();
  big.close();
});

async function listen(onSocket: (s: Socket) => void): Promise<number> {
  const server = net.createServer(onSocket);
  listeners.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
}

/** One sandbox's egress path, allowed files.test with these `limits`: its ports for intercepted HTTP and its proxy. */
async function sandbox(limits?: Record<string, number>) {
  const audit: Omit<NetworkAuditEntry, "id">[] = [];
  const egress = new Egress({
    policy: new NetworkPolicy(
      resolveNetwork({ allow: ["files.test", "127.0.0.2"], ...(limits ? { limits } : {}) }),
    ),
    resolver: new Resolver(parseHostMap({ "files.test": ["127.0.0.2"] })),
    audit: (e) => audit.push(e),
  });
  egresses.push(egress);
  return {
    egress,
    audit,
    httpPort: await listen((s) => egress.http(s, { port: bigPort })),
    proxyPort: await listen((s) => egress.proxy(s)),
  };
}

/** A request through an intercepted HTTP port; resolves with status, body size and the time it took. */
function timed(
  port: number,
  method = "GET",
  body?: Buffer,
): Promise<{ status: number; bytes: number; ms: number }> {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: "127.0.0.1", port, method, path: "/big", headers: { host: "files.test" }, agent: false },
      (res) => {
        let bytes = 0;
        let text = "";
        res.on("data", (c: Buffer) => {
          bytes += c.length;
          if (text.length < 64) text += c.toString();
        });
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            bytes: method === "POST" ? Number(text) : bytes,
            ms: Date.now() - start,
          }),
        );
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

test("a bandwidth cap slows a 1 MiB download and upload to its rate; without it they are fast", async () => {
  const capped = await sandbox({ maxBytesPerSecond: 200 * 1024 });
  const free = await sandbox();
  const control = await timed(free.httpPort);
  assert.equal(control.bytes, MIB);
  const down = await timed(capped.httpPort);
  assert.equal(down.bytes, MIB, "all of it arrives");
  // At 200 KiB/s, 1 MiB takes 5 s; its first burst (64 KiB) passes at once.
  assert.ok(down.ms >= 4000, `1 MiB at 200 KiB/s took ${down.ms} ms`);
  assert.ok(control.ms < down.ms / 2, `uncapped ${control.ms} ms, capped ${down.ms} ms`);
  const up = await timed(capped.httpPort, "POST", Buffer.alloc(MIB, 1));
  assert.equal(up.bytes, MIB);
  assert.ok(up.ms >= 4000, `1 MiB up at 200 KiB/s took ${up.ms} ms`);
});

test("the virtual tier's fetch keeps to the same cap", async () => {
  const capped = await sandbox({ maxBytesPerSecond: 200 * 1024 });
  const url = `http://files.test:${bigPort}/big`;
  const freeStart = Date.now();
  assert.equal((await egressFetch((await sandbox()).egress)(url)).body.length, MIB);
  const freeMs = Date.now() - freeStart;
  const start = Date.now();
  assert.equal((await egressFetch(capped.egress)(url)).body.length, MIB);
  const ms = Date.now() - start;
  assert.ok(ms >= 4000, `1 MiB at 200 KiB/s took ${ms} ms`);
  assert.ok(freeMs < ms / 2, `uncapped ${freeMs} ms, capped ${ms} ms`);
});

test("connections beyond the policy's cap are refused, and served once others close", async () => {
  const sb = await sandbox({ maxConnections: 3 });
  const held: Socket[] = [];
  for (let i = 0; i < 3; i++) {
    const s = net.connect(sb.proxyPort, "127.0.0.1");
    s.on("error", () => {});
    held.push(s);
    await new Promise((r) => s.once("connect", r));
  }
  for (let i = 0; i < 200 && sb.egress.connections < 3; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(sb.egress.connections, 3);
  await assert.rejects(timed(sb.httpPort), /ECONNRESET|socket hang up/);
  assert.ok(sb.audit.some((e) => e.rule === "limit connections" && !e.allowed));
  for (const s of held) s.destroy();
  for (let i = 0; i < 200 && sb.egress.connections > 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal((await timed(sb.httpPort)).status, 200, "positive control");
});

test("a slow client holding one sandbox's connections open does not block another sandbox", async () => {
  const slow = await sandbox({ maxConnections: 16, maxBytesPerSecond: 256 * 1024 });
  const other = await sandbox();
  // Sandbox A: every connection it may have, each a request head that never ends, plus a capped download.
  const held: Socket[] = [];
  for (let i = 0; i < 15; i++) {
    const s = net.connect(slow.httpPort, "127.0.0.1");
    s.on("error", () => {});
    held.push(s);
    s.write("GET /big HTTP/1.1\r\nHost: files.test\r\n");
  }
  const download = timed(slow.httpPort);
  for (let i = 0; i < 200 && slow.egress.connections < 16; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(slow.egress.connections, 16);
  await assert.rejects(timed(slow.httpPort), /ECONNRESET|socket hang up/, "A is at its cap");
  // Sandbox B is served at once, many times over, while A holds on.
  for (let i = 0; i < 10; i++) {
    const r = await timed(other.httpPort);
    assert.equal(r.bytes, MIB);
    assert.ok(r.ms < 2000, `B's request ${i} took ${r.ms} ms`);
  }
  for (const s of held) s.destroy();
  assert.equal((await download).bytes, MIB, "A's own download still completes, at its rate");
});
