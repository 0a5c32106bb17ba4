/**
 * The unmodified `e2b` SDK's `sbx.getHost(port)` reaches a web server started
 * in a sandbox (`python3 -m http.server` on a real tier) through `kiln serve`:
 * the SDK builds `{port}-{sandboxId}.{domain}` from the domain the server
 * answers at create (`kiln serve --domain`), and the test resolves that name
 * to the server's loopback address, as a wildcard DNS record would.
 * `network.allowPublicTraffic: true` makes the ports public; without it the
 * API key is needed. Real tier: namespace (skipped with its reason where it
 * cannot run).
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Sandbox } from "e2b";
import { type RunningServer, startServer } from "../../src/server/index.ts";
import { tierRequired } from "../conformance/suite.ts";
import { httpGet } from "../ports/suite.ts";

if (!process.env.KILN_TEMPLATE_DIR && process.getuid?.() === 0 && existsSync("/var/cache/kiln/templates")) {
  process.env.KILN_TEMPLATE_DIR = "/var/cache/kiln/templates";
}

const TIER = "namespace";
const DOMAIN = "kiln.test";

describe("e2b sdk: getHost reaches a web server in the sandbox", () => {
  let dataDir: string;
  let server: RunningServer;
  let apiKey: string;
  let unavailable: string | undefined;
  const opts = () => ({
    apiUrl: server.url,
    sandboxUrl: server.url,
    apiKey,
    requestTimeoutMs: 60_000,
    metadata: { "kiln.tier": TIER },
  });

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "kiln-e2b-gethost-"));
    server = await startServer({ dataDir, port: 0, domain: DOMAIN });
    apiKey = server.keys.create({ name: "e2b" }).key;
    const status = (await server.kiln.doctor()).find((s) => s.tier === TIER);
    if (!status?.available) {
      unavailable = `tier ${TIER} unavailable: ${status?.reason}`;
      if (tierRequired(TIER)) throw new Error(`${unavailable} (required by KILN_REQUIRE_TIERS)`);
      console.log(`# SKIP ${unavailable}`);
    }
  });
  after(async () => {
    await server?.close(1000);
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  /** Starts `python3 -m http.server 8000` in the sandbox and GETs `/` through getHost until it answers. */
  async function serveAndGet(sbx: Sandbox, headers: Record<string, string> = {}) {
    await sbx.files.write("/tmp/site/index.html", `hello from ${sbx.sandboxId}\n`);
    await sbx.commands.run("cd /tmp/site && exec python3 -m http.server 8000", { background: true });
    const host = sbx.getHost(8000);
    assert.equal(host, `8000-${sbx.sandboxId}.${DOMAIN}`);
    // The server's port stands in for the 80 a wildcard name's reverse proxy would listen on.
    const url = `http://${host}:${server.port}/index.html`;
    const deadline = Date.now() + 60_000;
    for (;;) {
      const r = await httpGet(url, { headers, connectTo: "127.0.0.1" });
      if (r.status !== 502 || Date.now() > deadline) return r;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  test("allowPublicTraffic: the page is open to anyone", async (t) => {
    if (unavailable) return t.skip(unavailable);
    const sbx = await Sandbox.create({ ...opts(), network: { allowPublicTraffic: true } });
    try {
      const r = await serveAndGet(sbx);
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), `hello from ${sbx.sandboxId}\n`);
    } finally {
      await sbx.kill();
    }
  });

  test("by default the page needs the API key; with it, it is served", async (t) => {
    if (unavailable) return t.skip(unavailable);
    const sbx = await Sandbox.create(opts());
    try {
      const ok = await serveAndGet(sbx, { "x-api-key": apiKey });
      assert.equal(ok.status, 200);
      assert.equal(ok.body.toString(), `hello from ${sbx.sandboxId}\n`);
      const url = `http://${sbx.getHost(8000)}:${server.port}/index.html`;
      const refused = await httpGet(url, { connectTo: "127.0.0.1" });
      assert.equal(refused.status, 401);
    } finally {
      await sbx.kill();
    }
  });
});
