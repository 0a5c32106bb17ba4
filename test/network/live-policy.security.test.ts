/**
 * Changing a running sandbox's network policy (`sandbox.network.update`), on
 * every tier that gives egress, against the fake internet: the next
 * connection, request and DNS question see the new policy; a port the new
 * rules name is listened on; a sandbox started without network is given it
 * where the tier can (else `unsupported`: gVisor's netstack and a microvm
 * guest booted without a network card read it at start); bad rules change
 * nothing; every change is in the audit log. Each refusal beside a positive
 * control.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Kiln, type Sandbox, type TierName } from "../../src/index.ts";
import { tierRequired } from "../conformance/suite.ts";
import { type FakeInternet, fakeInternetUnavailable, startFakeInternet } from "./fake-internet.ts";

const TIERS: TierName[] = ["namespace", "oci", "gvisor", "microvm", "virtual"];
let net: FakeInternet | undefined;
let kiln: Kiln;
let dataDir: string;
const why = fakeInternetUnavailable();

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "kiln-live-net-"));
  if (!why) net = await startFakeInternet();
  kiln = await Kiln.open({ dataDir, ...(net ? { networkHosts: net.networkHosts } : {}) });
  if (!net) return;
  writeFileSync(join(dataDir, "test-ca.pem"), net.certs.ca);
  process.env.KILN_NETWORK_EXTRA_CA = join(dataDir, "test-ca.pem");
});

after(async () => {
  await kiln.close();
  net?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

for (const tier of TIERS) {
  describe(`live network policy on ${tier}`, () => {
    let skip: string | undefined;
    const made: Sandbox[] = [];
    const real = tier !== "virtual";

    before(async () => {
      if (why) {
        skip = why;
        return;
      }
      const backend = await kiln.backend(tier);
      const status = await backend.probe();
      if (!status.available) skip = `tier ${tier} unavailable: ${status.reason}`;
      else if (!backend.capabilities.egress) skip = `tier ${tier} gives no egress`;
      if (skip && tierRequired(tier) && !status.available)
        throw new Error(`${skip} (required by KILN_REQUIRE_TIERS)`);
    });

    after(async () => {
      for (const sb of made) await sb.kill().catch(() => {});
    });

    const make = async (network?: { allow: string[] }) => {
      const sb = await kiln.create({ tier, ...(network ? { network } : {}) });
      made.push(sb);
      if (real) await sb.files.write("/workspace/ca.pem", net!.certs.ca);
      return sb;
    };
    /** Fetches `url` in `sb`; the body, or undefined when refused in any way. */
    const fetchIn = async (sb: Sandbox, url: string, extra = "") => {
      const ca = real ? "--cacert /workspace/ca.pem" : "";
      const r = await sb.commands.run(`curl -sS -f -m 20 ${ca} ${extra} ${url}`, { timeoutMs: 60_000 });
      return "exitCode" in r && r.exitCode === 0 ? r.stdout : undefined;
    };

    const it = (name: string, fn: () => Promise<void>) =>
      test(name, async (t) => {
        if (skip) return t.skip(skip);
        await fn();
      });

    it("an update takes effect on the next connection, new port rules included, and is audited", async () => {
      const sb = await make({ allow: ["files.test:443"] });
      assert.equal(await fetchIn(sb, "https://files.test/1"), "files:GET /1 host=files.test");
      assert.equal(await fetchIn(sb, "https://other.test/1"), undefined);

      const settings = await sb.network.update({ allow: ["other.test:443", "files.test:8080"] });
      assert.deepEqual(settings, { egress: "none", allow: ["other.test:443", "files.test:8080"], deny: [] });
      assert.deepEqual((await sb.info()).network, settings);
      assert.equal(await fetchIn(sb, "https://other.test/2"), "other:GET /2 host=other.test");
      assert.equal(
        await fetchIn(sb, "https://files.test/2"),
        undefined,
        "files.test:443 is no longer allowed",
      );
      // A port named only by the new rules: on the real tiers a new listener, without the proxy too.
      assert.equal(await fetchIn(sb, "http://files.test:8080/3"), "files-8080:GET /3 host=files.test:8080");
      if (real)
        assert.equal(
          await fetchIn(sb, "http://files.test:8080/4", "--noproxy '*'"),
          "files-8080:GET /4 host=files.test:8080",
        );

      const log = await sb.networkLogs();
      const change = log.find((e) => e.kind === "policy");
      assert.equal(change?.rule, "egress none; allow other.test:443, files.test:8080");
      assert.ok(
        log.some((e) => !e.allowed && e.host === "files.test" && e.port === 443 && e.atMs >= change!.atMs),
      );
    });

    it("bad rules are refused and change nothing; an update to no egress closes the way out", async () => {
      const sb = await make({ allow: ["files.test:443"] });
      await assert.rejects(sb.network.update({ allow: ["a..b"] }), { code: "invalid_argument" });
      assert.deepEqual((await sb.network.get()).allow, ["files.test:443"]);
      assert.equal(
        await fetchIn(sb, "https://files.test/5"),
        "files:GET /5 host=files.test",
        "positive control",
      );
      await sb.network.update({});
      assert.equal(await fetchIn(sb, "https://files.test/6"), undefined);
      assert.deepEqual((await sb.network.get()).allow, []);
    });

    it("a sandbox started without network is given it while it runs, where the tier can", async () => {
      const sb = await make();
      assert.equal(await fetchIn(sb, "https://files.test/7"), undefined);
      if (tier === "gvisor" || tier === "microvm") {
        await assert.rejects(sb.network.update({ allow: ["files.test:443"] }), { code: "unsupported" });
        assert.deepEqual((await sb.network.get()).allow, [], "the record keeps the old policy");
        return;
      }
      await sb.network.update({ allow: ["files.test:443"] });
      assert.equal(await fetchIn(sb, "https://files.test/8"), "files:GET /8 host=files.test");
      if (real)
        assert.equal(
          await fetchIn(sb, "https://files.test/9", "--noproxy '*'"),
          "files:GET /9 host=files.test",
          "Kiln's DNS answers it",
        );
      assert.equal(await fetchIn(sb, "https://other.test/9"), undefined);
    });
  });
}
