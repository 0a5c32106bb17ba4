/**
 * Sandbox root is never host root: on the tiers that map ids, a sandbox's
 * processes run as host ids of a range of its own (found from the host
 * through /proc), two sandboxes' ranges are disjoint, the sandbox cannot make
 * a user namespace of its own, and files keep the ids the sandbox sees.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, type TestContext, test } from "node:test";
import { Kiln, type Sandbox } from "../src/index.ts";
import { tierRequired } from "./conformance/suite.ts";

if (!process.env.KILN_TEMPLATE_DIR && process.getuid?.() === 0)
  process.env.KILN_TEMPLATE_DIR = "/var/cache/kiln/templates";

/** The host pids whose command line is exactly `argv`. */
function hostPids(argv: string[]): number[] {
  const want = `${argv.join("\0")}\0`;
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, "utf8") === want) out.push(Number(name));
    } catch {}
  }
  return out;
}

/** The host pids whose command line `match`es. */
function hostProcesses(match: (argv: string[]) => boolean): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (match(readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0"))) out.push(Number(name));
    } catch {}
  }
  return out;
}

/** The host pids whose parent is `pid`. */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid) out.push(Number(name));
    } catch {}
  }
  return out;
}

/** The real uid and gid of host process `pid`. */
function hostIds(pid: number): { uid: number; gid: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, "m").exec(status)?.[1]);
  return { uid: field("Uid"), gid: field("Gid") };
}

for (const tier of ["namespace", "oci", "gvisor", "microvm"] as const) {
  describe(`sandbox ids on the host (${tier})`, () => {
    let kiln: Kiln;
    let dataDir: string;
    let skip: string | undefined;

    before(async () => {
      dataDir = mkdtempSync(join(tmpdir(), "kiln-ids-"));
      kiln = await Kiln.open({ dataDir });
      const status = (await kiln.doctor()).find((s) => s.tier === tier);
      if (!status?.available) skip = `tier ${tier} unavailable: ${status?.reason}`;
      else if (/sandbox root is host root|QEMU runs as host root/.test(status.reason)) skip = status.reason;
      if (skip && tierRequired(tier)) throw new Error(`${skip} (required by KILN_REQUIRE_TIERS)`);
    });

    after(async () => {
      await kiln?.close();
      rmSync(dataDir, { recursive: true, force: true });
    });

    test("processes run as host ids of the sandbox's own range, never 0; ranges are disjoint; no nested user namespace", async (t: TestContext) => {
      if (skip) return void t.skip(skip);
      // The second with egress, mapped too (namespace, oci: its network is wired after the runtime
      // starts; gvisor: runsc makes the network namespace and Kiln wires it before runsc reads it;
      // microvm: QEMU's network namespace, made inside its user namespace, is still wired by Kiln).
      const boxes: Sandbox[] = [
        await kiln.create({ tier }),
        await kiln.create({ tier, network: { allow: ["files.test:443"] } }),
      ];
      const claims: number[] = [];
      try {
        const bases: number[] = [];
        for (const [i, sb] of boxes.entries()) {
          const inside = await sb.commands.run("id -u; id -g");
          assert.equal(inside.stdout, "0\n0\n", "root inside");
          // Found from the host: a process the sandbox started runs as the range's first id.
          const marker = `${4000 + i}.25`;
          const bg = await sb.commands.run(`sleep ${marker}`, { background: true });
          if (tier === "microvm") {
            // The guest's processes are not host processes: QEMU, the one host process of the
            // sandbox, runs as its range's root (it starts no other).
            const qemu = hostProcesses((argv) => argv.includes(`${sb.id},process=kiln-vm`));
            assert.equal(qemu.length, 1, "one QEMU");
            const q = hostIds(qemu[0]!);
            assert.ok(
              q.uid >= 65536 && q.uid % 65536 === 0,
              `QEMU host uid ${q.uid}: its range's root, never 0`,
            );
            assert.equal(q.gid, q.uid, "gids map to the same range");
            assert.deepEqual(childrenOf(qemu[0]!), [], "QEMU starts no process");
            assert.ok(existsSync(`/run/kiln/id-ranges/${q.uid}`), "the range is claimed while QEMU runs");
            claims.push(q.uid);
            bases.push(q.uid);
          } else if (tier === "gvisor") {
            // The sandbox's processes live in gVisor's Sentry (and, on ptrace, its stubs): the
            // Sentry runs as its range's nobody, the Gofer as its range's root, neither as host 0.
            const sentry = hostProcesses(
              (argv) => argv[0] === "runsc-sandbox" && argv.some((a) => a.endsWith(`/${sb.id}`)),
            );
            const gofer = hostProcesses(
              (argv) => argv[0] === "runsc-gofer" && argv.some((a) => a.endsWith(`/${sb.id}`)),
            );
            assert.equal(sentry.length, 1, "one Sentry");
            assert.equal(gofer.length, 1, "one Gofer");
            const s = hostIds(sentry[0]!);
            const g = hostIds(gofer[0]!);
            assert.ok(g.uid >= 65536 && g.uid % 65536 === 0, `Gofer host uid ${g.uid}: its range's root`);
            assert.equal(s.uid, g.uid + 65534, `Sentry host uid ${s.uid}: its range's nobody`);
            assert.equal(s.gid, s.uid, "gids map to the same range");
            for (const child of childrenOf(sentry[0]!))
              assert.equal(hostIds(child).uid, s.uid, "the Sentry's stubs run as the Sentry");
            bases.push(g.uid);
          } else {
            let pids: number[] = [];
            for (let n = 0; n < 50 && pids.length === 0; n++) {
              pids = hostPids(["sleep", marker]);
              if (pids.length === 0) await new Promise((r) => setTimeout(r, 100));
            }
            assert.equal(pids.length, 1, `one host process for sleep ${marker}`);
            const host = hostIds(pids[0]!);
            assert.ok(host.uid >= 65536, `host uid ${host.uid}: above every system id, never 0`);
            assert.equal(host.gid, host.uid, "gids map to the same range");
            assert.equal(host.uid % 65536, 0, "the sandbox's root is its range's first id");
            bases.push(host.uid);
          }
          await bg.kill();
          // No user namespace of its own inside (seccomp refuses it), with a positive control.
          assert.equal((await sb.commands.run("true")).exitCode, 0);
          const nested = await sb.commands.run("unshare -U true");
          assert.notEqual(nested.exitCode, 0, `unshare -U succeeded: ${nested.stdout}${nested.stderr}`);
          // Files keep the ids the sandbox sees: root's file is root's, the template's files are root's.
          const own = await sb.commands.run(
            "touch /workspace/mine && find /workspace/mine /usr/bin/env -printf '%U %G\\n'",
          );
          assert.equal(own.stdout, "0 0\n0 0\n", own.stderr);
        }
        assert.ok(Math.abs(bases[0]! - bases[1]!) >= 65536, `ranges overlap: ${bases.join(", ")}`);
      } finally {
        await Promise.all(boxes.map((b) => b.kill()));
      }
      // Released when the VM ends.
      for (const base of claims)
        assert.ok(!existsSync(`/run/kiln/id-ranges/${base}`), `range ${base} released`);
    });
  });
}
