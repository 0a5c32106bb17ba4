/**
 * `kiln cp` out of a sandbox, against a hostile sandbox: the CLI (run as a
 * user runs it, a child process) must never write through a symlink on the
 * host, must not plant setuid, setgid or sticky bits, device nodes or FIFOs,
 * and what it creates belongs to the user who ran it. Runs on every tier,
 * one line each at the end (KILN_REQUIRE_TIERS makes a named tier's absence a
 * failure), except a tier that is emulated here (see EMULATED).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Kiln, type TierName } from "../../src/index.ts";
import { assertExit, kiln, type Run, show } from "../cli-run.ts";
import { tierRequired } from "../conformance/suite.ts";

// Runs on a real tier restart the sandbox's runtime on every CLI call; a loaded machine needs room.
const GUARD_MS = 180_000;

/**
 * Why an emulated tier (a VM without hardware acceleration) is skipped: each of
 * the thirty-odd CLI calls here restarts the sandbox's runtime, a VM boot, so
 * the first three of these cases alone took 260 s on microvm under TCG, where
 * the budget is a minute. They run wherever the VM is accelerated.
 */
const EMULATED =
  "every kiln CLI call restarts the sandbox's VM, and emulated boots make these cases take minutes (the first three alone took 260 s); they run where the VM is accelerated";

/** Every hostile `kiln cp` case, against one tier. */
function runCpHostWrites(tier: TierName): void {
  describe(`kiln cp out of a ${tier} sandbox`, () => {
    let dir = "";
    let host = "";
    let id = "";
    let unavailable: string | undefined;

    const cli = (args: string[]) => kiln(dir, args, { guardMs: GUARD_MS });
    /** Runs `cmd` in the sandbox and asserts it succeeded. */
    const sh = async (cmd: string) => assertExit(await cli(["exec", id, "--", cmd]), 0);
    /** Copies and asserts the copy succeeded. */
    const cp = async (src: string, dst: string): Promise<Run> => {
      const r = await cli(["cp", src, dst]);
      assertExit(r, 0);
      return r;
    };

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), `kiln-cp-${tier}-`));
      host = mkdtempSync(join(tmpdir(), `kiln-cp-host-${tier}-`));
      const k = await Kiln.open({ dataDir: dir });
      const status = (await k.doctor()).find((s) => s.tier === tier);
      await k.close();
      if (!status?.available) {
        unavailable = `tier ${tier} unavailable: ${status?.reason ?? "not listed by doctor"}`;
        if (tierRequired(tier)) throw new Error(`${unavailable} (required by KILN_REQUIRE_TIERS)`);
        console.log(`# SKIP ${unavailable}`);
        return;
      }
      if (status.emulated) {
        // Not a missing tier, so KILN_REQUIRE_TIERS does not turn this into a failure.
        unavailable = `tier ${tier} is emulated here (${status.reason}): ${EMULATED}`;
        console.log(`# SKIP ${unavailable}`);
        return;
      }
      const r = await cli(["create", "--tier", tier]);
      assertExit(r, 0);
      id = r.stdout.trim();
    });

    after(async () => {
      if (id) await cli(["rm", id]);
      rmSync(dir, { recursive: true, force: true });
      rmSync(host, { recursive: true, force: true });
    });

    const it = (name: string, fn: () => Promise<void>) =>
      test(name, async (t) => {
        if (unavailable) return t.skip(unavailable);
        await fn();
      });

    it("a folder plants a link to a host file; a single-file copy onto it replaces the link, the host file is untouched", async () => {
      const victim = join(host, "victim.txt");
      writeFileSync(victim, "original\n");
      const dest = join(host, "dest");
      mkdirSync(dest);

      await sh(`mkdir -p /workspace/out && ln -s ${victim} /workspace/out/report.txt`);
      await cp(`${id}:/workspace/out`, dest);
      // Links travel as links (like docker cp); the danger is only in writing through them later.
      assert.ok(lstatSync(join(dest, "out", "report.txt")).isSymbolicLink());

      await sh("echo PWNED > /workspace/new && mv -f /workspace/new /workspace/out/report.txt");
      // Into the host folder that holds the link.
      await cp(`${id}:/workspace/out/report.txt`, join(dest, "out"));
      assert.equal(readFileSync(victim, "utf8"), "original\n", "the copy wrote through the host symlink");
      assert.ok(lstatSync(join(dest, "out", "report.txt")).isFile(), "the link was not replaced");
      assert.equal(readFileSync(join(dest, "out", "report.txt"), "utf8"), "PWNED\n");

      // Naming a link itself as the destination: refused, neither followed nor replaced.
      rmSync(join(dest, "out", "report.txt"));
      symlinkSync(victim, join(dest, "out", "report.txt"));
      const r = await cli([
        "--json",
        "cp",
        `${id}:/workspace/out/report.txt`,
        join(dest, "out", "report.txt"),
      ]);
      assert.notEqual(r.code, 0, show(r));
      assert.equal(JSON.parse(r.stderr).error.code, "invalid_argument", show(r));
      assert.equal(readFileSync(victim, "utf8"), "original\n", "the copy wrote through the host symlink");
      assert.ok(
        lstatSync(join(dest, "out", "report.txt")).isSymbolicLink(),
        "a link the user named was replaced",
      );
    });

    it("a link to a host directory is replaced, never entered, by a folder or a file copied into its folder", async () => {
      const victimDir = join(host, "victim-dir");
      mkdirSync(victimDir);
      const dest = join(host, "dest2");
      mkdirSync(dest);

      await sh(
        `mkdir -p /workspace/out2 && ln -s ${victimDir} /workspace/out2/res && ln -s ${victimDir} /workspace/out2/f`,
      );
      await cp(`${id}:/workspace/out2`, dest);
      assert.ok(lstatSync(join(dest, "out2", "res")).isSymbolicLink());

      await sh("mkdir -p /workspace/res && echo PWNED > /workspace/res/x && echo PWNED > /workspace/f");
      await cp(`${id}:/workspace/res`, join(dest, "out2"));
      await cp(`${id}:/workspace/f`, join(dest, "out2"));
      assert.deepEqual(readdirSync(victimDir), [], "a copy wrote into the linked host directory");
      assert.ok(lstatSync(join(dest, "out2", "res")).isDirectory(), "the link was not replaced by a folder");
      assert.equal(readFileSync(join(dest, "out2", "res", "x"), "utf8"), "PWNED\n");
      assert.ok(lstatSync(join(dest, "out2", "f")).isFile(), "the link was not replaced by the file");

      // Naming the link (with or without a trailing slash) or a FIFO, or a FIFO of the file's name: refused.
      symlinkSync(victimDir, join(dest, "out2", "g"));
      const fifo = join(dest, "out2", "fifo");
      assert.equal(spawnSync("mkfifo", [fifo]).status, 0, "mkfifo failed");
      await sh("echo PWNED > /workspace/fifo");
      const attempts: [string, string][] = [
        [`${id}:/workspace/f`, join(dest, "out2", "g")],
        [`${id}:/workspace/f`, `${join(dest, "out2", "g")}/`],
        [`${id}:/workspace/f`, fifo],
        [`${id}:/workspace/fifo`, join(dest, "out2")],
      ];
      for (const [from, to] of attempts) {
        const r = await cli(["--json", "cp", from, to]);
        assert.notEqual(r.code, 0, show(r));
        assert.equal(JSON.parse(r.stderr).error.code, "invalid_argument", show(r));
      }
      assert.deepEqual(readdirSync(victimDir), [], "a copy wrote into the linked host directory");
      assert.ok(lstatSync(fifo).isFIFO(), "the FIFO was replaced");
    });

    it("a name that is not UTF-8 fails a folder's copy before anything is written; never a copy that leaves it out", async () => {
      // Bytes 0xff 0xfe: a real tier's filesystem keeps them as they are; the virtual tier's store holds text only.
      await sh(
        `mkdir -p /workspace/raw/sub && printf x > /workspace/raw/ok && printf y > "/workspace/raw/sub/$(printf '\\377\\376')"`,
      );
      const listing = await cli([
        "exec",
        id,
        "--",
        "ls /workspace/raw/sub > /tmp/names && od -An -tx1 /tmp/names",
      ]);
      const dest = join(host, "raw");
      const r = await cli(["--json", "cp", `${id}:/workspace/raw`, dest]);
      const left = () => JSON.stringify(existsSync(dest) && readdirSync(dest, { recursive: true }));
      if (listing.code !== 0 || listing.stdout.includes("ff fe")) {
        assert.notEqual(r.code, 0, `the copy left the file out: ${left()}`);
        // Kiln's paths are UTF-8: such a name cannot be named, so not copied. (gVisor's ls fails on that folder: EINVAL.)
        assert.equal(JSON.parse(r.stderr).error.code, "unsupported", show(r));
        assert.ok(!existsSync(dest), "a partial copy was written");
      } else {
        assertExit(r, 0);
        assert.equal(readdirSync(join(dest, "sub")).length, 1, show(r));
      }
    });

    it("a link whose target is not UTF-8 fails a folder's copy as unsupported; never a link to another name", async () => {
      await sh(`mkdir -p /workspace/rawlink && ln -s "/tmp/$(printf '\\377')" /workspace/rawlink/l`);
      const raw = (
        await cli(["exec", id, "--", "readlink /workspace/rawlink/l | od -An -tx1"])
      ).stdout.includes("ff");
      const dest = join(host, "rawlink");
      const r = await cli(["--json", "cp", `${id}:/workspace/rawlink`, dest]);
      if (raw) {
        if (r.code === 0)
          assert.fail(`the copy made a link to ${JSON.stringify(readlinkSync(join(dest, "l")))}`);
        assert.equal(JSON.parse(r.stderr).error.code, "unsupported", show(r));
        assert.ok(!existsSync(dest), "a partial copy was written");
      } else {
        assertExit(r, 0);
        assert.ok(lstatSync(join(dest, "l")).isSymbolicLink(), show(r));
      }
    });

    it("a folder the sandbox cannot read fails the copy before anything is written; never an empty folder in its place", async () => {
      await sh(
        "mkdir -p /workspace/locked/sub && echo x > /workspace/locked/sub/f && chmod 000 /workspace/locked/sub",
      );
      // Root with CAP_DAC_OVERRIDE (the virtual tier, a VM's root) reads it anyway: then it is copied whole.
      const readable = (await cli(["exec", id, "--", "ls /workspace/locked/sub"])).code === 0;
      const dest = join(host, "locked");
      const r = await cli(["--json", "cp", `${id}:/workspace/locked`, dest]);
      if (readable) {
        assertExit(r, 0);
        assert.equal(readFileSync(join(dest, "sub", "f"), "utf8"), "x\n");
      } else {
        assert.notEqual(r.code, 0, `the copy went on without the folder: ${show(r)}`);
        assert.equal(JSON.parse(r.stderr).error.code, "invalid_argument", show(r));
        assert.ok(!existsSync(dest), "a partial copy was written");
      }
    });

    it("copies out drop setuid, setgid and sticky bits, create no FIFO, and belong to the invoking user", async () => {
      await sh(
        [
          "mkdir -p /workspace/suid/sticky",
          "printf tool > /workspace/suid/tool && chmod 4755 /workspace/suid/tool",
          "printf grp > /workspace/suid/grp && chmod 2755 /workspace/suid/grp",
          "chmod 1777 /workspace/suid/sticky && chmod 2775 /workspace/suid",
          // The virtual tier has no FIFOs; a real tier does.
          "{ command -v mkfifo >/dev/null && mkfifo /workspace/suid/pipe || true; }",
        ].join(" && "),
      );
      const h2 = join(host, "h2");
      await cp(`${id}:/workspace/suid`, h2);
      const mode = (p: string) => lstatSync(p).mode & 0o7777;
      assert.equal(mode(join(h2, "tool")).toString(8), "755");
      assert.equal(mode(join(h2, "grp")).toString(8), "755");
      assert.equal(mode(join(h2, "sticky")).toString(8), "777");
      assert.equal(mode(h2).toString(8), "775");
      assert.equal(readFileSync(join(h2, "tool"), "utf8"), "tool");
      const pipe = join(h2, "pipe");
      assert.ok(!existsSync(pipe), "the FIFO was copied out");
      for (const p of [h2, join(h2, "tool"), join(h2, "grp"), join(h2, "sticky")]) {
        const st = lstatSync(p);
        assert.deepEqual([st.uid, st.gid], [process.getuid?.(), process.getgid?.()], p);
      }

      // A single file keeps its permission bits, never the special ones.
      await cp(`${id}:/workspace/suid/tool`, join(host, "single"));
      assert.equal(mode(join(host, "single")).toString(8), "755");
    });
  });
}

runCpHostWrites("virtual");
runCpHostWrites("namespace");
runCpHostWrites("oci");
runCpHostWrites("gvisor");
runCpHostWrites("microvm"); // skipped where emulated: see EMULATED
