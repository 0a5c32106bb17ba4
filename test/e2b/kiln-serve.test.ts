/**
 * The unmodified `e2b` SDK against `kiln serve` itself (the E2B API shares the
 * server's port), with API keys made by the server's key store: every call of
 * the suite, and the same key isolation as Kiln's own API.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer } from "../../src/server/index.ts";
import { type E2bFixture, runE2bSuite } from "./suite.ts";

async function kilnServeFixture(): Promise<E2bFixture> {
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-e2b-serve-"));
  const server = await startServer({ dataDir, port: 0 });
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
