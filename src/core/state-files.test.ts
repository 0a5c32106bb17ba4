import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import {
  beginStateDir,
  commitStateDir,
  digestStateDir,
  parsePartial,
  removeStateDir,
} from "./state-files.ts";

const root = mkdtempSync(join(tmpdir(), "kiln-state-files-"));
after(() => rmSync(root, { recursive: true, force: true }));

test("a state directory is written under a partial name, then renamed whole, its files mode 0600", async () => {
  const final = join(root, "snap_a");
  const tmp = await beginStateDir(final, "123-456");
  assert.deepEqual(parsePartial(readdirSync(root)[0]!), { owner: "123-456", final: "snap_a" });
  writeFileSync(join(tmp, "workspace.img"), "data", { mode: 0o644 });
  const bytes = await commitStateDir(tmp, final);
  assert.ok(bytes > 0);
  assert.deepEqual(readdirSync(root), ["snap_a"]);
  assert.equal(statSync(join(final, "workspace.img")).mode & 0o777, 0o600);
  assert.equal(statSync(final).mode & 0o777, 0o700);
  await removeStateDir(final);
  assert.deepEqual(readdirSync(root), []);
});

test("the digest of a sparse file equals that of the same bytes written out, and changes with any byte", async () => {
  const a = join(root, "a");
  const b = join(root, "b");
  for (const d of [a, b]) execFileSync("mkdir", ["-p", d]);
  const size = 8 * 1024 * 1024 + 123;
  // a: sparse, data at two places; b: the same bytes, every block written.
  const fa = await open(join(a, "img"), "w");
  await fa.truncate(size);
  await fa.write(Buffer.from("head"), 0, 4, 10);
  await fa.write(Buffer.from("tail"), 0, 4, size - 4);
  await fa.close();
  const full = Buffer.alloc(size);
  full.write("head", 10);
  full.write("tail", size - 4);
  writeFileSync(join(b, "img"), full);
  assert.ok(statSync(join(a, "img")).blocks * 512 < size, "a is sparse");
  assert.equal(await digestStateDir(a), await digestStateDir(b));
  const before = await digestStateDir(a);
  const fh = await open(join(a, "img"), "r+");
  await fh.write(Buffer.from("X"), 0, 1, 5 * 1024 * 1024);
  await fh.close();
  assert.notEqual(await digestStateDir(a), before, "a byte written into a hole changes the digest");
});

test("a state directory holding a link is refused", async () => {
  const d = join(root, "linked");
  execFileSync("mkdir", ["-p", d]);
  symlinkSync("/etc/passwd", join(d, "workspace.img"));
  await assert.rejects(digestStateDir(d), { code: "invalid_argument" });
});
