/**
 * The virtual tier's WASM Python reaches the network through the same egress
 * path as its `curl`, against the fake internet (names given through Kiln's
 * resolver): `urllib.request` to an allowed host over HTTP and HTTPS
 * (certificate verified on the host), a refused host answered 403 naming the
 * rule, a secret put in on the host only for its host, every attempt in the
 * audit log; a sandbox without egress gets none.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { type AddressInfo, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Kiln, type Sandbox } from "../../src/index.ts";
import { type FakeInternet, fakeInternetUnavailable, startFakeInternet } from "./fake-internet.ts";

const VALUE = `sk-py-${createHash("sha256").update(String(process.pid)).digest("hex").slice(0, 24)}`;
const sha = (v: string) => createHash("sha256").update(v).digest("hex");
const why = fakeInternetUnavailable();
let net: FakeInternet | undefined;
let kiln: Kiln;
let dataDir: string;
let sb: Sandbox | undefined;

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "kiln-python-http-"));
  if (!why) net = await startFakeInternet();
  kiln = await Kiln.open({ dataDir, ...(net ? { networkHosts: net.networkHosts } : {}) });
  if (!net) return;
  // The host checks upstream certificates: it trusts the fake internet's CA.
  writeFileSync(join(dataDir, "test-ca.pem"), net.certs.ca);
  process.env.KILN_NETWORK_EXTRA_CA = join(dataDir, "test-ca.pem");
  sb = await kiln.create({
    network: {
      allow: ["files.test:80", "files.test:443", "other.test:443"],
      secrets: { API_KEY: { value: VALUE, hosts: ["files.test"] } },
    },
  });
});

after(async () => {
  await sb?.kill().catch(() => {});
  await kiln.close();
  net?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

/** Runs a Python script in `box`; its stdout, stderr and exit code. */
async function py(box: Sandbox, script: string) {
  await box.files.write("/workspace/t.py", script);
  const r = await box.commands.run("python3 /workspace/t.py", { timeoutMs: 120_000 });
  if (!("exitCode" in r)) throw new Error("expected a result");
  return r;
}

const GET = `
import sys, urllib.request, urllib.error
def get(url, **headers):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=20) as r:
            print(r.status, r.read().decode())
    except urllib.error.HTTPError as e:
        print(e.code, e.headers.get("X-Kiln-Rule"), e.read().decode().strip())
`;

describe("Python's urllib on virtual, through the egress policy", () => {
  test("an allowed host over HTTP and HTTPS; a refused host is a 403 naming the rule; both audited", async (t) => {
    if (why) return t.skip(why);
    const r = await py(
      sb!,
      `${GET}
get("http://files.test/py1")
get("https://files.test/py2")
get("https://other.test/py3")
get("http://other.test/py4")
get("https://denied.test/py5")
req = urllib.request.Request("https://files.test/post", data=b"x" * 70000, method="POST")
print(urllib.request.urlopen(req, timeout=20).read().decode())
`,
    );
    assert.equal(r.exitCode, 0, r.stderr);
    const lines = r.stdout.trim().split("\n");
    assert.equal(lines[0], "200 files:GET /py1 host=files.test");
    assert.equal(lines[1], "200 files:GET /py2 host=files.test");
    assert.equal(lines[2], "200 other:GET /py3 host=other.test", "positive control for other.test");
    assert.match(
      lines[3]!,
      /^403 default deny Kiln egress policy: other\.test:80 refused by rule "default deny"$/,
    );
    assert.match(
      lines[4]!,
      /^403 default deny Kiln egress policy: denied\.test:443 refused by rule "default deny"$/,
    );
    assert.equal(lines[5], "files:POST /post host=files.test");
    const log = await sb!.networkLogs({ limit: 50 });
    const entry = (path: string) => log.find((e) => e.path === path);
    assert.equal(entry("/py1")?.allowed, true);
    assert.equal(entry("/py1")?.host, "files.test");
    assert.equal(entry("/py2")?.kind, "tls");
    assert.equal(entry("/py4")?.allowed, false);
    assert.equal(entry("/py4")?.status, 403);
    assert.equal(entry("/py5")?.allowed, false);
    assert.equal(entry("/post")?.bytesUp, 70000);
  });

  test("a secret is put in on the host for its host only; Python never holds the value", async (t) => {
    if (why) return t.skip(why);
    const r = await py(
      sb!,
      `${GET}
import os
key = os.environ["API_KEY"]
print(key)
get("https://files.test/s", Authorization="Bearer " + key)
get("https://other.test/s", Authorization="Bearer " + key)
print(${JSON.stringify(VALUE)} in repr(dict(os.environ)))
`,
    );
    assert.equal(r.exitCode, 0, r.stderr);
    const [ph, toFiles, toOther, inEnv] = r.stdout.trim().split("\n");
    assert.match(ph!, /^KILN_SECRET_API_KEY_[0-9a-f]{32}$/);
    // The host received the value (its SHA-256), and the echo came back as the placeholder.
    assert.equal(
      toFiles,
      `200 files:GET /s host=files.test auth=Bearer ${ph} authsha=${sha(`Bearer ${VALUE}`)}`,
    );
    assert.match(toOther!, /^403 secret API_KEY not for other\.test /);
    assert.equal(inEnv, "False");
    assert.ok(!r.stdout.includes(VALUE));
    const log = await sb!.networkLogs({ limit: 50 });
    assert.match(log.find((e) => e.path === "/s" && e.allowed)?.rule ?? "", /; secret API_KEY$/);
  });

  test("a notebook cell (runCode) goes the same way", async (t) => {
    if (why) return t.skip(why);
    const ex = await sb!.runCode(
      'import urllib.request\nurllib.request.urlopen("http://files.test/cell", timeout=20).read().decode()',
    );
    assert.equal(ex.error, undefined, JSON.stringify(ex.error));
    assert.equal(ex.results[0]?.text, "'files:GET /cell host=files.test'");
  });

  test("a job stopped while it waits for an answer stops, and the interpreter keeps working", async (t) => {
    if (why) return t.skip(why);
    // A loopback server that takes connections and never answers.
    const held = new Set<Socket>();
    const silent = createServer((s) => held.add(s));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const port = (silent.address() as AddressInfo).port;
    const box = await kiln.create({ network: { allow: [`127.0.0.1:${port}`] } });
    try {
      await box.files.write(
        "/workspace/w.py",
        `import urllib.request\nurllib.request.urlopen("http://127.0.0.1:${port}/", timeout=25)\n`,
      );
      const started = Date.now();
      await assert.rejects(box.commands.run("python3 /workspace/w.py", { timeoutMs: 1500 }), {
        code: "timeout",
      });
      assert.ok(Date.now() - started < 10_000, "stopped well before urllib's own timeout");
      assert.equal(held.size > 0, true, "the request reached the server");
      const next = await box.commands.run('python3 -c "print(6 * 7)"', { timeoutMs: 60_000 });
      assert.ok("exitCode" in next);
      assert.equal(next.stdout, "42\n");
    } finally {
      await box.kill();
      for (const s of held) s.destroy();
      silent.close();
    }
  });

  test("a sandbox without egress: urllib fails, nothing is sent", async (t) => {
    if (why) return t.skip(why);
    const none = await kiln.create();
    try {
      const r = await py(
        none,
        `import urllib.request, urllib.error
try:
    urllib.request.urlopen("http://files.test/none", timeout=5)
except urllib.error.URLError as e:
    print("URLError", e.reason)
`,
      );
      assert.match(r.stdout, /^URLError Kiln: this sandbox has no network egress/);
    } finally {
      await none.kill();
    }
  });
});
