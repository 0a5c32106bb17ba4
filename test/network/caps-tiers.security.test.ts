/**
 * Per-sandbox egress caps on a real tier (namespace), against the fake
 * internet: a bandwidth cap measurably slows a download, a sandbox beyond its
 * connection cap is refused (and served once it lets go), and a sandbox that
 * holds its connections open with requests it never finishes does not slow
 * another sandbox's requests. Each beside a positive control.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Kiln, type Sandbox } from "../../src/index.ts";
import { tierRequired } from "../conformance/suite.ts";
import { type FakeInternet, fakeInternetUnavailable, startFakeInternet } from "./fake-internet.ts";

const TIER = "namespace";
const MIB = 1024 * 1024;
let net: FakeInternet | undefined;
let kiln: Kiln;
let dataDir: string;
let skip: string | undefined = fakeInternetUnavailable();
let capped: Sandbox | undefined;
let free: Sandbox | undefined;

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "kiln-caps-"));
  if (!skip) net = await startFakeInternet();
  kiln = await Kiln.open({ dataDir, ...(net ? { networkHosts: net.networkHosts } : {}) });
  if (skip) return;
  const status = await (await kiln.backend(TIER)).probe();
  if (!status.available) {
    skip = `tier ${TIER} unavailable: ${status.reason}`;
    if (tierRequired(TIER)) throw new Error(`${skip} (required by KILN_REQUIRE_TIERS)`);
    return;
  }
  const allow = ["files.test:80"];
  capped = await kiln.create({
    tier: TIER,
    network: { allow, limits: { maxConnections: 4, maxBytesPerSecond: 200 * 1024 } },
  });
  free = await kiln.create({ tier: TIER, network: { allow } });
});

after(async () => {
  await capped?.kill().catch(() => {});
  await free?.kill().catch(() => {});
  await kiln.close();
  net?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

const sh = async (sb: Sandbox, command: string) => {
  const r = await sb.commands.run(command, { timeoutMs: 90_000 });
  if (!("exitCode" in r)) throw new Error("expected a result");
  return { code: r.exitCode, out: r.stdout, err: r.stderr };
};

/** Bytes and seconds of a download of `bytes` from files.test, straight (no proxy variables). */
const download = async (sb: Sandbox, bytes: number) => {
  const r = await sh(
    sb,
    `curl -sS -m 60 --noproxy '*' -o /dev/null -w '%{size_download} %{time_total}' http://files.test/bytes/${bytes}`,
  );
  assert.equal(r.code, 0, r.err);
  const [size, seconds] = r.out.trim().split(" ").map(Number);
  return { size: size!, ms: seconds! * 1000 };
};

/** Holds `n` connections to files.test:80 open for `seconds`, each a request head that never ends. */
const hold = (n: number, seconds: number) =>
  `python3 -c "
import socket, time
s = [socket.create_connection(('files.test', 80)) for _ in range(${n})]
for x in s: x.send(b'GET / HTTP/1.1\\r\\nHost: files.test\\r\\n')
time.sleep(${seconds})
" & sleep 2`;

describe(`egress caps on ${TIER}`, () => {
  test("a bandwidth cap slows a 1 MiB download to its rate; another sandbox's is not slowed", async (t) => {
    if (skip) return t.skip(skip);
    const control = await download(free!, MIB);
    assert.equal(control.size, MIB);
    const slow = await download(capped!, MIB);
    assert.equal(slow.size, MIB);
    assert.ok(slow.ms >= 4000, `1 MiB at 200 KiB/s took ${slow.ms} ms`);
    assert.ok(control.ms < slow.ms / 2, `uncapped ${control.ms} ms, capped ${slow.ms} ms`);
  });

  test("beyond its connection cap a sandbox is refused; served again once it lets go", async (t) => {
    if (skip) return t.skip(skip);
    const url = "curl -sS -m 20 --noproxy '*' http://files.test/ok";
    assert.equal((await sh(capped!, url)).out, "files:GET /ok host=files.test", "positive control");
    const r = await sh(capped!, `${hold(4, 6)}; ${url}; echo " exit=$?"; wait`);
    assert.doesNotMatch(r.out, /files:GET/);
    assert.match(r.out, /exit=(7|52|56)/, `${r.out} ${r.err}`);
    assert.equal((await sh(capped!, url)).out, "files:GET /ok host=files.test", "served once let go");
    const logs = await capped!.networkLogs();
    assert.ok(logs.some((e) => !e.allowed && e.rule === "limit connections"));
  });

  test("one sandbox's slow clients at its cap do not block another sandbox's requests", async (t) => {
    if (skip) return t.skip(skip);
    const held = sh(capped!, `${hold(4, 10)}; wait`);
    await new Promise((r) => setTimeout(r, 2500));
    const r = await sh(
      free!,
      `for i in 1 2 3 4 5 6 7 8 9 10; do curl -sS -m 5 --noproxy '*' -o /dev/null -w '%{http_code} %{time_total}\\n' http://files.test/b$i; done`,
    );
    const lines = r.out.trim().split("\n");
    assert.equal(lines.length, 10);
    for (const line of lines) {
      const [code, seconds] = line.split(" ");
      assert.equal(code, "200", line);
      assert.ok(Number(seconds) < 2, line);
    }
    // The capped sandbox was at its cap meanwhile (control: its own request was refused).
    const refused = await sh(capped!, "curl -sS -m 5 --noproxy '*' http://files.test/x; echo \" exit=$?\"");
    assert.doesNotMatch(refused.out, /files:GET/);
    await held;
  });
});
