/**
 * The virtual tier's shell against GNU bash and coreutils on a real disk, for
 * faults that once made it differ: each case's expected output is what the
 * namespace tier (Debian's bash 5.2, coreutils 9.1, sed 4.9) prints, with one
 * known difference: bash prefixes its own errors with "line N: " under
 * `bash -c`, which just-bash does not (see test/differential/known-differences.ts).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { Kiln, type Sandbox } from "../../index.ts";

interface Case {
  fault: string;
  script: string;
  stdout: string;
  stderr?: string;
  exitCode?: number;
}

const CASES: Case[] = [
  // 1. A redirection that cannot open its file: bash's errno text, that command alone.
  {
    fault: "redirection",
    script: "echo a > f; cat < f/x; echo $?",
    stdout: "1\n",
    stderr: "bash: f/x: Not a directory\n",
  },
  {
    fault: "redirection",
    script: "f() { echo in; echo x > nodir/f; echo $?; }; for i in 1; do f; done | cat; echo after",
    stdout: "in\n1\nafter\n",
    stderr: "bash: nodir/f: No such file or directory\n",
  },
  // 2. Same-file checks need a device id.
  { fault: "device id", script: "echo a > f; echo b > g; mv f g; echo $?; cat g; ls", stdout: "0\na\ng\n" },
  {
    fault: "device id",
    script: "seq 10 > f; split -l 3 f; ls; cat xab",
    stdout: "f\nxaa\nxab\nxac\nxad\n4\n5\n6\n",
  },
  {
    fault: "device id",
    script: "echo a > f; cp f f; echo $?",
    stdout: "1\n",
    stderr: "cp: 'f' and 'f' are the same file\n",
  },
  // 3. Substitutions inside arithmetic and indirect expansions run in the command's cwd; OLDPWD starts unset.
  {
    fault: "cwd",
    script: 'mkdir sub; cd sub; a=(1 2); x="a[\\$(pwd >&2; echo 0)]"; echo $((x))',
    stdout: "1\n",
    stderr: "{cwd}/sub\n",
  },
  {
    fault: "cwd",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a bash script
    script: 'mkdir sub; cd sub; x="a[\\$(pwd >&2; echo 0)]"; echo "${!x}"',
    stdout: "\n",
    stderr: "{cwd}/sub\n",
  },
  {
    fault: "cwd",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a bash script
    script: "mkdir sub; cd sub; a=(1 2); unset 'a[$(pwd >&2; echo 0)]'; echo \"${a[@]}\"",
    stdout: "2\n",
    stderr: "{cwd}/sub\n",
  },
  {
    fault: "cwd",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a bash script
    script: 'echo "[${OLDPWD-unset}]"; cd /tmp; cd - >/dev/null; pwd',
    stdout: "[unset]\n{cwd}\n",
  },
  // 4. sed -i replaces a symlink with a regular file, as GNU sed does.
  {
    fault: "sed -i",
    script: "echo a > t; ln -s t l; sed -i s/a/b/ l; ls -l l | cut -c1; cat t l",
    stdout: "-\na\nb\n",
  },
  // 5. The system's directories and devices.
  { fault: "system dirs", script: "which ls; echo $?", stdout: "/usr/bin/ls\n0\n" },
  { fault: "system dirs", script: "/bin/echo x; /usr/bin/printf '%s\\n' y", stdout: "x\ny\n" },
  { fault: "system dirs", script: "head -c 100 /dev/urandom | wc -c", stdout: "100\n" },
  { fault: "system dirs", script: "head -c 5 /dev/zero | od -An -c", stdout: "  \\0  \\0  \\0  \\0  \\0\n" },
  {
    fault: "system dirs",
    script: "ls -l /dev/null | cut -c1; echo x > /dev/null; cat /dev/null | wc -c",
    stdout: "c\n0\n",
  },
  {
    fault: "system dirs",
    script: "test -d /proc && echo proc; test -d /bin && echo bin; test -d /usr/bin && echo usrbin",
    stdout: "proc\nbin\nusrbin\n",
  },
  // 6. GNU's error messages, blaming the right file.
  {
    fault: "messages",
    script: "touch a/b/c; echo $?",
    stdout: "1\n",
    stderr: "touch: cannot touch 'a/b/c': No such file or directory\n",
  },
  {
    fault: "messages",
    script: "echo x > f; cp f nodir/g; echo $?",
    stdout: "1\n",
    stderr: "cp: cannot create regular file 'nodir/g': No such file or directory\n",
  },
  {
    fault: "messages",
    script: "touch f; mkdir -p f/g; echo $?",
    stdout: "1\n",
    stderr: "mkdir: cannot create directory ‘f’: Not a directory\n",
  },
  {
    fault: "messages",
    script: "touch f; mkdir f/g; echo $?",
    stdout: "1\n",
    stderr: "mkdir: cannot create directory ‘f/g’: Not a directory\n",
  },
  {
    fault: "messages",
    script: "echo x > f; cat f/g; echo $?",
    stdout: "1\n",
    stderr: "cat: f/g: Not a directory\n",
  },
  // 7. ls shows symlinks and true modes.
  {
    fault: "ls",
    script:
      'echo x > f; ln -s f l; ls -la | grep -- "->" | cut -c1-10; ls -l l | cut -c1-10; ls -l l | grep -o "l -> f"',
    stdout: "lrwxrwxrwx\nlrwxrwxrwx\nl -> f\n",
  },
  {
    fault: "ls",
    script:
      "echo x > f; chmod 600 f; ls -l f | cut -c1-10; stat -c %a f; mkdir d; chmod 700 d; ls -ld d | cut -c1-10",
    stdout: "-rw-------\n600\ndrwx------\n",
  },
];

describe("the virtual tier's shell matches GNU bash on a real disk", () => {
  let dir = "";
  let kiln: Kiln;
  let sb: Sandbox;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "kiln-fidelity-"));
    kiln = await Kiln.open({ dataDir: dir });
    sb = await kiln.create({ tier: "virtual" });
  });
  after(async () => {
    await kiln.close();
    rmSync(dir, { recursive: true, force: true });
  });

  CASES.forEach((c, i) => {
    test(`${c.fault}: ${c.script}`, async () => {
      const cwd = `/workspace/case-${i}`;
      await sb.files.makeDir(cwd);
      const r = await sb.commands.run(c.script, { cwd });
      assert.deepEqual(
        { stdout: r.stdout, stderr: r.stderr, exitCode: r.exitCode },
        {
          stdout: c.stdout.replaceAll("{cwd}", cwd),
          stderr: (c.stderr ?? "").replaceAll("{cwd}", cwd),
          exitCode: c.exitCode ?? 0,
        },
      );
    });
  });
});
