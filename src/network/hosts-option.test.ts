/** `Kiln.open({ networkHosts })`: names the egress path resolves without DNS, checked at open. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Kiln } from "../index.ts";

test("networkHosts: a bad mapping refuses to open; a good one names a host for the virtual tier's curl", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-net-hosts-"));
  const server = http.createServer((req, res) => res.end(`hello ${req.headers.host}`));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  try {
    await assert.rejects(Kiln.open({ dataDir, networkHosts: { "a..b": ["127.0.0.1"] } }), {
      code: "invalid_argument",
    });
    await assert.rejects(Kiln.open({ dataDir, networkHosts: { "files.test": ["not-an-address"] } }), {
      code: "invalid_argument",
    });
    const kiln = await Kiln.open({ dataDir, networkHosts: { "files.test": ["127.0.0.1"] } });
    try {
      // Loopback is a blocked range: the address rule opens it, the name rule names the host.
      const sb = await kiln.create({ network: { allow: [`files.test:${port}`, "127.0.0.1/32"] } });
      const ok = await sb.commands.run(`curl -sS http://files.test:${port}/x`);
      assert.equal(ok.stdout, `hello files.test:${port}`);
      const unknown = await sb.commands.run(`curl -sS http://nothing.invalid:${port}/x`);
      assert.notEqual(unknown.exitCode, 0, "a name outside the map and the rules is refused");
      const log = await sb.networkLogs();
      assert.ok(log.some((e) => e.allowed && e.host === "files.test" && e.address === "127.0.0.1"));
      await sb.kill();
    } finally {
      await kiln.close();
    }
  } finally {
    server.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
