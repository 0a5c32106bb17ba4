/**
 * Kiln's host-side access to a volume (the E2B volume content API) against
 * what a sandbox can plant in it: symlinks to a host directory and file
 * (directly and through `..`), a FIFO, and a name that a separate process
 * keeps swapping between a directory and a symlink to the host directory
 * while Kiln writes, reads, lists and removes through it. Nothing outside the
 * volume is ever read, written, listed, chmod-ed or removed; a FIFO does not
 * hold a read open; every refusal is a typed error.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { VolumeFiles } from "../../src/index.ts";
import { rejectsWithCode } from "../conformance/suite.ts";

let root: string;
let vol: string;
let canary: string;
let files: VolumeFiles;

const bytes = (s: string) => new Blob([s]).stream();

/** The canary directory is exactly as made: one file, its content and mode unchanged. */
function canaryIntact(): void {
  assert.deepEqual(readdirSync(canary), ["secret.txt"]);
  assert.equal(readFileSync(join(canary, "secret.txt"), "utf8"), "host secret");
  assert.equal(statSync(join(canary, "secret.txt")).mode & 0o7777, 0o640);
}

before(() => {
  root = mkdtempSync(join(tmpdir(), "kiln-volume-content-"));
  vol = join(root, "vol");
  canary = join(root, "canary");
  mkdirSync(vol);
  mkdirSync(canary);
  writeFileSync(join(canary, "secret.txt"), "host secret", { mode: 0o640 });
  // What a sandbox can plant: links by absolute host path and by `..`, and a FIFO.
  symlinkSync(canary, join(vol, "link-dir"));
  symlinkSync(join(canary, "secret.txt"), join(vol, "link-file"));
  mkdirSync(join(vol, "dir"));
  symlinkSync("../../canary", join(vol, "dir", "up"));
  execFileSync("mkfifo", [join(vol, "fifo")]);
  files = new VolumeFiles(vol);
});
after(() => rmSync(root, { recursive: true, force: true }));

test("planted links and a FIFO: nothing outside the volume is read, written or changed", async () => {
  for (const p of ["link-file", "link-dir/secret.txt", "dir/up/secret.txt"])
    await rejectsWithCode(files.read(p), "invalid_argument");
  await rejectsWithCode(files.read("fifo"), "invalid_argument");
  await rejectsWithCode(files.read("../canary/secret.txt"), "invalid_argument");
  await rejectsWithCode(files.stat("dir/../../canary"), "invalid_argument");
  await rejectsWithCode(files.write("link-dir/new.txt", bytes("x"), { maxBytes: 100 }), "invalid_argument");
  await rejectsWithCode(files.write("dir/up/new.txt", bytes("x"), { maxBytes: 100 }), "invalid_argument");
  await rejectsWithCode(files.mkdir("link-dir/sub", { parents: true }), "invalid_argument");
  await rejectsWithCode(files.setMetadata("link-file", { mode: 0o777 }), "invalid_argument");
  await rejectsWithCode(files.setMetadata("link-dir", { mode: 0o777 }), "invalid_argument");
  await rejectsWithCode(files.list("link-dir"), "invalid_argument");
  await rejectsWithCode(files.remove("link-dir/secret.txt"), "invalid_argument");
  canaryIntact();

  // Links are described, never followed.
  const all = await files.list("/", 8);
  assert.deepEqual(
    all.map((e) => `${e.path}:${e.type}`),
    ["/dir:directory", "/dir/up:symlink", "/fifo:unknown", "/link-dir:symlink", "/link-file:symlink"],
  );
  assert.equal(all.find((e) => e.path === "/link-dir")?.target, canary);

  // Writing at a link's name replaces the link; removing one removes the link, not its target.
  await files.write("link-file", bytes("mine"), { maxBytes: 100 });
  assert.equal((await files.stat("link-file")).type, "file");
  await files.remove("link-dir");
  await files.remove("dir");
  canaryIntact();
  // A write over the size limit leaves nothing behind.
  await rejectsWithCode(files.write("big", bytes("x".repeat(200)), { maxBytes: 100 }), "limit_exceeded");
  assert.deepEqual(readdirSync(vol).sort(), ["fifo", "link-file"]);
});

test("a name swapped between a directory and a link while Kiln works through it never reaches the host", async () => {
  // A separate process swaps `race` as fast as it can, as a sandbox sharing the volume could.
  const swapper = spawn(
    "sh",
    ["-c", `cd ${vol} && while :; do rm -rf race; mkdir race; rm -rf race; ln -s ${canary} race; done`],
    { stdio: "ignore" },
  );
  try {
    for (let i = 0; i < 300; i++) {
      const ops = [
        files.write("race/f.txt", bytes("x"), { maxBytes: 10 }),
        files.mkdir("race/sub", { parents: true }),
        files.read("race/secret.txt"),
        files.list("race"),
        files.setMetadata("race/secret.txt", { mode: 0o777 }),
        files.remove("race/secret.txt"),
        files.remove("race/f.txt"),
      ];
      for (const r of await Promise.allSettled(ops)) {
        if (r.status === "fulfilled") {
          // What succeeded acted inside the volume: a list never shows the canary's file.
          if (Array.isArray(r.value)) assert.ok(!r.value.some((e) => e.name === "secret.txt"));
          continue;
        }
        assert.ok(
          ["invalid_argument", "not_found", "conflict"].includes((r.reason as { code?: string }).code ?? ""),
          String(r.reason),
        );
      }
      canaryIntact();
    }
  } finally {
    swapper.kill("SIGKILL");
  }
  canaryIntact();
});
