import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { AgentFsStore, nowNs, ROOT_INO, S_IFDIR, S_IFREG, SHELL_ROOT_KEY } from "./agentfs-store.ts";
import { FsError } from "./fs-error.ts";
import { adoptShellLayout, dropShellTree } from "./shell-layout.ts";
import { SqliteFs } from "./sqlite-fs.ts";

const dir = mkdtempSync(join(tmpdir(), "kiln-layout-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

/** A store as Kiln made them before the layout change: the shell's root at inode 1, the agent's files under /workspace. */
function oldLayoutStore(): {
  store: AgentFsStore;
  ids: { ws: number; file: number; sub: number; t: number };
} {
  const store = AgentFsStore.open(join(dir, `old-${n++}.db`));
  const ws = store.mknod(ROOT_INO, "workspace", S_IFDIR | 0o750);
  const tmp = store.mknod(ROOT_INO, "tmp", S_IFDIR | 0o1777);
  const file = store.mknod(ws, "hello.txt", S_IFREG | 0o600);
  store.write(file, 0, Buffer.from("hello\n"));
  const sub = store.mknod(ws, "sub", S_IFDIR | 0o755);
  store.link(file, sub, "hard");
  store.symlink(ws, "rel", "hello.txt");
  store.symlink(ws, "abs", "/tmp/t");
  const t = store.mknod(tmp, "t", S_IFREG | 0o644);
  store.write(t, 0, Buffer.from("tmp\n"));
  return { store, ids: { ws, file, sub, t } };
}

const text = (store: AgentFsStore, path: string) => {
  const ino = store.inodeAt(path);
  return Buffer.from(store.read(ino, 0, 1 << 20)).toString();
};

test("an old-layout store is converted: the agent's files at inode 1, the shell's paths unchanged, inodes kept", () => {
  const { store, ids } = oldLayoutStore();
  try {
    assert.equal(adoptShellLayout(store), true);
    assert.notEqual(store.root, ROOT_INO);
    // The shell's view: the same paths, the same inodes.
    assert.equal(store.inodeAt("/workspace"), ROOT_INO);
    assert.equal(store.inodeAt("/workspace/hello.txt"), ids.file);
    assert.equal(store.inodeAt("/workspace/sub/hard"), ids.file);
    assert.equal(store.inodeAt("/tmp/t"), ids.t);
    assert.equal(text(store, "/workspace/rel"), "hello\n");
    assert.equal(text(store, "/workspace/abs"), "tmp\n", "an absolute link starts at the shell's root");
    assert.equal(store.inodeAt("/workspace/.."), store.root);
    assert.equal(store.getattr(ROOT_INO).mode & 0o7777, 0o750, "the agent's directory keeps its mode");
    assert.equal(new SqliteFs(store).pathOf(ids.file), "/workspace/hello.txt");
    assert.deepEqual(
      store.readdir(store.root).map((d) => d.name),
      ["tmp", "workspace"],
    );
    // AgentFS's view (inode 1): only the agent's files.
    assert.deepEqual(
      store.readdir(ROOT_INO).map((d) => d.name),
      ["abs", "hello.txt", "rel", "sub"],
    );
    assert.equal(
      store.db.prepare("SELECT value FROM fs_config WHERE key = ?").get(SHELL_ROOT_KEY)?.value,
      String(store.root),
    );
    // Once is enough; a reopened store starts at the shell's root.
    assert.equal(adoptShellLayout(store), false);
    const path = store.db.location()!;
    store.close();
    const again = AgentFsStore.open(path);
    try {
      assert.equal(adoptShellLayout(again), false);
      assert.equal(text(again, "/workspace/sub/hard"), "hello\n");
    } finally {
      again.close();
    }
  } finally {
    store.close();
  }
});

test("a new or emptied store gets the layout with an empty agent's directory", () => {
  const store = AgentFsStore.open(join(dir, `new-${n++}.db`));
  try {
    assert.equal(adoptShellLayout(store), true);
    assert.equal(store.inodeAt("/workspace"), ROOT_INO);
    assert.deepEqual(store.readdir(ROOT_INO), []);
    // Emptied (as a sandbox's tables are when it leaves the tier) and laid out again.
    store.db.exec("DELETE FROM fs_dentry; DELETE FROM fs_inode WHERE ino <> 1;");
    assert.equal(adoptShellLayout(store), true);
    assert.equal(store.inodeAt("/workspace"), ROOT_INO);
  } finally {
    store.close();
  }
});

test("the agent's directory is kept like a mount point: rm -r empties it, then EBUSY; it cannot be moved or replaced", async () => {
  const { store } = oldLayoutStore();
  try {
    adoptShellLayout(store);
    const fs = new SqliteFs(store);
    const busy = (e: unknown) => e instanceof FsError && e.code === "EBUSY";
    await assert.rejects(fs.rm("/workspace", { recursive: true, force: true }), busy);
    assert.equal(store.inodeAt("/workspace"), ROOT_INO);
    assert.deepEqual(store.readdir(ROOT_INO), []);
    await assert.rejects(fs.mv("/workspace", "/tmp/w"), busy);
    await fs.mkdir("/tmp/empty");
    await assert.rejects(fs.mv("/tmp/empty", "/workspace"), busy);
    await assert.rejects(fs.rm("/workspace"), busy);
    assert.equal(store.inodeAt("/workspace"), ROOT_INO);
    // Its contents behave as anywhere else.
    await fs.writeFile("/workspace/x", "x");
    await fs.mv("/workspace/x", "/tmp/x");
    assert.equal(text(store, "/tmp/x"), "x");
  } finally {
    store.close();
  }
});

test("dropShellTree leaves AgentFS's view alone: only the agent's files, from inode 1", () => {
  const { store, ids } = oldLayoutStore();
  try {
    adoptShellLayout(store);
    const shell = store.root;
    dropShellTree(store);
    assert.equal(store.root, ROOT_INO);
    assert.equal(store.inodeAt("/hello.txt"), ids.file);
    assert.equal(text(store, "/sub/hard"), "hello\n");
    assert.equal(
      store.db.prepare("SELECT ino FROM fs_inode WHERE ino IN (?, ?)").all(shell, ids.t).length,
      0,
    );
    assert.equal(store.db.prepare("SELECT 1 FROM fs_dentry WHERE ino = ?").get(ROOT_INO), undefined);
    assert.equal(
      store.db.prepare("SELECT value FROM fs_config WHERE key = ?").get(SHELL_ROOT_KEY),
      undefined,
    );
    // Any other AgentFS file is left as it is, a top-level "workspace" folder included.
    const other = AgentFsStore.open(join(dir, `plain-${n++}.db`));
    try {
      other.mknod(ROOT_INO, "workspace", S_IFDIR | 0o755);
      other.mknod(ROOT_INO, "notes", S_IFDIR | 0o755);
      dropShellTree(other);
      assert.deepEqual(
        other.readdir(ROOT_INO).map((d) => d.name),
        ["notes", "workspace"],
      );
    } finally {
      other.close();
    }
  } finally {
    store.close();
  }
});

test("inode times are kept to the nanosecond, and two changes in a row never share an mtime", () => {
  const store = AgentFsStore.open(join(dir, `times-${n++}.db`));
  try {
    let last = nowNs();
    for (let i = 0; i < 1000; i++) {
      const t = nowNs();
      assert.ok(t > last, "the clock went back or stood still");
      last = t;
    }
    assert.ok(last - BigInt(Date.now()) * 1_000_000n < 2_000_000n, "the clock is not the wall clock");
    const times: bigint[] = [];
    for (let i = 0; i < 20; i++) {
      const ino = store.mknod(ROOT_INO, `f${i}`, S_IFREG | 0o644);
      store.write(ino, 0, Buffer.from("x"));
      times.push(store.getattr(ino).mtimeNs);
    }
    for (let i = 1; i < times.length; i++) assert.ok(times[i]! > times[i - 1]!);
    // Not whole milliseconds: the odds that 20 nanosecond values all end in 000000 are nil.
    assert.ok(
      times.some((t) => t % 1_000_000n !== 0n),
      `${times}`,
    );
    const row = store.db
      .prepare("SELECT mtime, mtime_nsec FROM fs_inode WHERE ino = ?")
      .get(store.inodeAt("/f0"))!;
    assert.equal(BigInt(Number(row.mtime)) * 1_000_000_000n + BigInt(Number(row.mtime_nsec)), times[0]);
    // A time set in ms (touch -d, utimes) is stored as given.
    const ino = store.inodeAt("/f1");
    store.setattr(ino, { mtimeMs: 1_700_000_000_123 });
    assert.equal(store.getattr(ino).mtimeNs, 1_700_000_000_123_000_000n);
  } finally {
    store.close();
  }
});
