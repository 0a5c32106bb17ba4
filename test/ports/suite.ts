/**
 * Inbound ports through the library, the same on every tier: a real HTTP
 * server (test/ports/echo_server.py, Python's standard library) runs inside a
 * sandbox and is reached through `sandbox.ports` (connect, forward, getHost):
 * plain HTTP, a large upload, a streamed response, a WebSocket echo, the
 * policy, and typed errors. A tier without inbound ports (virtual) answers
 * `unsupported`. Each `<tier>.test.ts` calls {@link runPortsSuite} in one line.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { Kiln, type Sandbox, type TierName } from "../../src/index.ts";
import { rejectsWithCode, tierRequired } from "../conformance/suite.ts";

/** The in-sandbox test server's source. */
export const ECHO_SERVER = readFileSync(join(dirname(fileURLToPath(import.meta.url)), "echo_server.py"));

/** Starts the echo server on `port` in `sb` and waits (bounded) until it accepts connections. */
export async function startEchoServer(sb: Sandbox, port: number): Promise<void> {
  await sb.files.write("/tmp/echo_server.py", ECHO_SERVER);
  await sb.commands.run(`python3 /tmp/echo_server.py ${port} >/tmp/echo-${port}.log 2>&1`, {
    background: true,
  });
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      (await sb.ports.connect(port)).destroy();
      return;
    } catch (e) {
      if ((e as { code?: string }).code !== "port_closed" || Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** A `lookup` for node:http that resolves every name to `address` (a loopback address). */
export function loopbackLookup(address: string) {
  return ((_host: string, options: { all?: boolean }, cb: (...args: unknown[]) => void) => {
    if (options?.all) cb(null, [{ address, family: 4 }]);
    else cb(null, address, 4);
  }) as unknown as import("node:net").LookupFunction;
}

/** A plain HTTP request to `address` (`host:port`); resolves with status, headers and body. */
export function httpGet(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: Uint8Array; connectTo?: string } = {},
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: options.method ?? "GET",
        headers: options.headers ?? {},
        // The test's names (`8000-<id>.kiln.test`) resolve to this machine's loopback, nowhere else.
        ...(options.connectTo ? { lookup: loopbackLookup(options.connectTo) } : {}),
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on("data", (d: Buffer) => parts.push(d));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(options.body);
  });
}

/** Registers the inbound-port tests for one tier. */
export function runPortsSuite(tier: TierName): void {
  describe(`inbound ports: ${tier}`, () => {
    let dataDir: string;
    let kiln: Kiln;
    let sb: Sandbox;
    let unavailable: string | undefined;
    let supported = false;

    before(async () => {
      dataDir = mkdtempSync(join(tmpdir(), `kiln-ports-${tier}-`));
      kiln = await Kiln.open({ dataDir });
      const status = (await kiln.doctor()).find((s) => s.tier === tier);
      if (!status?.available) {
        unavailable = `tier ${tier} unavailable: ${status?.reason ?? "no backend"}`;
        if (tierRequired(tier)) throw new Error(`${unavailable} (required by KILN_REQUIRE_TIERS)`);
        console.log(`# SKIP ${unavailable}`);
        return;
      }
      supported = (await kiln.backend(tier)).capabilities.inboundPorts;
      sb = await kiln.create({ tier, template: process.env.KILN_TEST_TEMPLATE ?? "default" });
      if (supported) await startEchoServer(sb, 8000);
    });

    after(async () => {
      await kiln?.close();
      if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    });

    const real = (name: string, fn: () => Promise<void>) =>
      test(name, async (t) => {
        if (unavailable) return t.skip(unavailable);
        if (!supported) return t.skip(`tier ${tier} has no inbound ports (tested: unsupported)`);
        await fn();
      });

    test("a tier without inbound ports says unsupported; one with them declares it", async (t) => {
      if (unavailable) return t.skip(unavailable);
      if (supported) {
        assert.equal(typeof sb.ports.connect, "function");
        return;
      }
      await rejectsWithCode(sb.ports.connect(8000), "unsupported");
      await rejectsWithCode(sb.ports.forward(8000), "unsupported");
      await rejectsWithCode(sb.getHost(8000), "unsupported");
    });

    test("the port policy: defaults, updates, and bad input refused without change", async (t) => {
      if (unavailable) return t.skip(unavailable);
      assert.deepEqual(sb.ports.policy(), { expose: "all", public: [] });
      assert.deepEqual(sb.ports.update({ public: [8000, 8000] }), { expose: "all", public: [8000] });
      for (const bad of [
        { expose: [0] },
        { public: ["80"] },
        { expose: [8001], public: [8000] },
        { other: 1 },
      ]) {
        assert.throws(
          () => sb.ports.update(bad as never),
          (e: { code?: string }) => e.code === "invalid_argument",
        );
      }
      assert.deepEqual((await sb.info()).ports, { expose: "all", public: [8000] });
      sb.ports.update({ public: [] });
      await rejectsWithCode(kiln.create({ tier, ports: { expose: [70000] } }), "invalid_argument");
    });

    real("HTTP through getHost; a 2 MiB upload arrives whole", async () => {
      const address = await sb.getHost(8000);
      assert.match(address, /^127\.0\.0\.1:\d+$/);
      const r = await httpGet(`http://${address}/`);
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), "hello from the sandbox");
      const body = randomBytes(2 * 1024 * 1024);
      const up = await httpGet(`http://${address}/upload`, { method: "POST", body });
      assert.equal(up.body.toString(), createHash("sha256").update(body).digest("hex"));
      // Every connection lands in the network audit log once closed (the upload's: 2 MiB down).
      const deadline = Date.now() + 30_000;
      let logged = false;
      while (!logged && Date.now() < deadline) {
        logged = (await sb.networkLogs()).some(
          (e) =>
            e.kind === "inbound" && e.port === 8000 && e.rule === "library" && e.bytesDown >= body.length,
        );
        if (!logged) await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(logged, "the upload's connection is in the audit log");
    });

    real("a streamed response arrives while the server is still writing it", async () => {
      const fwd = await sb.ports.forward(8000);
      try {
        const gate = `/tmp/gate-${randomBytes(4).toString("hex")}`;
        const text = await new Promise<string>((resolve, reject) => {
          const req = request(`http://${fwd.address}/stream?gate=${gate}`, (res) => {
            let got = "";
            res.setEncoding("utf8");
            res.on("data", (d: string) => {
              got += d;
              // "last" is only written after the gate exists, which only happens once "first" arrived.
              if (got === "first\n") sb.files.write(gate, "open").catch(reject);
            });
            res.on("end", () => resolve(got));
            res.on("error", reject);
          });
          req.on("error", reject);
          req.end();
        });
        assert.equal(text, "first\nlast\n");
      } finally {
        await fwd.close();
      }
    });

    real("a WebSocket echoes through a forward", async () => {
      const fwd = await sb.ports.forward(8000);
      try {
        const ws = new WebSocket(`ws://${fwd.address}/ws`);
        await new Promise((resolve, reject) => {
          ws.once("open", resolve);
          ws.once("error", reject);
        });
        const big = "x".repeat(5000);
        const echoes: string[] = [];
        const done = new Promise<void>((resolve) =>
          ws.on("message", (m) => {
            echoes.push(String(m));
            if (echoes.length === 2) resolve();
          }),
        );
        ws.send("ping through the agent");
        ws.send(big);
        await done;
        assert.deepEqual(echoes, ["ping through the agent", big]);
        ws.close();
      } finally {
        await fwd.close();
      }
    });

    real(
      "typed errors: nothing listening is port_closed, an unexposed port not_found, bad ports invalid",
      async () => {
        // Positive control in the same sandbox: the listening port connects.
        (await sb.ports.connect(8000)).destroy();
        const closed = await rejectsWithCode(sb.ports.connect(8009), "port_closed");
        assert.equal(closed.port, 8009);
        sb.ports.update({ expose: [8000] });
        try {
          const e = await rejectsWithCode(sb.ports.connect(8001), "not_found");
          assert.equal(e.resource, "port");
          (await sb.ports.connect(8000)).destroy();
        } finally {
          sb.ports.update({ expose: "all" });
        }
        for (const p of [0, -1, 65536, 80.5, Number.NaN])
          await rejectsWithCode(sb.ports.connect(p), "invalid_argument");
      },
    );

    real("many connections at once all complete", async () => {
      const address = await sb.getHost(8000);
      const results = await Promise.all(
        Array.from({ length: 20 }, () => httpGet(`http://${address}/headers`)),
      );
      for (const r of results) assert.equal(r.status, 200);
    });
  });
}
