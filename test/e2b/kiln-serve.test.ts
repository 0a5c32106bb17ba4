/**
 * The unmodified `e2b` SDK against `kiln serve` itself (the E2B API shares the
 * server's port), with API keys made by the server's key store: every call of
 * the suite, and the same key isolation as Kiln's own API.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Sandbox } from "e2b";
import { startServer } from "../../src/server/index.ts";
import { type E2bFixture, runE2bSuite } from "./suite.ts";

async function kilnServeFixture(): Promise<E2bFixture> {
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-e2b-serve-"));
  // The suite names its tier; the server's own default (the strongest real tier) is tested below.
  const server = await startServer({ dataDir, port: 0, e2bTier: "virtual" });
  const keys = {
    alice: server.keys.create({ name: "alice" }).key,
    bob: server.keys.create({ name: "bob" }).key,
  };
  return {
    kiln: server.kiln,
    server: { url: server.url, close: async () => {} } as unknown as E2bFixture["server"],
    dataDir,
    opts: (who = "alice") => ({
      apiUrl: server.url,
      sandboxUrl: server.url,
      apiKey: keys[who],
      requestTimeoutMs: 60_000,
    }),
    async dispose() {
      await server.close(1000);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

runE2bSuite({ tier: "virtual", select: {}, fixture: kilnServeFixture });

test("kiln serve: E2B's default template and `base` start on the strongest real tier here", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-e2b-default-"));
  const server = await startServer({ dataDir, port: 0, graceMs: 1000 });
  try {
    const { key } = server.keys.create({ name: "default-tier" });
    const o = { apiUrl: server.url, sandboxUrl: server.url, apiKey: key, requestTimeoutMs: 120_000 };
    const want = await server.kiln.strongestRealTier();
    const tierOf = async (sb: Sandbox) =>
      (await server.kiln.connect(sb.sandboxId).then((s) => s.info())).tier;
    const plain = await Sandbox.create({ ...o, timeoutMs: 120_000 });
    assert.equal(await tierOf(plain), want.tier);
    assert.equal((await plain.getInfo()).templateId, "default");
    if (want.fallback === undefined) {
      // A real Linux: bash, coreutils and a process table of its own.
      const exe = await plain.commands.run("readlink /proc/self/exe");
      assert.match(exe.stdout, /^\/.+\n$/);
      // The default template has git, python3 and node, as E2B's base does.
      assert.equal((await plain.commands.run("git --version && python3 -V && node -v")).exitCode, 0);
    }
    await plain.kill();
    const base = await Sandbox.create("base", { ...o, timeoutMs: 120_000 });
    assert.equal(await tierOf(base), want.tier);
    await base.kill();
    // Naming a tier still wins; Kiln's own API keeps virtual as its default.
    const pinned = await Sandbox.create({ ...o, timeoutMs: 120_000, metadata: { "kiln.tier": "virtual" } });
    assert.equal(await tierOf(pinned), "virtual");
    await pinned.kill();
    const own = await fetch(`${server.url}/v1/sandboxes`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: "{}",
    });
    const created = (await own.json()) as { id: string; tier: string };
    assert.equal(created.tier, "virtual");
    await server.kiln.kill(created.id);
  } finally {
    await server.close(1000);
    rmSync(dataDir, { recursive: true, force: true });
  }
});
