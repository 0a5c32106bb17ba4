/**
 * The state verbs of the `kiln` command, as a user runs them (the real CLI
 * as a child process, virtual tier): `snapshot ID`, `snapshot ls`,
 * `create --snapshot`, `fork -n`, `pause` (ls shows the sandbox paused),
 * `exec` on a paused sandbox (it resumes), `resume`, `snapshot rm`.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { assertExit, kiln, show } from "./cli-run.ts";
import { tierRequired } from "./conformance/suite.ts";

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "kiln-cli-state-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const stateOf = async (id: string): Promise<string> => {
  const ls = await kiln(dir, ["ls", "--json"]);
  assertExit(ls, 0);
  return (JSON.parse(ls.stdout) as { id: string; state: string }[]).find((s) => s.id === id)?.state ?? "gone";
};

test("snapshot, create from it, fork, pause, resume and remove through the CLI", async () => {
  const c = await kiln(dir, ["create"]);
  assertExit(c, 0);
  const id = c.stdout.trim();
  assertExit(await kiln(dir, ["exec", id, "--", "echo saved > /workspace/f.txt"]), 0);

  const s = await kiln(dir, ["snapshot", id, "--name", "first"]);
  assertExit(s, 0);
  assert.match(s.stdout, /^snap_[a-z0-9]{20}\n$/, show(s));
  const snap = s.stdout.trim();
  const ls = await kiln(dir, ["snapshot", "ls"]);
  assertExit(ls, 0);
  assert.match(ls.stdout, new RegExp(`${snap}\\s+first\\s+virtual`), show(ls));

  assertExit(await kiln(dir, ["exec", id, "--", "echo later > /workspace/f.txt"]), 0);
  const copy = await kiln(dir, ["create", "--snapshot", snap]);
  assertExit(copy, 0);
  const cat = await kiln(dir, ["exec", copy.stdout.trim(), "--", "cat /workspace/f.txt"]);
  assert.equal(cat.stdout, "saved\n", show(cat));

  const f = await kiln(dir, ["fork", id, "-n", "2"]);
  assertExit(f, 0);
  const forks = f.stdout.trim().split("\n");
  assert.equal(forks.length, 2, show(f));
  for (const fk of forks) {
    assert.match(fk, /^sb_[a-z0-9]{20}$/);
    assert.equal((await kiln(dir, ["exec", fk, "--", "cat /workspace/f.txt"])).stdout, "later\n");
  }

  assertExit(await kiln(dir, ["pause", id]), 0);
  assert.equal(await stateOf(id), "paused");
  const table = await kiln(dir, ["ls"]);
  // A paused sandbox is listed with what it keeps on disk.
  assert.match(
    table.stdout,
    new RegExp(`${id}\\s+virtual\\s+default\\s+paused\\s+\\d+(\\.\\d)? [KMG]iB`),
    show(table),
  );
  // Any call resumes it.
  assert.equal((await kiln(dir, ["exec", id, "--", "cat /workspace/f.txt"])).stdout, "later\n");
  assert.equal(await stateOf(id), "running");
  assertExit(await kiln(dir, ["pause", id]), 0);
  assertExit(await kiln(dir, ["resume", id]), 0);
  assert.equal(await stateOf(id), "running");

  assertExit(await kiln(dir, ["snapshot", "rm", snap]), 0);
  const again = await kiln(dir, ["--json", "snapshot", "rm", snap]);
  assertExit(again, 1);
  assert.equal(JSON.parse(again.stderr).error.code, "not_found", show(again));
});

test("volumes through the CLI: create, ls, create --volume, rm refused while mounted, rm", async (t) => {
  const { Kiln } = await import("../src/index.ts");
  const probe = await Kiln.open({ dataDir: join(dir, "probe") });
  const ns = (await probe.doctor()).find((s) => s.tier === "namespace");
  await probe.close();
  if (!ns?.available) {
    if (tierRequired("namespace")) assert.fail(`tier namespace required but unavailable: ${ns?.reason}`);
    t.skip(`tier namespace unavailable: ${ns?.reason}`);
    return;
  }
  const v = await kiln(dir, ["volume", "create", "cache"]);
  assertExit(v, 0);
  assert.match(v.stdout, /^vol_[a-z0-9]{20}\n$/, show(v));
  const vid = v.stdout.trim();
  const ls = await kiln(dir, ["volume", "ls"]);
  assert.match(ls.stdout, new RegExp(`${vid}\\s+cache`), show(ls));
  // A usage error (exit 2), with its code.
  const bad = await kiln(dir, ["--json", "create", "--tier", "namespace", "--volume", "cache"]);
  assertExit(bad, 2);
  assert.equal(JSON.parse(bad.stderr).error.code, "invalid_argument", show(bad));

  const c = await kiln(dir, ["create", "--tier", "namespace", "--volume", "cache:/mnt/cache"]);
  assertExit(c, 0);
  const id = c.stdout.trim();
  assertExit(await kiln(dir, ["exec", id, "--", "echo kept > /mnt/cache/f"]), 0);
  const busy = await kiln(dir, ["--json", "volume", "rm", "cache"]);
  assertExit(busy, 1);
  assert.equal(JSON.parse(busy.stderr).error.code, "conflict", show(busy));
  assertExit(await kiln(dir, ["rm", id]), 0);
  const again = await kiln(dir, ["create", "--tier", "namespace", "--volume", `${vid}:/mnt/c`]);
  assertExit(again, 0);
  assert.equal((await kiln(dir, ["exec", again.stdout.trim(), "--", "cat /mnt/c/f"])).stdout, "kept\n");
  assertExit(await kiln(dir, ["rm", again.stdout.trim()]), 0);
  assertExit(await kiln(dir, ["volume", "rm", "cache"]), 0);
  assert.doesNotMatch((await kiln(dir, ["volume", "ls"])).stdout, /cache/);
});
