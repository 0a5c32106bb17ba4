/**
 * The host-side tar sink behind `kiln cp` out of a sandbox, fed archives no
 * honest sandbox would produce: an entry that turns a directory into a link
 * to a host directory, a file over a link, a file below a link, device nodes
 * and FIFOs, setuid modes. Nothing may be written (data, mode or times)
 * outside the destination, and nothing special may be created.
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
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import * as tarStream from "tar-stream";
import { hostTreeSink } from "../../src/workspace/host-tree.ts";
import { unpackTree } from "../../src/workspace/tar.ts";

type Entry = Partial<tarStream.Header> & { name: string; body?: string };

/** A tar archive of `entries`, as a web stream. */
function tarOf(entries: Entry[]): ReadableStream<Uint8Array> {
  const pack = tarStream.pack();
  for (const { body, ...h } of entries)
    pack.entry({ ...h, mtime: h.mtime ?? new Date(1_700_000_000_000) }, body ?? "");
  pack.finalize();
  return ReadableStream.from(pack as AsyncIterable<Uint8Array>);
}

let root = "";
before(() => {
  root = mkdtempSync(join(tmpdir(), "kiln-cp-sink-"));
});
after(() => rmSync(root, { recursive: true, force: true }));

/** A fresh destination and a victim directory beside it, with one file. */
function scene(name: string): { dest: string; victimDir: string; victim: string } {
  const dest = join(root, name, "dest");
  const victimDir = join(root, name, "victim");
  mkdirSync(dest, { recursive: true });
  mkdirSync(victimDir);
  const victim = join(victimDir, "victim.txt");
  writeFileSync(victim, "original\n");
  utimesSync(victim, 1000, 1000);
  utimesSync(victimDir, 1000, 1000);
  return { dest, victimDir, victim };
}

test("a directory entry later replaced by a link to a host directory: the directory's times are not set through it", async () => {
  const { dest, victimDir } = scene("dir-then-link");
  await unpackTree(
    tarOf([
      { name: "d/", type: "directory", mode: 0o755 },
      { name: "d", type: "symlink", linkname: victimDir },
    ]),
    hostTreeSink(dest),
  );
  assert.ok(lstatSync(join(dest, "d")).isSymbolicLink());
  assert.equal(statSync(victimDir).mtimeMs, 1_000_000, "the host directory's mtime was set through the link");
  assert.deepEqual(readdirSync(victimDir), ["victim.txt"]);
});

test("a file entry over the archive's own link to a host file is refused (invalid_argument); the host file is untouched", async () => {
  const { dest, victim } = scene("file-over-link");
  await assert.rejects(
    unpackTree(
      tarOf([
        { name: "l", type: "symlink", linkname: victim },
        { name: "l", type: "file", mode: 0o644, body: "PWNED\n" },
      ]),
      hostTreeSink(dest),
    ),
    (e: { code?: string }) => e.code === "invalid_argument",
  );
  assert.equal(readFileSync(victim, "utf8"), "original\n");
  assert.equal(statSync(victim).mtimeMs, 1_000_000, "the host file's mtime was set through the link");
});

test("a file entry below a link to a host directory is refused (invalid_argument) and writes nothing there", async () => {
  const { dest, victimDir } = scene("file-below-link");
  await assert.rejects(
    unpackTree(
      tarOf([
        { name: "l", type: "symlink", linkname: victimDir },
        { name: "l/victim.txt", type: "file", mode: 0o644, body: "PWNED\n" },
        { name: "l/new", type: "file", mode: 0o644, body: "PWNED\n" },
      ]),
      hostTreeSink(dest),
    ),
    (e: { code?: string }) => e.code === "invalid_argument",
  );
  assert.deepEqual(readdirSync(victimDir), ["victim.txt"]);
  assert.equal(readFileSync(join(victimDir, "victim.txt"), "utf8"), "original\n");
});

test("device nodes and FIFOs are never created; setuid, setgid and sticky bits are dropped; the rest is copied", async () => {
  const { dest } = scene("special");
  const skipped: string[] = [];
  await unpackTree(
    tarOf([
      { name: "chr", type: "character-device", mode: 0o666, devmajor: 1, devminor: 3 },
      { name: "blk", type: "block-device", mode: 0o660, devmajor: 7, devminor: 0 },
      { name: "fifo", type: "fifo", mode: 0o644 },
      { name: "suid", type: "file", mode: 0o4755, body: "x" },
      { name: "sgid/", type: "directory", mode: 0o2775 },
      { name: "sticky/", type: "directory", mode: 0o1777 },
      { name: "sgid/f", type: "file", mode: 0o2711, body: "y" },
    ]),
    hostTreeSink(dest, { onSkip: (path) => skipped.push(path) }),
  );
  for (const name of ["chr", "blk", "fifo"]) assert.ok(!existsSync(join(dest, name)), `${name} was created`);
  assert.deepEqual(skipped.sort(), ["blk", "chr", "fifo"]);
  const mode = (p: string) => (lstatSync(join(dest, p)).mode & 0o7777).toString(8);
  assert.deepEqual(
    [mode("suid"), mode("sgid"), mode("sticky"), mode("sgid/f")],
    ["755", "775", "777", "711"],
  );
  for (const p of ["suid", "sgid", "sticky", "sgid/f"]) {
    const st = lstatSync(join(dest, p));
    assert.deepEqual([st.uid, st.gid], [process.getuid?.(), process.getgid?.()], p);
  }
});

test("a member never replaces a FIFO of the host (invalid_argument)", async () => {
  const { dest } = scene("over-fifo");
  const fifo = join(dest, "fifo");
  assert.equal(spawnSync("mkfifo", [fifo]).status, 0, "mkfifo failed");
  for (const entry of [
    { name: "fifo", type: "file" as const, mode: 0o644, body: "x" },
    { name: "fifo", type: "symlink" as const, linkname: "/etc/passwd" },
    { name: "fifo/", type: "directory" as const, mode: 0o755 },
  ]) {
    await assert.rejects(
      unpackTree(tarOf([entry]), hostTreeSink(dest)),
      (e: { code?: string }) => e.code === "invalid_argument",
    );
    assert.ok(lstatSync(fifo).isFIFO(), `the FIFO was replaced by a ${entry.type}`);
  }
});

test("hard links and members that climb out with .. are refused", async () => {
  const { dest, victim } = scene("escape");
  await assert.rejects(
    unpackTree(
      tarOf([{ name: "../victim/victim.txt", type: "file", mode: 0o644, body: "PWNED\n" }]),
      hostTreeSink(dest),
    ),
    (e: { code?: string }) => e.code === "invalid_argument",
  );
  await assert.rejects(
    unpackTree(tarOf([{ name: "h", type: "link", linkname: victim }]), hostTreeSink(dest)),
    (e: { code?: string }) => e.code === "invalid_argument",
  );
  assert.equal(readFileSync(victim, "utf8"), "original\n");
  assert.deepEqual(readdirSync(dest), []);
});
