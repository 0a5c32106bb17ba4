/**
 * `kiln serve`'s host router reaches a server listening inside a microvm
 * guest, one with egress (a network card) beside it: the Host form
 * `{port}-{id}.{domain}` and the path form, with the owner's key, and
 * nothing without it. (The whole router: test/server/ports.test.ts, on
 * namespace.) Skipped with its reason where the tier cannot run.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { Sandbox } from "../../src/index.ts";
import { type RunningServer, startServer } from "../../src/server/index.ts";
import { tierRequired } from "../conformance/suite.ts";
import { httpGet, startEchoServer } from "../ports/suite.ts";

const TIER = "microvm";
const DOMAIN = "kiln.test";

describe(`kiln serve: sandbox ports by Host and by path (${TIER})`, () => {
  let dataDir: string;
  let server: RunningServer;
  let key: string;
  let sb: Sandbox;
  let unavailable: string | undefined;

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "kiln-ports-serve-vm-"));
    server = await startServer({ dataDir, port: 0, domain: DOMAIN });
    key = server.keys.create({ name: "alice" }).key;
    const status = (await server.kiln.doctor()).find((s) => s.tier === TIER);
    if (!status?.available) {
      unavailable = `tier ${TIER} unavailable: ${status?.reason}`;
      if (tierRequired(TIER)) throw new Error(`${unavailable} (required by KILN_REQUIRE_TIERS)`);
      console.log(`# SKIP ${unavailable}`);
      return;
    }
    const res = await fetch(`${server.url}/v1/sandboxes`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ tier: TIER, network: { allow: ["files.test:443"] } }),
    });
    assert.equal(res.status, 201, await res.clone().text());
    sb = await server.kiln.connect(((await res.json()) as { id: string }).id);
    await startEchoServer(sb, 8000);
  });

  after(async () => {
    await server?.close(1000);
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  test("the Host form and the path form reach the guest's server with the owner's key only", async (t) => {
    if (unavailable) return t.skip(unavailable);
    const host = `http://8000-${sb.id}.${DOMAIN}:${server.port}/`;
    const auth = { authorization: `Bearer ${key}` };
    const byHost = await httpGet(host, { connectTo: "127.0.0.1", headers: auth });
    assert.equal(byHost.status, 200);
    assert.equal(byHost.body.toString(), "hello from the sandbox");
    const byPath = await httpGet(`${server.url}/v1/sandboxes/${sb.id}/ports/8000/proxy/`, { headers: auth });
    assert.equal(byPath.status, 200);
    assert.equal(byPath.body.toString(), "hello from the sandbox");
    const stranger = await httpGet(host, { connectTo: "127.0.0.1" });
    assert.equal(stranger.status, 401);
    assert.doesNotMatch(stranger.body.toString(), /hello from the sandbox/);
  });
});
