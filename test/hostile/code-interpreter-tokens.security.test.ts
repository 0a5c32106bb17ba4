/**
 * Hostile cases for the E2B code-interpreter API (port 49999) of `kiln serve`:
 * without a token, with a token of another sandbox, with the wrong kind of
 * token, a request is answered exactly as for a sandbox that does not exist,
 * and runs nothing. A positive control shows the same requests work with the
 * sandbox's own tokens.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Sandbox } from "@e2b/code-interpreter";
import { type RunningServer, startServer } from "../../src/server/index.ts";

describe("e2b code interpreter: tokens", () => {
  let server: RunningServer;
  let dataDir: string;
  let mine: Sandbox;
  let theirs: Sandbox;
  /** The envd access token the SDK keeps (a protected field). */
  const envdToken = (sb: Sandbox) => (sb as unknown as { envdAccessToken: string }).envdAccessToken;

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "kiln-ci-tokens-"));
    server = await startServer({ dataDir, port: 0, warmPool: 0, graceMs: 1000, e2bTier: "virtual" });
    const o = (name: string) => ({
      apiUrl: server.url,
      sandboxUrl: server.url,
      apiKey: server.keys.create({ name }).key,
      requestTimeoutMs: 60_000,
    });
    mine = await Sandbox.create(o("alice"));
    theirs = await Sandbox.create(o("bob"));
  });

  after(async () => {
    await server?.close(1000);
    rmSync(dataDir, { recursive: true, force: true });
  });

  const call = async (
    id: string,
    path: string,
    init: { method?: string; body?: string; traffic?: string; access?: string },
  ) => {
    const headers: Record<string, string> = {
      "content-type": "application/json",
      "e2b-sandbox-id": id,
      "e2b-sandbox-port": "49999",
    };
    if (init.traffic !== undefined) headers["e2b-traffic-access-token"] = init.traffic;
    if (init.access !== undefined) headers["x-access-token"] = init.access;
    const res = await fetch(`${server.url}${path}`, {
      method: init.method ?? "GET",
      headers,
      ...(init.body !== undefined ? { body: init.body } : {}),
    });
    return { status: res.status, body: (await res.text()).replaceAll(id, "<id>") };
  };

  test("no token, another sandbox's tokens, an envd token as traffic token: answered as no sandbox", async () => {
    const execute = { method: "POST", body: JSON.stringify({ code: "open('/workspace/pwned', 'w')" }) };
    const gone = await call("sbx_doesnotexist0000", "/contexts", { traffic: mine.trafficAccessToken! });
    assert.equal(gone.status, 502);
    const attempts = [
      await call(mine.sandboxId, "/contexts", {}),
      await call(mine.sandboxId, "/contexts", { traffic: theirs.trafficAccessToken! }),
      await call(mine.sandboxId, "/contexts", { traffic: envdToken(mine) }),
      await call(mine.sandboxId, "/execute", { ...execute }),
      await call(mine.sandboxId, "/execute", { ...execute, access: envdToken(theirs) }),
      await call(mine.sandboxId, "/execute", { ...execute, traffic: "kt1.port:49999.0.forged" }),
    ];
    for (const a of attempts)
      assert.deepEqual(a, { status: 502, body: gone.body.replaceAll("sbx_doesnotexist0000", "<id>") });
    assert.equal(await mine.files.exists("/workspace/pwned"), false, "nothing ran");
    // Positive control: the sandbox's own tokens work for the same requests.
    assert.equal(
      (await call(mine.sandboxId, "/contexts", { traffic: mine.trafficAccessToken! })).status,
      200,
    );
    const ok = await call(mine.sandboxId, "/execute", { ...execute, access: envdToken(mine) });
    assert.equal(ok.status, 200);
    assert.equal(await mine.files.exists("/workspace/pwned"), true);
  });
});
