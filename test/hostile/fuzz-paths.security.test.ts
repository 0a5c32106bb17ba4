/**
 * Property-based tests of path normalisation: `sandboxPath` (every API path)
 * and `safeMemberPath` (every tar member). A path is refused as
 * `invalid_argument` exactly when it is empty, has a NUL byte or a `..`
 * segment, or is over 4096 bytes; otherwise it becomes one canonical absolute
 * path under the working directory (or where it said), and a file written
 * there on a real sandbox is found there. Known cases come from
 * `corpus/paths.json`.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, posix } from "node:path";
import { after, before, test } from "node:test";
import fc from "fast-check";
import { InvalidArgumentError, KilnError } from "../../src/core/errors.ts";
import { MAX_PATH_BYTES, sandboxPath } from "../../src/core/paths.ts";
import { Kiln, type Sandbox } from "../../src/index.ts";
import { safeMemberPath } from "../../src/workspace/tar.ts";
import { loadCorpus } from "./corpus.ts";

const corpus = (loadCorpus("paths.json") as { paths: string[] }).paths;

const segment = fc.oneof(
  fc.constantFrom("", ".", "..", "...", "a", "workspace", "etc", "~", " ", "\\..", "\0", "ü", "😀"),
  fc.string({ maxLength: 6 }),
);
const pathArb = fc.oneof(
  fc.array(segment, { maxLength: 8 }).map((s) => s.join("/")),
  fc.string({ maxLength: 30 }),
  fc.integer({ min: 4090, max: 4100 }).map((n) => `/${"a".repeat(n - 1)}`),
);
const cwdArb = fc.constantFrom("/", "/workspace", "/home/user", "/a b/ü");

function refused(p: string): boolean {
  return (
    p.length === 0 || p.includes("\0") || Buffer.byteLength(p) > MAX_PATH_BYTES || p.split("/").includes("..")
  );
}

function checkSandboxPath(p: string, cwd: string): void {
  let r: string;
  try {
    r = sandboxPath(p, cwd);
  } catch (e) {
    assert.ok(e instanceof InvalidArgumentError, String(e));
    assert.equal(e.code, "invalid_argument");
    assert.ok(refused(p), `refused a good path: ${JSON.stringify(p)}`);
    return;
  }
  assert.ok(!refused(p), `accepted a bad path: ${JSON.stringify(p)}`);
  assert.ok(r.startsWith("/"), r);
  assert.equal(posix.normalize(r), r, "not canonical");
  assert.ok(r === "/" || !r.endsWith("/"), r);
  assert.ok(!r.split("/").includes(".."), r);
  if (!p.startsWith("/")) assert.ok(r === cwd || r.startsWith(cwd === "/" ? "/" : `${cwd}/`), r);
  assert.equal(sandboxPath(r, "/"), r, "not idempotent");
}

function checkMember(name: string): void {
  let r: string;
  try {
    r = safeMemberPath(name);
  } catch (e) {
    assert.ok(e instanceof InvalidArgumentError, String(e));
    return;
  }
  assert.ok(!r.startsWith("/") && !r.endsWith("/"), r);
  assert.ok(!r.split("/").includes(".."), r);
  const root = "/import/root";
  const joined = posix.join(root, r);
  assert.ok(joined === root || joined.startsWith(`${root}/`), `${name} escapes to ${joined}`);
}

test("fuzz: sandboxPath refuses exactly the bad paths and canonicalises the rest", () => {
  for (const p of corpus) for (const cwd of ["/", "/workspace"]) checkSandboxPath(p, cwd);
  fc.assert(fc.property(pathArb, cwdArb, checkSandboxPath), { numRuns: 5000 });
  for (const bad of [undefined, null, 1, {}, ["a"]])
    assert.throws(() => sandboxPath(bad), InvalidArgumentError);
});

test("fuzz: a tar member path never leaves the folder it is unpacked into", () => {
  for (const p of corpus) checkMember(p);
  fc.assert(fc.property(pathArb, checkMember), { numRuns: 5000 });
});

let dir: string;
let kiln: Kiln;
let sb: Sandbox;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "kiln-fuzz-paths-"));
  kiln = await Kiln.open({ dataDir: dir });
  sb = await kiln.create({ tier: "virtual" });
});
after(async () => {
  await kiln.close();
  rmSync(dir, { recursive: true, force: true });
});

test("fuzz: on a real sandbox, a file written at any accepted path is read back at its canonical path", async () => {
  const shortPath = fc.oneof(
    fc.constantFrom(...corpus),
    fc.array(segment, { minLength: 1, maxLength: 5 }).map((s) => s.join("/")),
  );
  let n = 0;
  await fc.assert(
    fc.asyncProperty(shortPath, async (p) => {
      const content = `c${++n}`;
      try {
        await sb.files.write(p, content);
      } catch (e) {
        assert.ok(e instanceof KilnError, String((e as Error)?.stack ?? e));
        // A refused path, or a place a file cannot be (a directory, under a file, the root).
        assert.ok(["invalid_argument", "conflict", "not_found"].includes(e.code), `${e.code}: ${e.message}`);
        if (refused(p)) assert.equal(e.code, "invalid_argument");
        return;
      }
      assert.equal(await sb.files.read(sandboxPath(p)), content);
    }),
    { numRuns: 200 },
  );
  assert.equal((await sb.commands.run("echo ok")).stdout, "ok\n");
});
