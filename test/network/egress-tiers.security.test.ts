/**
 * Egress on every real tier, against a fake internet in its own network
 * namespace (TEST-NET-2 addresses, `files.test` and `other.test` given to
 * Kiln through `Kiln.open({ networkHosts })`, HTTP on 80 and 8080, HTTPS on
 * 443 with a test CA). One sandbox per tier, allowed `files.test` on ports 80
 * and 443 only; each hostile case beside a positive control in the same sandbox, so that a dead
 * network cannot pass it. Every tier runs every case, microvm under TCG too. A microvm and a gVisor
 * sandbox keep their way out across a pause with their memory (gVisor's restored netstack reads a
 * network namespace wired afresh), and a microvm when created from the saved boot state of guests
 * with a network card.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Kiln, type Sandbox, type TierName } from "../../src/index.ts";
import type { MicrovmBackend } from "../../src/tiers/microvm/index.ts";
import { tierRequired } from "../conformance/suite.ts";
import { type FakeInternet, fakeInternetUnavailable, startFakeInternet } from "./fake-internet.ts";

const TIERS: TierName[] = ["namespace", "oci", "gvisor", "microvm"];

/** The host pids of gVisor's Sentry for sandbox `id`. */
function sentryOf(id: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const argv = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0");
      if (argv[0] === "runsc-sandbox" && argv.includes(`kiln-${id}`)) out.push(Number(name));
    } catch {}
  }
  return out;
}
let net: FakeInternet | undefined;
let kiln: Kiln;
let dataDir: string;
const why = fakeInternetUnavailable();

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "kiln-egress-"));
  if (!why) net = await startFakeInternet();
  kiln = await Kiln.open({ dataDir, ...(net ? { networkHosts: net.networkHosts } : {}) });
  if (!net) return;
  // The virtual tier's fetch verifies upstream certificates on the host: it trusts the test CA too.
  writeFileSync(join(dataDir, "test-ca.pem"), net.certs.ca);
  process.env.KILN_NETWORK_EXTRA_CA = join(dataDir, "test-ca.pem");
});

after(async () => {
  await kiln.close();
  net?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

for (const tier of TIERS) {
  describe(`egress on ${tier}`, () => {
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
      sb = await kiln.create({ tier, network: { allow: ["files.test:443", "files.test:80"] } });
      await sb.files.write("/workspace/ca.pem", net!.certs.ca);
    });

    after(async () => {
      await sb?.kill().catch(() => {});
    });

    /** Runs a command line in `box`; resolves with exit code and output, whatever the code. */
    const shIn = async (box: Sandbox, command: string) => {
      const r = await box.commands.run(command, { timeoutMs: 60_000 });
      if (!("exitCode" in r)) throw new Error("expected a result");
      return { code: r.exitCode, out: r.stdout, err: r.stderr };
    };
    /** {@link shIn} the tier's shared sandbox. */
    const sh = (command: string) => shIn(sb!, command);
    const curl = "curl -sS -m 20 --cacert /workspace/ca.pem";

    /** A case every tier runs, an emulated one too (the cases share one sandbox: each costs commands, not boots). */
    const core = (name: string, fn: () => Promise<void>) =>
      test(name, async (t) => {
        if (skip) return t.skip(skip);
        await fn();
      });

    core("an allowed host is reached over HTTPS and HTTP, through the proxy and without it", async () => {
      assert.equal((await sh(`${curl} https://files.test/a`)).out, "files:GET /a host=files.test");
      assert.equal(
        (await sh(`${curl} --noproxy '*' https://files.test/b`)).out,
        "files:GET /b host=files.test",
      );
      assert.equal((await sh(`${curl} http://files.test/c`)).out, "files:GET /c host=files.test");
      assert.equal(
        (await sh(`${curl} --noproxy '*' http://files.test/d`)).out,
        "files:GET /d host=files.test",
      );
    });

    core(
      "a refused host gets a 403 naming the rule through the proxy, and no address without it",
      async () => {
        const r = await sh(`${curl} http://other.test/`);
        assert.match(r.out, /other\.test:80 refused by rule "default deny"/);
        const tunnel = await sh(`${curl} https://other.test/`);
        assert.notEqual(tunnel.code, 0, "CONNECT to a refused host fails");
        assert.match(tunnel.err, /403/);
        const direct = await sh(`${curl} --noproxy '*' https://other.test/`);
        assert.equal(direct.code, 6, "other.test does not resolve");
        assert.equal((await sh(`${curl} https://files.test/ok`)).code, 0, "positive control");
      },
    );

    core(
      "IP literals, IPv6 literals and 169.254.169.254 get nothing, with or without the proxy",
      async () => {
        for (const url of [
          `http://${net!.files}/`,
          `https://${net!.files}/`,
          "http://169.254.169.254/",
          "http://[2001:db8::1]/",
          "http://[::1]/",
        ]) {
          const direct = await sh(`${curl} --noproxy '*' ${url}`);
          assert.notEqual(direct.code, 0, url);
          assert.doesNotMatch(direct.out, /files:/, url);
          const proxied = await sh(`${curl} ${url}`);
          assert.notEqual(proxied.code === 0 && /files:/.test(proxied.out), true, url);
        }
        assert.equal((await sh(`${curl} --noproxy '*' https://files.test/ok`)).code, 0, "positive control");
      },
    );

    core(
      "with the proxy variables unset, an allowed host still works and a refused one does not",
      async () => {
        const unset = "env -u HTTP_PROXY -u HTTPS_PROXY -u http_proxy -u https_proxy";
        assert.equal((await sh(`${unset} ${curl} https://files.test/e`)).out, "files:GET /e host=files.test");
        assert.notEqual((await sh(`${unset} ${curl} https://other.test/`)).code, 0);
        const py = await sh(
          `${unset} python3 -c "import urllib.request,ssl; print(urllib.request.urlopen('https://files.test/f', context=ssl.create_default_context(cafile='/workspace/ca.pem')).read().decode())"`,
        );
        assert.equal(py.out.trim(), "files:GET /f host=files.test");
      },
    );

    core("raw TCP to an allowed host's other port is refused, with or without the proxy", async () => {
      const direct = await sh(`${curl} --noproxy '*' http://files.test:8080/`);
      assert.notEqual(direct.code, 0);
      assert.doesNotMatch(direct.out, /files-8080/);
      const proxied = await sh(`${curl} http://files.test:8080/`);
      assert.match(proxied.out, /refused by rule "default deny"/);
      assert.equal((await sh(`${curl} http://files.test/ok`)).code, 0, "positive control");
    });

    core("a Host or SNI for a refused host is refused even on an allowed host's address", async () => {
      const host = await sh(`${curl} --noproxy '*' -H 'Host: other.test' http://files.test/`);
      assert.match(host.out, /other\.test:80 refused/);
      const sni = await sh(
        `${curl} --noproxy '*' --connect-to other.test:443:files.test:443 https://other.test/`,
      );
      assert.notEqual(sni.code, 0);
      const fronted = await sh(`${curl} --connect-to other.test:443:files.test:443 https://other.test/`);
      assert.notEqual(fronted.code, 0, "through the proxy: CONNECT other.test is refused");
      assert.equal(
        (await sh(`${curl} --noproxy '*' --connect-to files.test:443:files.test:443 https://files.test/ok`))
          .code,
        0,
      );
    });

    core(
      "DNS is answered by Kiln only: another server is unreachable, refused names do not resolve",
      async () => {
        const py = await sh(`python3 - <<'EOF'
import socket
q = bytes.fromhex("abcd01000001000000000000") + b"\\x05files\\x04test\\x00\\x00\\x01\\x00\\x01"
for server in ["8.8.8.8", "${net!.files}"]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    try:
        s.sendto(q, (server, 53))
        s.recv(512)
        print(server, "answered")
    except OSError as e:
        print(server, "failed", type(e).__name__)
EOF`);
        assert.doesNotMatch(py.out, /answered/);
        assert.match(py.out, /8\.8\.8\.8 failed/);
        assert.equal((await sh("getent hosts files.test")).code, 0, "positive control");
        const tunnel = `${"a1b2c3d4e5f6".repeat(5)}.${"q9w8e7r6".repeat(6)}.other.test`;
        assert.notEqual((await sh(`getent hosts ${tunnel}`)).code, 0);
      },
    );

    core("the audit log lists allowed and refused attempts with their rules", async () => {
      const log = await sb!.networkLogs();
      assert.ok(log.some((e) => e.allowed && e.host === "files.test" && e.kind === "tls" && e.bytesDown > 0));
      assert.ok(log.some((e) => e.allowed && e.host === "files.test" && e.kind === "connect"));
      assert.ok(
        log.some(
          (e) =>
            !e.allowed &&
            e.host === "other.test" &&
            e.kind === "http" &&
            e.rule === "default deny" &&
            e.status === 403,
        ),
      );
      assert.ok(log.some((e) => !e.allowed && e.kind === "dns" && e.host?.endsWith(".other.test")));
    });

    if (tier === "gvisor")
      core("a sandbox restored with its memory has the same way out, and no other", async () => {
        // gVisor refuses to checkpoint a netstack with TCP connections not fully gone (TIME_WAIT
        // included), so this one is paused before its first connection.
        const box = await kiln.create({ tier, network: { allow: ["files.test:443", "files.test:80"] } });
        try {
          await box.files.write("/workspace/ca.pem", net!.certs.ca);
          await shIn(box, "nohup sleep 100000 >/dev/null 2>&1 &");
          await box.pause();
          await box.resume();
          assert.equal((await shIn(box, "pgrep -x sleep")).code, 0, "restored, not started afresh");
          assert.equal((await shIn(box, `${curl} https://files.test/r`)).out, "files:GET /r host=files.test");
          assert.equal(
            (await shIn(box, `${curl} --noproxy '*' https://files.test/s`)).out,
            "files:GET /s host=files.test",
          );
          assert.match((await shIn(box, `${curl} http://other.test/`)).out, /refused by rule "default deny"/);
          assert.equal((await shIn(box, `${curl} --noproxy '*' https://other.test/`)).code, 6);
        } finally {
          await box.kill();
        }
      });

    if (tier === "gvisor")
      core("a runtime that died is started again wired, under the policy the sandbox has then", async () => {
        const box = await kiln.create({ tier, network: { allow: ["files.test:443"] } });
        try {
          await box.files.write("/workspace/ca.pem", net!.certs.ca);
          assert.match((await shIn(box, `${curl} http://files.test/`)).out, /refused by rule "default deny"/);
          await box.network.update({ allow: ["files.test:443", "files.test:80"] });
          // The Sentry killed from the host: the next command starts the sandbox afresh.
          const sentry = sentryOf(box.id);
          assert.equal(sentry.length, 1, "one Sentry");
          process.kill(sentry[0]!, "SIGKILL");
          for (let i = 0; i < 100 && sentryOf(box.id).includes(sentry[0]!); i++)
            await new Promise((r) => setTimeout(r, 50));
          await new Promise((r) => setTimeout(r, 500));
          let first = await shIn(box, "echo again").catch((e: unknown) => e);
          // A command sent before Kiln saw the runtime die fails; the next one restarts it.
          if (!(typeof first === "object" && first !== null && "code" in first && first.code === 0))
            first = await shIn(box, "echo again");
          assert.deepEqual(first, { code: 0, out: "again\n", err: "" });
          assert.equal(sentryOf(box.id).length, 1, "a new Sentry");
          assert.notEqual(sentryOf(box.id)[0], sentry[0]);
          assert.equal((await shIn(box, `${curl} http://files.test/h`)).out, "files:GET /h host=files.test");
          assert.equal(
            (await shIn(box, `${curl} --noproxy '*' https://files.test/i`)).out,
            "files:GET /i host=files.test",
          );
          assert.match((await shIn(box, `${curl} http://other.test/`)).out, /refused by rule "default deny"/);
        } finally {
          await box.kill();
        }
      });

    if (tier === "microvm")
      core("a guest restored with its memory has the same way out, and no other", async () => {
        await sh("nohup sleep 100000 >/dev/null 2>&1 &");
        await sb!.pause();
        await sb!.resume();
        assert.equal((await sh(`${curl} https://files.test/r`)).out, "files:GET /r host=files.test");
        assert.equal(
          (await sh(`${curl} --noproxy '*' https://files.test/s`)).out,
          "files:GET /s host=files.test",
        );
        assert.match((await sh(`${curl} http://other.test/`)).out, /refused by rule "default deny"/);
        assert.equal((await sh(`${curl} --noproxy '*' https://other.test/`)).code, 6);
        assert.equal((await sh("pgrep -x sleep")).code, 0, "restored, not booted afresh");
      });

    if (tier === "microvm")
      core(
        "sandboxes with egress restored from the saved boot state (with its card) have the same way out",
        async () => {
          // The first create with egress booted cold and had the state with a network card built.
          await ((await kiln.backend("microvm")) as MicrovmBackend).bootStatesBuilt();
          const made = [
            await kiln.create({ tier, network: { allow: ["files.test:443"] } }),
            await kiln.create({ tier, network: { allow: ["files.test:443"] } }),
          ];
          try {
            const ids: string[] = [];
            for (const m of made) {
              const run = async (c: string) => {
                const r = await m.commands.run(c, { timeoutMs: 60_000 });
                return "exitCode" in r ? r : assert.fail("expected a result");
              };
              ids.push((await run("cat /proc/sys/kernel/random/boot_id")).stdout);
              await m.files.write("/workspace/ca.pem", net!.certs.ca);
              assert.equal(
                (await run(`${curl} https://files.test/t`)).stdout,
                "files:GET /t host=files.test",
              );
              assert.equal(
                (await run(`${curl} --noproxy '*' https://files.test/u`)).stdout,
                "files:GET /u host=files.test",
              );
              assert.match((await run(`${curl} https://other.test/`)).stderr, /403/);
              assert.equal((await run(`${curl} --noproxy '*' https://other.test/`)).exitCode, 6);
            }
            assert.equal(ids[0], ids[1], "both restored from one saved state, not booted");
          } finally {
            for (const m of made) await m.kill().catch(() => {});
          }
        },
      );
  });
}

describe("egress on virtual (just-bash curl through the same policy)", () => {
  let sb: Sandbox | undefined;
  before(async () => {
    if (!why) sb = await kiln.create({ network: { allow: ["files.test:443", "files.test:80"] } });
  });
  after(async () => {
    await sb?.kill().catch(() => {});
  });
  const sh = async (command: string) => {
    const r = await sb!.commands.run(command, { timeoutMs: 60_000 });
    if (!("exitCode" in r)) throw new Error("expected a result");
    return { code: r.exitCode, out: r.stdout, err: r.stderr };
  };

  test("an allowed host is fetched over HTTPS and HTTP; refused hosts, ports and addresses name the rule", async (t) => {
    if (why) return t.skip(why);
    assert.equal((await sh("curl -sS https://files.test/v")).out, "files:GET /v host=files.test");
    assert.equal((await sh("curl -sS http://files.test/w")).out, "files:GET /w host=files.test");
    const other = await sh("curl -sS https://other.test/");
    assert.notEqual(other.code, 0);
    assert.match(other.err, /other\.test:443 refused by rule "default deny"/);
    const port = await sh("curl -sS http://files.test:8080/");
    assert.notEqual(port.code, 0);
    assert.match(port.err, /default deny/);
    const literal = await sh(`curl -sS http://${net!.files}/`);
    assert.notEqual(literal.code, 0);
    const metadata = await sh("curl -sS http://169.254.169.254/latest/meta-data/");
    assert.match(metadata.err, /blocked link-local/);
    assert.equal((await sh("curl -sS https://files.test/ok")).code, 0, "positive control");
    const log = await sb!.networkLogs();
    assert.ok(
      log.some(
        (e) =>
          e.allowed && e.host === "files.test" && e.kind === "tls" && e.path === "/v" && e.status === 200,
      ),
    );
    assert.ok(log.some((e) => !e.allowed && e.host === "other.test" && e.rule === "default deny"));
    assert.ok(
      log.some((e) => !e.allowed && e.address === "169.254.169.254" && e.rule === "blocked link-local"),
    );
  });
});
