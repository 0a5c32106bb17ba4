/**
 * The compiled CLI: `scripts/build-cli.mjs` compiles src/ into dist/ and
 * stamps it; the `kiln` command (bin/kiln, then bin/kiln.mjs) runs dist/ only
 * while it matches the sources, and the sources otherwise, so an edit is never
 * hidden by an old build. Each test works on a copy of the project's bin/,
 * scripts/ and src/ in a temporary directory (node_modules linked), never on
 * the tree's own dist/.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { freshCompiledEntry, STAMP, sourceFingerprint } from "../scripts/cli-build-stamp.mjs";

const ROOT = join(import.meta.dirname, "..");

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  const child = spawn(cmd, args, {
    env: { ...process.env, KILN_DEBUG: "1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => {
    stdout += d;
  });
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** A copy of the project that the build and the loader can run in. */
function copyProject(): string {
  const dir = mkdtempSync(join(tmpdir(), "kiln-build-"));
  for (const part of ["bin", "scripts", "src"])
    cpSync(join(ROOT, part), join(dir, part), { recursive: true });
  for (const file of ["package.json", "tsconfig.json", "tsconfig.build.json"])
    cpSync(join(ROOT, file), join(dir, file));
  symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
  return dir;
}

describe("the compiled CLI", { timeout: 600_000 }, () => {
  let dir = "";
  before(async () => {
    dir = copyProject();
    const r = await run(process.execPath, [join(dir, "scripts", "build-cli.mjs")]);
    assert.equal(r.code, 0, r.stderr);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("the build compiles every module and stamps dist/ with the sources it came from", () => {
    assert.ok(existsSync(join(dir, "dist", "cli", "main.js")));
    assert.ok(existsSync(join(dir, "dist", "tiers", "virtual", "python-worker.js")));
    assert.equal(
      readFileSync(join(dir, "dist", "tiers", "virtual", "python-driver.py"), "utf8"),
      readFileSync(join(dir, "src", "tiers", "virtual", "python-driver.py"), "utf8"),
      "the Python driver was not copied beside its module",
    );
    assert.ok(!existsSync(join(dir, "dist", "core", "limits.test.js")), "a test was compiled");
    const stamp = JSON.parse(readFileSync(join(dir, "dist", STAMP), "utf8"));
    assert.equal(stamp.fingerprint, sourceFingerprint(dir));
    assert.equal(freshCompiledEntry(dir), join(dir, "dist", "cli", "main.js"));
  });

  test("bin/kiln, reached through a symlink as npm links it, runs the compiled CLI", async () => {
    const link = join(dir, "link");
    mkdirSync(link, { recursive: true });
    symlinkSync(join(dir, "bin", "kiln"), join(link, "kiln"));
    const version = await run(join(link, "kiln"), ["--version"]);
    assert.equal(version.code, 0, version.stderr);
    assert.equal(version.stdout, "0.1.0\n");
    assert.match(version.stderr, /cli from .*\/dist\/cli\/main\.js/);

    const data = mkdtempSync(join(tmpdir(), "kiln-build-data-"));
    try {
      const r = await run(join(link, "kiln"), ["--data-dir", data, "run", "--", "echo hi | tr a-z A-Z"]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, "HI\n");
      // Python loads its driver from beside the compiled module.
      const py = await run(join(link, "kiln"), ["--data-dir", data, "run", "--", "python3 -c 'print(6*7)'"]);
      assert.equal(py.code, 0, py.stderr);
      assert.equal(py.stdout, "42\n");
      assert.match(py.stderr, /cli from .*\/dist\/cli\/main\.js/);
    } finally {
      rmSync(data, { recursive: true, force: true });
    }
  });

  test("an edited, added or removed source makes the build stale: the CLI runs the sources", async () => {
    const main = join(dir, "src", "cli", "main.ts");
    const original = readFileSync(main, "utf8");
    writeFileSync(main, original.replace('.version("0.1.0")', '.version("0.1.0-edited")'));
    const edited = await run(join(dir, "bin", "kiln"), ["--version"]);
    assert.equal(edited.code, 0, edited.stderr);
    assert.equal(edited.stdout, "0.1.0-edited\n", "the edit was not what ran");
    assert.match(edited.stderr, /cli from .*\/src\/cli\/main\.ts/);
    assert.equal(freshCompiledEntry(dir), undefined);

    const rebuilt = await run(process.execPath, [join(dir, "scripts", "build-cli.mjs")]);
    assert.equal(rebuilt.code, 0, rebuilt.stderr);
    assert.ok(freshCompiledEntry(dir));
    const extra = join(dir, "src", "cli", "extra.ts");
    writeFileSync(extra, "export const x = 1;\n");
    assert.equal(freshCompiledEntry(dir), undefined, "an added file went unnoticed");
    unlinkSync(extra);
    assert.ok(freshCompiledEntry(dir));
    const driver = join(dir, "src", "tiers", "virtual", "python-driver.py");
    writeFileSync(driver, `${readFileSync(driver, "utf8")}\n# edited\n`);
    assert.equal(freshCompiledEntry(dir), undefined, "an edited asset went unnoticed");
    unlinkSync(join(dir, "src", "cli", "commands", "doctor.ts"));
    assert.equal(freshCompiledEntry(dir), undefined, "a removed file went unnoticed");
  });

  test("without a build the CLI runs the sources", async () => {
    const bare = copyProject();
    try {
      const r = await run(join(bare, "bin", "kiln"), ["--version"]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /cli from .*\/src\/cli\/main\.ts/);
    } finally {
      rmSync(bare, { recursive: true, force: true });
    }
  });
});
