/**
 * The upstream proxy on a real tier (namespace), against the fake internet:
 * a sandbox's traffic leaves through real proxies on the host's loopback
 * (HTTP CONNECT and SOCKS5, with credentials) that record what passed; a
 * proxy that is down fails closed with the reason in the audit log; the
 * server's default proxy (`Kiln.open({ upstreamProxy })`) carries sandboxes
 * whose policy names none. The other tiers (oci, gvisor, virtual) plug into
 * the same egress path: one request each through the proxy and one refused
 * when it is down (src/network/upstream-proxy.security.test.ts covers each way into it).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Kiln, type NetworkOptions, type Sandbox } from "../../src/index.ts";
import { tierRequired } from "../conformance/suite.ts";
import { type FakeInternet, fakeInternetUnavailable, startFakeInternet } from "./fake-internet.ts";
import { deadPort, startConnectProxy, startSocksProxy, type TestProxy } from "./test-proxies.ts";

const TIER = "namespace";
const USER = { name: "proxy-user", password: "proxy-pw" };
let net: FakeInternet | undefined;
let kiln: Kiln;
let viaDefault: Kiln;
let dataDir: string;
let httpProxy: TestProxy;
let socksProxy: TestProxy;
let skip: string | undefined = fakeInternetUnavailable();

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "kiln-upstream-"));
  httpProxy = await startConnectProxy(USER);
  socksProxy = await startSocksProxy(USER);
  if (!skip) net = await startFakeInternet();
  if (net) {
    // TLS that Kiln terminates (for secrets) is verified upstream: the host trusts the fake internet's CA.
    writeFileSync(join(dataDir, "test-ca.pem"), net.certs.ca);
    process.env.KILN_NETWORK_EXTRA_CA = join(dataDir, "test-ca.pem");
  }
  const hosts = net ? { networkHosts: net.networkHosts } : {};
  kiln = await Kiln.open({ dataDir: join(dataDir, "a"), ...hosts });
  viaDefault = await Kiln.open({ dataDir: join(dataDir, "b"), ...hosts, upstreamProxy: httpProxy.url });
  if (skip) return;
  const status = await (await kiln.backend(TIER)).probe();
  if (!status.available) {
    skip = `tier ${TIER} unavailable: ${status.reason}`;
    if (tierRequired(TIER)) throw new Error(`${skip} (required by KILN_REQUIRE_TIERS)`);
  }
});

after(async () => {
  await kiln.close();
  await viaDefault.close();
  await httpProxy.close();
  await socksProxy.close();
  net?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe(`upstream proxy on ${TIER}`, () => {
  const curl = "curl -sS -m 20 --cacert /workspace/ca.pem";
  const sh = async (sb: Sandbox, command: string) => {
    const r = await sb.commands.run(command, { timeoutMs: 60_000 });
    if (!("exitCode" in r)) throw new Error("expected a result");
    return { code: r.exitCode, out: r.stdout, err: r.stderr };
  };
  const make = async (k: Kiln, network: NetworkOptions) => {
    const sb = await k.create({ tier: TIER, network });
    await sb.files.write("/workspace/ca.pem", net!.certs.ca);
    return sb;
  };

  test("the policy's proxy carries every connection, with its credentials; down, it fails closed", async (t) => {
    if (skip) return t.skip(skip);
    const allow = ["files.test:443", "files.test:80"];
    const sb = await make(kiln, {
      allow: [...allow, `127.0.0.1:${httpProxy.port}`],
      upstreamProxy: httpProxy.url,
    });
    try {
      const before = httpProxy.tunnels.length;
      assert.equal((await sh(sb, `${curl} https://files.test/a`)).out, "files:GET /a host=files.test");
      assert.equal(
        (await sh(sb, `${curl} --noproxy '*' https://files.test/b`)).out,
        "files:GET /b host=files.test",
      );
      assert.equal(
        (await sh(sb, `${curl} --noproxy '*' http://files.test/c`)).out,
        "files:GET /c host=files.test",
      );
      assert.deepEqual(httpProxy.tunnels.slice(before), [
        `${net!.files}:443`,
        `${net!.files}:443`,
        `${net!.files}:80`,
      ]);
      assert.ok(httpProxy.credentials.includes(`${USER.name}:${USER.password}`));

      // The same sandbox, moved to the SOCKS5 proxy while it runs.
      await sb.network.update({
        allow: [...allow, `127.0.0.1:${socksProxy.port}`],
        upstreamProxy: {
          url: `socks5://127.0.0.1:${socksProxy.port}`,
          ...{ username: USER.name, password: USER.password },
        },
      });
      assert.equal((await sh(sb, `${curl} https://files.test/d`)).out, "files:GET /d host=files.test");
      assert.deepEqual(socksProxy.tunnels.slice(-1), [`${net!.files}:443`]);
      const shown = (await sb.network.get()).upstreamProxy;
      assert.deepEqual(shown, { url: `socks5://127.0.0.1:${socksProxy.port}`, username: USER.name });

      // Down: refused, never direct, and the log says why.
      const dead = await deadPort();
      await sb.network.update({
        allow: [...allow, `127.0.0.1:${dead}`],
        upstreamProxy: `socks5://127.0.0.1:${dead}`,
      });
      const r = await sh(sb, `${curl} --noproxy '*' https://files.test/down`);
      assert.notEqual(r.code, 0);
      assert.doesNotMatch(r.out, /files:/);
      const tunnel = await sh(sb, `${curl} https://files.test/down2`);
      assert.notEqual(tunnel.code, 0);
      assert.match(tunnel.err, /502/);
      const logs = await sb.networkLogs();
      assert.ok(
        logs.some((e) => !e.allowed && /upstream proxy unreachable/.test(e.rule)),
        JSON.stringify(logs.slice(-3)),
      );
      // Positive control: the same sandbox without a proxy reaches files.test directly.
      await sb.network.update({ allow });
      assert.equal((await sh(sb, `${curl} https://files.test/e`)).out, "files:GET /e host=files.test");
    } finally {
      await sb.kill();
    }
  });

  test("a fork keeps the policy and what it keeps on the host: the proxy's password, secrets' values", async (t) => {
    if (skip) return t.skip(skip);
    const value = `sk-fork-${process.pid}`;
    const parent = await make(kiln, {
      allow: ["files.test:443", `127.0.0.1:${socksProxy.port}`],
      // The password only as a field: nothing of it is in the record the fork is made from.
      upstreamProxy: {
        url: `socks5://127.0.0.1:${socksProxy.port}`,
        username: USER.name,
        password: USER.password,
      },
      secrets: { API_KEY: { value, hosts: ["files.test"] } },
    });
    let fork: Sandbox | undefined;
    try {
      [fork] = await parent.fork();
      const policy = await parent.network.get();
      assert.deepEqual(await fork!.network.get(), policy);
      // Copied at the fork, not read from the parent: the fork works after its parent is gone.
      await parent.kill();
      const before = socksProxy.tunnels.length;
      const refusedBefore = socksProxy.refused;
      // Terminated by Kiln for the secret: the fork trusts its CA through CURL_CA_BUNDLE.
      const r = await sh(fork!, `curl -sS -m 20 -H "Authorization: Bearer $API_KEY" https://files.test/fork`);
      assert.equal(r.code, 0, r.err);
      const ph = policy.secrets!.API_KEY!.placeholder;
      const sha = createHash("sha256").update(`Bearer ${value}`).digest("hex");
      assert.equal(r.out, `files:GET /fork host=files.test auth=Bearer ${ph} authsha=${sha}`);
      assert.deepEqual(socksProxy.tunnels.slice(before), [`${net!.files}:443`]);
      assert.equal(socksProxy.refused, refusedBefore, "the proxy took the fork's credentials");
      assert.equal(socksProxy.credentials.at(-1), `${USER.name}:${USER.password}`);
      // Control: without the password this proxy refuses, and the request fails closed.
      await fork!.network.update({
        allow: ["files.test:443", `127.0.0.1:${socksProxy.port}`],
        upstreamProxy: { url: `socks5://127.0.0.1:${socksProxy.port}`, username: USER.name },
      });
      const tunnels = socksProxy.tunnels.length;
      const denied = await sh(fork!, `${curl} https://files.test/nopw`);
      assert.notEqual(denied.code, 0);
      assert.equal(socksProxy.tunnels.length, tunnels);
      const last = (await fork!.networkLogs()).at(-1)!;
      assert.equal(last.allowed, false);
      assert.match(last.rule, /upstream proxy/);
    } finally {
      await fork?.kill().catch(() => {});
      await parent.kill().catch(() => {});
    }
  });

  test("the server's default proxy carries a sandbox whose policy names none", async (t) => {
    if (skip) return t.skip(skip);
    const sb = await make(viaDefault, { allow: ["files.test:443"] });
    try {
      const before = httpProxy.tunnels.length;
      assert.equal((await sh(sb, `${curl} https://files.test/f`)).out, "files:GET /f host=files.test");
      assert.deepEqual(httpProxy.tunnels.slice(before), [`${net!.files}:443`]);
      assert.equal((await sh(sb, `${curl} https://other.test/`)).code === 0, false, "still filtered first");
      assert.equal(httpProxy.tunnels.length, before + 1);
    } finally {
      await sb.kill();
    }
  });
});

// The other tiers plug into the same egress path: one request each through the SOCKS5 proxy, and one
// through a dead proxy refused (the positive control is the first).
for (const tier of ["oci", "gvisor", "virtual"] as const) {
  test(`upstream proxy on ${tier}: through the proxy, and refused when it is down`, async (t) => {
    if (skip) return t.skip(skip);
    const status = await (await kiln.backend(tier)).probe();
    if (!status.available) {
      if (tierRequired(tier)) throw new Error(`tier ${tier} unavailable: ${status.reason}`);
      return t.skip(`tier ${tier} unavailable: ${status.reason}`);
    }
    const allow = ["files.test:80", `127.0.0.1:${socksProxy.port}`];
    const sb = await kiln.create({ tier, network: { allow, upstreamProxy: socksProxy.url } });
    try {
      const before = socksProxy.tunnels.length;
      const get = async (path: string) => {
        const r = await sb.commands.run(`curl -sS -m 20 http://files.test${path}`, { timeoutMs: 60_000 });
        if (!("exitCode" in r)) throw new Error("expected a result");
        return r;
      };
      assert.equal((await get("/t")).stdout, "files:GET /t host=files.test");
      assert.deepEqual(socksProxy.tunnels.slice(before), [`${net!.files}:80`]);
      const dead = await deadPort();
      await sb.network.update({
        allow: ["files.test:80", `127.0.0.1:${dead}`],
        upstreamProxy: `socks5://127.0.0.1:${dead}`,
      });
      const r = await get("/down");
      assert.doesNotMatch(r.stdout, /files:GET/);
      assert.ok((await sb.networkLogs()).some((e) => /upstream proxy unreachable/.test(e.rule)));
    } finally {
      await sb.kill();
    }
  });
}
