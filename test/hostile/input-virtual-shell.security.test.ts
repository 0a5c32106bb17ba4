/**
 * The virtual tier's shell, given scripts that hit its edges: a redirection
 * that cannot open its file fails that one command, as bash does (the rest of
 * the script runs, the error is bash's), and an expansion past a limit fails
 * loudly with the limit named, never with a silently shortened answer. Each
 * redirection case is also run by the host's bash, whose output and exit
 * status the virtual tier must match.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Kiln, type Sandbox } from "../../src/index.ts";
import { rejectsWithCode } from "../conformance/suite.ts";

describe("the virtual tier's shell at its edges", () => {
  let dir = "";
  let kiln: Kiln;
  let sb: Sandbox;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "kiln-vshell-"));
    kiln = await Kiln.open({ dataDir: dir });
    sb = await kiln.create();
  });
  after(async () => {
    await kiln.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** What the host's bash makes of `script`, in an empty directory (its "line N: " prefix dropped). */
  function hostBash(script: string): { stdout: string; stderr: string; exitCode: number } {
    const cwd = mkdtempSync(join(tmpdir(), "kiln-vshell-bash-"));
    try {
      const r = spawnSync("bash", ["-c", script], { cwd, encoding: "utf8" });
      return {
        stdout: r.stdout,
        stderr: r.stderr.replace(/^bash: line \d+: /gm, "bash: "),
        exitCode: r.status ?? -1,
      };
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  }

  const cases: { script: string; stdout: string; stderr: string; exitCode: number }[] = [
    {
      script: "echo before; echo hi > nodir/x; echo after",
      stdout: "before\nafter\n",
      stderr: "bash: nodir/x: No such file or directory\n",
      exitCode: 0,
    },
    {
      script: "echo hi > nodir/x; echo $?",
      stdout: "1\n",
      stderr: "bash: nodir/x: No such file or directory\n",
      exitCode: 0,
    },
    {
      script: "echo before; echo hi >> nodir/x",
      stdout: "before\n",
      stderr: "bash: nodir/x: No such file or directory\n",
      exitCode: 1,
    },
    {
      script: "printf x > f; echo hi > f/sub; echo after $?",
      stdout: "after 1\n",
      stderr: "bash: f/sub: Not a directory\n",
      exitCode: 0,
    },
  ];

  for (const c of cases)
    test(`a redirection that cannot open its file fails that command alone, as in bash: ${c.script}`, async () => {
      const cwd = `/workspace/case-${cases.indexOf(c)}`;
      await sb.files.makeDir(cwd);
      const r = await sb.commands.run(c.script, { cwd });
      assert.deepEqual(
        { stdout: r.stdout, stderr: r.stderr, exitCode: r.exitCode },
        { stdout: c.stdout, stderr: c.stderr, exitCode: c.exitCode },
      );
      const bash = hostBash(c.script);
      assert.deepEqual(
        { stdout: bash.stdout, exitCode: bash.exitCode },
        { stdout: c.stdout, exitCode: c.exitCode },
        "the host's bash disagrees with this case",
      );
      assert.match(bash.stderr, /^bash: .*(No such file or directory|Not a directory)\n$/);
    });

  test("a brace expansion past maxLoopIterations fails with limit_exceeded naming it, never a short answer", async () => {
    const e = await rejectsWithCode(sb.commands.run("echo {1..100000000} | wc -c"), "limit_exceeded");
    assert.equal(e.limit, "maxLoopIterations");
    const small = await kiln.create({ limits: { maxLoopIterations: 1000 } });
    try {
      // One expansion may take up to maxLoopIterations words and as many steps (about two per word).
      assert.equal((await small.commands.run("echo {1..400} | wc -w")).stdout.trim(), "400");
      const e2 = await rejectsWithCode(small.commands.run("echo {1..1001} | wc -w"), "limit_exceeded");
      assert.equal(e2.limit, "maxLoopIterations");
      const e3 = await rejectsWithCode(small.commands.run("echo {a..z}{0..99} | wc -w"), "limit_exceeded");
      assert.equal(e3.limit, "maxLoopIterations");
    } finally {
      await small.kill();
    }
  });

  test("ranges below the limit expand in full (no silent cap at 10,000 words)", async () => {
    assert.equal((await sb.commands.run("for i in {1..20000}; do :; done; echo $i")).stdout, "20000\n");
    assert.equal((await sb.commands.run("echo {1..50000} | wc -w")).stdout.trim(), "50000");
  });

  test("seq past maxLoopIterations is limit_exceeded naming it", async () => {
    const e = await rejectsWithCode(sb.commands.run("seq 1 200000 | wc -l"), "limit_exceeded");
    assert.equal(e.limit, "maxLoopIterations");
  });
});
