/**
 * The unmodified `e2b` SDK's network options through `kiln serve`'s E2B API:
 * `allowOut` / `denyOut` (with `ALL_TRAFFIC`), `allowInternetAccess`,
 * `Sandbox.updateNetwork`, and `getInfo`'s network, against the fake internet
 * (`files.test`, `other.test`), on the virtual tier (its `curl`); `rules`
 * header transforms set on the host side; `egressProxy` through a real SOCKS5
 * proxy on loopback; what Kiln does not do (`httpsPorts`) is a 501, never
 * silently dropped. Without any of them a sandbox gets the server's default
 * egress: none, unless `e2bEgress: "all"`.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ALL_TRAFFIC, Sandbox, SandboxError } from "e2b";
import { type RunningServer, startServer } from "../../src/server/index.ts";
import { type FakeInternet, fakeInternetUnavailable, startFakeInternet } from "../network/fake-internet.ts";
import { deadPort, startSocksProxy } from "../network/test-proxies.ts";
import { rejectsWith } from "./suite.ts";

const why = fakeInternetUnavailable();

describe("e2b sdk: network options map onto Kiln's policy", () => {
  let dataDir: string;
  let net: FakeInternet | undefined;
  let server: RunningServer;
  let apiKey: string;
  const opts = () => ({
    apiUrl: server.url,
    sandboxUrl: server.url,
    apiKey,
    requestTimeoutMs: 60_000,
    metadata: { "kiln.tier": "virtual" },
  });
  /** The body `curl` fetched, or `refused`. */
  const get = async (sbx: Sandbox, url: string) => {
    const r = await sbx.commands.run(`curl -sS -f ${url} || echo refused`, { timeoutMs: 60_000 });
    return r.stdout.trim();
  };

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "kiln-e2b-net-"));
    if (!why) {
      net = await startFakeInternet();
      writeFileSync(join(dataDir, "test-ca.pem"), net.certs.ca);
      process.env.KILN_NETWORK_EXTRA_CA = join(dataDir, "test-ca.pem");
    }
    server = await startServer({ dataDir, port: 0, ...(net ? { networkHosts: net.networkHosts } : {}) });
    apiKey = server.keys.create({ name: "e2b" }).key;
  });
  after(async () => {
    await server?.close(1000);
    net?.close();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  test("allowOut with denyOut ALL_TRAFFIC allows only the named host; updateNetwork swaps it live", async (t) => {
    if (why) return t.skip(why);
    const sbx = await Sandbox.create({
      ...opts(),
      network: { allowOut: ["files.test"], denyOut: [ALL_TRAFFIC] },
    });
    try {
      assert.equal(await get(sbx, "https://files.test/a"), "files:GET /a host=files.test");
      assert.equal(await get(sbx, "https://other.test/a"), "refused");
      const info = await sbx.getInfo();
      assert.equal(info.allowInternetAccess, false);
      assert.deepEqual(info.network?.allowOut, ["files.test"]);
      assert.deepEqual(info.network?.denyOut, [ALL_TRAFFIC]);

      await sbx.updateNetwork({ allowOut: ["other.test"], denyOut: [ALL_TRAFFIC] });
      assert.equal(await get(sbx, "https://other.test/b"), "other:GET /b host=other.test");
      assert.equal(await get(sbx, "https://files.test/b"), "refused");
      assert.deepEqual((await sbx.getInfo()).network?.allowOut, ["other.test"]);
    } finally {
      await sbx.kill();
    }
  });

  test("allowInternetAccess: false is deny-all (allowOut still wins); true opens public addresses", async (t) => {
    if (why) return t.skip(why);
    const closed = await Sandbox.create({
      ...opts(),
      allowInternetAccess: false,
      network: { allowOut: ["files.test:443"] },
    });
    try {
      assert.equal(await get(closed, "https://files.test/c"), "files:GET /c host=files.test");
      assert.equal(await get(closed, "https://other.test/c"), "refused");
      await closed.updateNetwork({ allowInternetAccess: true, denyOut: ["files.test"] });
      assert.equal(await get(closed, "https://other.test/d"), "other:GET /d host=other.test");
      assert.equal(await get(closed, "https://files.test/d"), "refused", "denyOut still applies");
      assert.equal(await get(closed, "http://169.254.169.254/"), "refused", "blocked ranges stay blocked");
      assert.equal((await closed.getInfo()).allowInternetAccess, true);
    } finally {
      await closed.kill();
    }
  });

  test("no network options: the server's default (none); rules set headers host-side; httpsPorts is a 501", async (t) => {
    if (why) return t.skip(why);
    const plain = await Sandbox.create(opts());
    try {
      assert.equal((await plain.getInfo()).allowInternetAccess, false);
      assert.equal(await get(plain, "https://files.test/e"), "refused");
      await plain.updateNetwork({ allowOut: ["files.test"] });
      assert.equal(
        await get(plain, "https://files.test/f"),
        "files:GET /f host=files.test",
        "positive control",
      );
      // rules: the host side sets the header; the sandbox never holds it, and its echo is masked.
      await plain.updateNetwork({
        allowOut: ["files.test"],
        rules: { "files.test": [{ transform: { headers: { Authorization: "Bearer host-side-token" } } }] },
      });
      assert.equal(
        await get(plain, "https://files.test/t"),
        `files:GET /t host=files.test auth=[authorization set by Kiln] authsha=${createHash("sha256").update("Bearer host-side-token").digest("hex")}`,
      );
      assert.equal(
        await get(plain, "http://files.test/t"),
        "files:GET /t host=files.test",
        "no header over plain HTTP",
      );
      await rejectsWith(Sandbox.create({ ...opts(), network: { httpsPorts: [3000] } }), SandboxError);
      assert.match(
        await get(plain, "https://files.test/g"),
        /^files:GET \/g host=files\.test auth=\[authorization set by Kiln\]/,
        "the refused create changed nothing here",
      );
    } finally {
      await plain.kill();
    }
  });

  test("egressProxy: traffic leaves through the SOCKS5 proxy with its credentials, failing closed", async (t) => {
    if (why) return t.skip(why);
    const proxy = await startSocksProxy({ name: "e2b-user", password: "e2b-pw" });
    const address = `127.0.0.1:${proxy.port}`;
    // The proxy is on loopback, a blocked range: an address rule names it.
    const allowOut = ["files.test", address];
    const sbx = await Sandbox.create({
      ...opts(),
      network: { allowOut, egressProxy: { address, username: "e2b-user", password: "e2b-pw" } },
    });
    try {
      assert.equal(await get(sbx, "https://files.test/p"), "files:GET /p host=files.test");
      assert.deepEqual(proxy.tunnels, [`${net!.files}:443`]);
      assert.deepEqual(proxy.credentials, ["e2b-user:e2b-pw"]);
      const info = await sbx.getInfo();
      assert.deepEqual(info.network?.egressProxy, { address, username: "e2b-user" });
      // Down: refused, never direct; then back through it (positive control).
      const dead = `127.0.0.1:${await deadPort()}`;
      await sbx.updateNetwork({ allowOut: ["files.test", dead], egressProxy: { address: dead } });
      assert.equal(await get(sbx, "https://files.test/q"), "refused");
      await sbx.updateNetwork({
        allowOut,
        egressProxy: { address, username: "e2b-user", password: "e2b-pw" },
      });
      assert.equal(await get(sbx, "https://files.test/r"), "files:GET /r host=files.test");
      assert.equal(proxy.tunnels.length, 2);
    } finally {
      await sbx.kill();
      await proxy.close();
    }
  });

  test("kiln serve's e2bEgress: all gives E2B's default, the internet", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kiln-e2b-net-all-"));
    const open = await startServer({ dataDir: dir, port: 0, e2bEgress: "all" });
    try {
      const key = open.keys.create({ name: "e2b" }).key;
      const o = { ...opts(), apiUrl: open.url, sandboxUrl: open.url, apiKey: key };
      const sbx = await Sandbox.create(o);
      assert.equal((await sbx.getInfo()).allowInternetAccess, true);
      const denied = await Sandbox.create({ ...o, allowInternetAccess: false });
      assert.equal((await denied.getInfo()).allowInternetAccess, false);
      await sbx.kill();
      await denied.kill();
    } finally {
      await open.close(1000);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
