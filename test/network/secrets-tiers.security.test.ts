/**
 * A secret given to a sandbox, on every real tier, against the fake
 * internet: the sandbox holds `$API_KEY`, a placeholder; `files.test` (the
 * secret's host) receives the real value (the server answers its SHA-256)
 * and echoes only the placeholder back; `other.test` gets only the
 * placeholder; and the value is nowhere inside the sandbox: not in its
 * environment, not in its files, not in the memory of the process that made
 * the request.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Kiln, type Sandbox, type TierName } from "../../src/index.ts";
import { tierRequired } from "../conformance/suite.ts";
import { type FakeInternet, fakeInternetUnavailable, startFakeInternet } from "./fake-internet.ts";

const TIERS: TierName[] = ["namespace", "oci", "gvisor", "microvm"];
const VALUE = `sk-test-${createHash("sha256").update(String(process.pid)).digest("hex").slice(0, 32)}`;
const sha = (v: string) => createHash("sha256").update(v).digest("hex");
let net: FakeInternet | undefined;
let kiln: Kiln;
let dataDir: string;
const why = fakeInternetUnavailable();

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "kiln-secrets-tiers-"));
  if (!why) net = await startFakeInternet();
  kiln = await Kiln.open({ dataDir, ...(net ? { networkHosts: net.networkHosts } : {}) });
  if (!net) return;
  // The host checks upstream certificates: it trusts the fake internet's CA.
  writeFileSync(join(dataDir, "test-ca.pem"), net.certs.ca);
  process.env.KILN_NETWORK_EXTRA_CA = join(dataDir, "test-ca.pem");
});

after(async () => {
  await kiln.close();
  net?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

for (const tier of TIERS) {
  describe(`secrets on ${tier}`, () => {
    let sb: Sandbox | undefined;
    let skip: string | undefined;

    before(async () => {
      if (why) {
        skip = why;
        return;
      }
      const backend = await kiln.backend(tier);
      const status = await backend.probe();
      if (!status.available) skip = `tier ${tier} unavailable: ${status.reason}`;
      else if (!backend.capabilities.egress) skip = `tier ${tier} gives no egress`;
      if (skip) {
        if (tierRequired(tier) && !status.available)
          throw new Error(`${skip} (required by KILN_REQUIRE_TIERS)`);
        return;
      }
      sb = await kiln.create({
        tier,
        network: {
          allow: ["files.test:443", "other.test:443"],
          secrets: { API_KEY: { value: VALUE, hosts: ["files.test"], headers: ["authorization"] } },
        },
      });
      // other.test is not intercepted: the sandbox checks its real certificate (the test CA).
      await sb.files.write("/workspace/test-ca.pem", net!.certs.ca);
    });
    after(async () => {
      await sb?.kill().catch(() => {});
    });

    const sh = async (command: string) => {
      const r = await sb!.commands.run(command, { timeoutMs: 60_000 });
      if (!("exitCode" in r)) throw new Error("expected a result");
      return { code: r.exitCode, out: r.stdout, err: r.stderr };
    };
    const it = (name: string, fn: () => Promise<void>) =>
      test(name, async (t) => {
        if (skip) return t.skip(skip);
        await fn();
      });

    it("the secret's host gets the value, through the proxy and without it; the echo holds the placeholder", async () => {
      const ph = (await sh('printf %s "$API_KEY"')).out;
      assert.match(ph, /^KILN_SECRET_API_KEY_[0-9a-f]{32}$/);
      for (const noproxy of ["", "--noproxy '*'"]) {
        const r = await sh(
          `curl -sS -m 20 ${noproxy} -H "Authorization: Bearer $API_KEY" https://files.test/s`,
        );
        assert.equal(
          r.out,
          `files:GET /s host=files.test auth=Bearer ${ph} authsha=${sha(`Bearer ${VALUE}`)}`,
          r.err,
        );
      }
      const other = await sh(
        `cat /workspace/test-ca.pem /tmp/.kiln/ca.pem > /workspace/both.pem && curl -sS -m 20 --cacert /workspace/both.pem -H "Authorization: Bearer $API_KEY" https://other.test/o`,
      );
      assert.equal(
        other.out,
        `other:GET /o host=other.test auth=Bearer ${ph} authsha=${sha(`Bearer ${ph}`)}`,
      );
      const wrongHeader = await sh(`curl -sS -m 20 -H "X-Api-Key: $API_KEY" https://files.test/h`);
      assert.match(wrongHeader.out, /secret API_KEY not for files\.test/);
    });

    it("the value is nowhere inside: environment, files, the memory of the process that used it", async () => {
      const py = await sh(`python3 - <<'EOF'
import os, re, urllib.request
value_sha = "${sha(VALUE)}"
req = urllib.request.Request("https://files.test/m", headers={"Authorization": "Bearer " + os.environ["API_KEY"]})
body = urllib.request.urlopen(req, timeout=20).read()
print("fetched", b"authsha=" in body)
import hashlib
def has_value(blob):
    # Look for any 40-byte run starting with the value's prefix and compare its hash: the value itself is never in this script.
    for m in re.finditer(rb"sk-test-[0-9a-f]{32}", blob):
        if hashlib.sha256(m.group(0)).hexdigest() == value_sha:
            return True
    return False
found = False
with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", 0) as mem:
    for line in maps:
        a, b = (int(x, 16) for x in line.split()[0].split("-"))
        if "r" not in line.split()[1]:
            continue
        try:
            mem.seek(a)
            found = found or has_value(mem.read(b - a))
        except (OSError, ValueError, OverflowError):
            pass
print("memory", found)
print("env", any(has_value(v.encode()) for v in os.environ.values()))
EOF`);
      assert.match(py.out, /fetched True/, py.err);
      assert.match(py.out, /memory False/);
      assert.match(py.out, /env False/);
      const files = await sh("grep -rIl 'sk-test-' /workspace /tmp /etc /root 2>/dev/null | head -5; true");
      assert.equal(files.out.trim(), "", "no file holds a value of this shape");
    });
  });
}

describe("secrets on virtual (just-bash curl through the same rules)", () => {
  let sb: Sandbox | undefined;
  before(async () => {
    if (!why)
      sb = await kiln.create({
        network: {
          allow: ["files.test:443", "other.test:443", "files.test:80"],
          secrets: { API_KEY: { value: VALUE, hosts: ["files.test"] } },
        },
      });
  });
  after(async () => {
    await sb?.kill().catch(() => {});
  });

  test("the secret's host gets the value; another host and plain HTTP are refused; env holds no value", async (t) => {
    if (why) return t.skip(why);
    const run = async (c: string) => {
      const r = await sb!.commands.run(c, { timeoutMs: 60_000 });
      return "exitCode" in r ? r : assert.fail("expected a result");
    };
    const ph = (await run('printf %s "$API_KEY"')).stdout;
    assert.match(ph, /^KILN_SECRET_API_KEY_[0-9a-f]{32}$/);
    assert.equal(
      (await run('curl -sS -H "Authorization: Bearer $API_KEY" https://files.test/v')).stdout,
      `files:GET /v host=files.test auth=Bearer ${ph} authsha=${sha(`Bearer ${VALUE}`)}`,
    );
    // In-process, every request is seen: the placeholder to another host is refused outright.
    const other = await run('curl -sS -H "Authorization: Bearer $API_KEY" https://other.test/v');
    assert.notEqual(other.exitCode, 0);
    assert.match(other.stderr, /secret API_KEY not for other\.test/);
    assert.equal((await run("curl -sS https://other.test/ok")).exitCode, 0, "positive control");
    const plain = await run('curl -sS -H "Authorization: Bearer $API_KEY" http://files.test/v');
    assert.notEqual(plain.exitCode, 0);
    assert.match(plain.stderr, /secret API_KEY over plain http/);
    assert.doesNotMatch((await run("env")).stdout, new RegExp(VALUE));
  });
});
