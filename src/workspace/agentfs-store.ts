/**
 * A POSIX filesystem in one SQLite file, in AgentFS's published schema
 * (fs_config, fs_inode, fs_dentry, fs_data, fs_symlink, kv_store, tool_calls),
 * so a Kiln workspace opens in AgentFS's own tools and vice versa.
 *
 * The store is synchronous (node:sqlite) and inode-based, so that it serves
 * both just-bash (through an async adapter) and the WASM runtimes (through an
 * Emscripten filesystem in a worker thread that opens the same file). File
 * contents live in fixed-size chunks (fs_config.chunk_size), so reads and
 * writes touch only the chunks they need: a 50 MB file is never loaded whole.
 *
 * Several connections may open one file (WAL mode, busy timeout), e.g. the
 * Kiln process and a Python worker.
 */
import { constants, copyFileSync, existsSync, renameSync } from "node:fs";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { TOOL_CALLS_SCHEMA } from "../core/audit-log.ts";
import { assertNotLockedByAnotherProgram, StatementCache } from "../core/sqlite.ts";
import { FsError } from "./fs-error.ts";

/** File type bits. */
export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;
/** AgentFS's root directory's inode number: in Kiln's layout, the agent's directory (`/workspace`). */
export const ROOT_INO = 1;
/** fs_config key holding the inode of the shell's root directory, in Kiln's layout (see `shell-layout.ts`). */
export const SHELL_ROOT_KEY = "kiln.shell_root";
/** Chunk size of new stores, in bytes (AgentFS's default). */
export const DEFAULT_CHUNK_SIZE = 4096;
/**
 * `PRAGMA user_version` of a database whose schema Kiln has created (skips re-creating it).
 * 2: virtual sandboxes' stores have the agent's files at the AgentFS root (`shell-layout.ts`).
 */
export const SCHEMA_USER_VERSION = 2;
/** Symlinks followed in one path walk before ELOOP. */
const MAX_SYMLINK_HOPS = 40;

/** One row of fs_inode, with times in ms (and the modification time to the nanosecond). */
export interface Inode {
  ino: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  size: number;
  atimeMs: number;
  mtimeMs: number;
  ctimeMs: number;
  /** Modification time in ns since the epoch, as stored (seconds and nanoseconds). */
  mtimeNs: bigint;
}

/** A directory entry with its inode's mode. */
export interface Dirent {
  name: string;
  ino: number;
  mode: number;
}

/** Options of {@link AgentFsStore.open}. */
export interface StoreOptions {
  /** Bytes the database may grow to (the workspace disk limit); default unlimited. */
  maxBytes?: number;
  /** Whether to look for another program's lock on the file first (a file just made cannot have one); default true. */
  checkForeignLock?: boolean;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS fs_config (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS fs_inode (
  ino INTEGER PRIMARY KEY AUTOINCREMENT,
  mode INTEGER NOT NULL,
  nlink INTEGER NOT NULL DEFAULT 0,
  uid INTEGER NOT NULL DEFAULT 0,
  gid INTEGER NOT NULL DEFAULT 0,
  size INTEGER NOT NULL DEFAULT 0,
  atime INTEGER NOT NULL,
  mtime INTEGER NOT NULL,
  ctime INTEGER NOT NULL,
  rdev INTEGER NOT NULL DEFAULT 0,
  atime_nsec INTEGER NOT NULL DEFAULT 0,
  mtime_nsec INTEGER NOT NULL DEFAULT 0,
  ctime_nsec INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS fs_dentry (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  parent_ino INTEGER NOT NULL,
  ino INTEGER NOT NULL,
  UNIQUE(parent_ino, name)
);
CREATE INDEX IF NOT EXISTS idx_fs_dentry_parent ON fs_dentry(parent_ino, name);
CREATE TABLE IF NOT EXISTS fs_data (
  ino INTEGER NOT NULL,
  chunk_index INTEGER NOT NULL,
  data BLOB NOT NULL,
  PRIMARY KEY (ino, chunk_index)
);
CREATE TABLE IF NOT EXISTS fs_symlink (ino INTEGER PRIMARY KEY, target TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kv_store (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL,
  created_at INTEGER DEFAULT (unixepoch()),
  updated_at INTEGER DEFAULT (unixepoch())
);
CREATE INDEX IF NOT EXISTS idx_kv_store_created_at ON kv_store(created_at);
${TOOL_CALLS_SCHEMA}
`;

function splitTime(ms: number): [number, number] {
  const sec = Math.floor(ms / 1000);
  return [sec, Math.min(999_999_999, Math.round((ms - sec * 1000) * 1e6))];
}

function splitNs(ns: bigint): [number, number] {
  return [Number(ns / 1_000_000_000n), Number(ns % 1_000_000_000n)];
}

let lastNs = 0n;
/**
 * The time now in ns since the epoch, for inode times: the wall clock's
 * milliseconds with the sub-millisecond part of the monotonic clock, never
 * equal to or before the previous value within the same millisecond (so two
 * writes in a row never share an mtime). Accurate to the wall clock's
 * millisecond; a clock set back more than that is followed.
 */
export function nowNs(): bigint {
  let ns = BigInt(Date.now()) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n);
  if (ns <= lastNs && lastNs - ns < 1_000_000n) ns = lastNs + 1n;
  lastNs = ns;
  return ns;
}

function rowToInode(r: Record<string, unknown>): Inode {
  const ms = (s: unknown, ns: unknown) => Number(s) * 1000 + Math.floor(Number(ns) / 1e6);
  return {
    ino: Number(r.ino),
    mode: Number(r.mode),
    nlink: Number(r.nlink),
    uid: Number(r.uid),
    gid: Number(r.gid),
    size: Number(r.size),
    atimeMs: ms(r.atime, r.atime_nsec),
    mtimeMs: ms(r.mtime, r.mtime_nsec),
    ctimeMs: ms(r.ctime, r.ctime_nsec),
    mtimeNs: BigInt(Number(r.mtime)) * 1_000_000_000n + BigInt(Number(r.mtime_nsec)),
  };
}

/** True when `mode` is a directory. */
/** One change of the store's feed ({@link AgentFsStore.onChange}): the directory (inode) it happened in and the entry's name. */
export interface StoreChange {
  /** As E2B's envd names them: created (or moved in), written, removed, moved away, attributes changed. */
  type: "create" | "write" | "remove" | "rename" | "chmod";
  parent: number;
  name: string;
}

export const isDir = (mode: number) => (mode & S_IFMT) === S_IFDIR;
/** True when `mode` is a regular file. */
export const isFile = (mode: number) => (mode & S_IFMT) === S_IFREG;
/** True when `mode` is a symlink. */
export const isLink = (mode: number) => (mode & S_IFMT) === S_IFLNK;

/** Splits an absolute normalized path into its components. */
export function components(path: string): string[] {
  return path.split("/").filter((c) => c.length > 0);
}

/** A synchronous AgentFS filesystem over one SQLite file. */
export class AgentFsStore {
  private readonly listeners = new Set<(c: StoreChange) => void>();
  /** The open database; the audit log and kv store share it. */
  readonly db: DatabaseSync;
  /** Chunk size of this store, in bytes. */
  readonly chunkSize: number;
  private readonly maxBytes: number;
  private readonly cache: StatementCache;
  private txDepth = 0;
  private rootIno: number;

  private constructor(db: DatabaseSync, config: Map<string, string>, maxBytes: number) {
    this.db = db;
    this.chunkSize = Number.parseInt(config.get("chunk_size") ?? "", 10) || DEFAULT_CHUNK_SIZE;
    this.rootIno = Number.parseInt(config.get(SHELL_ROOT_KEY) ?? "", 10) || ROOT_INO;
    this.maxBytes = maxBytes;
    this.cache = new StatementCache(db);
  }

  /**
   * The directory that paths start from: the shell's root in Kiln's layout
   * (fs_config `kiln.shell_root`), else AgentFS's root (inode 1).
   */
  get root(): number {
    return this.rootIno;
  }

  /** Makes `ino` the directory paths start from (see `shell-layout.ts`); ROOT_INO for AgentFS's view. */
  setRoot(ino: number): void {
    this.rootIno = ino;
  }

  private static config(db: DatabaseSync): Map<string, string> {
    const rows = db
      .prepare("SELECT key, value FROM fs_config WHERE key IN ('chunk_size', ?)")
      .all(SHELL_ROOT_KEY);
    return new Map(rows.map((r) => [String(r.key), String(r.value)]));
  }

  /** Opens (creating if needed) the store at `path`. */
  static open(path: string, options: StoreOptions = {}): AgentFsStore {
    // Fail at once, not after the busy timeout, when an AgentFS tool holds the file.
    if (options.checkForeignLock !== false) assertNotLockedByAnotherProgram(path);
    const db = new DatabaseSync(path, { timeout: 10_000 });
    db.exec("PRAGMA synchronous=NORMAL;");
    const maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY;
    // A store Kiln made (user_version set) has its schema, config and root: one query suffices.
    if (Number(db.prepare("PRAGMA user_version").get()?.user_version) === SCHEMA_USER_VERSION) {
      return new AgentFsStore(db, AgentFsStore.config(db), maxBytes);
    }
    db.exec("PRAGMA journal_mode=WAL;");
    db.exec(`BEGIN; ${SCHEMA}; COMMIT;`);
    const row = db.prepare("SELECT value FROM fs_config WHERE key = 'chunk_size'").get();
    if (!row) {
      db.prepare("INSERT INTO fs_config (key, value) VALUES ('chunk_size', ?)").run(
        String(DEFAULT_CHUNK_SIZE),
      );
    }
    db.prepare("INSERT OR IGNORE INTO fs_config (key, value) VALUES ('schema_version', '0.4')").run();
    if (!db.prepare("SELECT ino FROM fs_inode WHERE ino = ?").get(ROOT_INO)) {
      const [s, ns] = splitNs(nowNs());
      db.prepare(
        "INSERT INTO fs_inode (ino, mode, nlink, atime, mtime, ctime, atime_nsec, mtime_nsec, ctime_nsec) VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?)",
      ).run(ROOT_INO, S_IFDIR | 0o755, s, s, s, ns, ns, ns);
    }
    db.exec(`PRAGMA user_version=${SCHEMA_USER_VERSION}`);
    return new AgentFsStore(db, AgentFsStore.config(db), maxBytes);
  }

  /**
   * Makes a new store at `path` by copying `seedPath` (a closed, checkpointed
   * store), making it first with `init` if it does not exist. Copying a few
   * kilobytes is much cheaper than creating a schema in a fresh database.
   */
  static createFromSeed(
    path: string,
    seedPath: string,
    init: (store: AgentFsStore) => void,
    options: StoreOptions = {},
  ): AgentFsStore {
    if (!existsSync(seedPath)) {
      const tmp = `${seedPath}.${process.pid}.${Date.now()}.tmp`;
      const seed = AgentFsStore.open(tmp, { checkForeignLock: false });
      init(seed);
      seed.db.exec("PRAGMA wal_checkpoint(TRUNCATE);");
      seed.close();
      renameSync(tmp, seedPath);
    }
    copyFileSync(seedPath, path, constants.COPYFILE_EXCL);
    const store = AgentFsStore.open(path, { ...options, checkForeignLock: false });
    // The first write creates the WAL file, and under synchronous=NORMAL SQLite syncs its header
    // (about 0.5 ms, most of a virtual sandbox's create). Made with synchronous=OFF, that header is
    // not synced: a power loss right now loses only this first write. Every later commit runs
    // under NORMAL, whose guarantee (the WAL is synced before each checkpoint) is unchanged.
    // A real change (SQLite writes nothing for a no-op UPDATE): when the workspace was made.
    store.db.exec("PRAGMA synchronous=OFF;");
    store.db
      .prepare("INSERT OR REPLACE INTO kv_store (key, value) VALUES ('kiln.createdAt', ?)")
      .run(JSON.stringify(new Date().toISOString()));
    store.db.exec("PRAGMA synchronous=NORMAL;");
    return store;
  }

  /** Closes the database. */
  close(): void {
    if (this.db.isOpen) this.db.close();
  }

  private st(sql: string): StatementSync {
    return this.cache.get(sql);
  }

  /** Runs `fn` in one transaction (nested calls join the outer one). */
  tx<T>(fn: () => T): T {
    if (this.txDepth > 0) return fn();
    this.db.exec("BEGIN IMMEDIATE");
    this.txDepth++;
    try {
      const out = fn();
      this.db.exec("COMMIT");
      return out;
    } catch (e) {
      this.db.exec("ROLLBACK");
      throw e;
    } finally {
      this.txDepth--;
    }
  }

  /** Bytes the database uses (pages in use). */
  usedBytes(): number {
    const pages = Number(this.st("PRAGMA page_count").get()?.page_count ?? 0);
    const free = Number(this.st("PRAGMA freelist_count").get()?.freelist_count ?? 0);
    const size = Number(this.st("PRAGMA page_size").get()?.page_size ?? 4096);
    return (pages - free) * size;
  }

  // ---- inodes -------------------------------------------------------------

  /** The inode `ino`. @throws FsError ENOENT */
  getattr(ino: number, path = `#${ino}`): Inode {
    const r = this.st("SELECT * FROM fs_inode WHERE ino = ?").get(ino);
    if (!r) throw new FsError("ENOENT", "stat", path);
    return rowToInode(r);
  }

  /** Changes mode bits (keeping the file type), and times in ms. */
  setattr(ino: number, attrs: { mode?: number; mtimeMs?: number; atimeMs?: number }): void {
    const cur = this.getattr(ino);
    const [cs, cns] = splitNs(nowNs());
    if (attrs.mode !== undefined) {
      const mode = (cur.mode & S_IFMT) | (attrs.mode & 0o7777);
      this.st("UPDATE fs_inode SET mode = ?, ctime = ?, ctime_nsec = ? WHERE ino = ?").run(
        mode,
        cs,
        cns,
        ino,
      );
    }
    if (attrs.mtimeMs !== undefined) {
      const [s, ns] = splitTime(attrs.mtimeMs);
      this.st("UPDATE fs_inode SET mtime = ?, mtime_nsec = ? WHERE ino = ?").run(s, ns, ino);
    }
    if (attrs.atimeMs !== undefined) {
      const [s, ns] = splitTime(attrs.atimeMs);
      this.st("UPDATE fs_inode SET atime = ?, atime_nsec = ? WHERE ino = ?").run(s, ns, ino);
    }
    if (attrs.mode !== undefined || attrs.mtimeMs !== undefined) this.emitIno("chmod", ino);
  }

  /**
   * The store's change feed: calls `fn` for every change made through this
   * store object (this process's writers: the shell and the files API), in
   * the order made. Returns the unsubscribe function.
   */
  onChange(fn: (c: StoreChange) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private emit(type: StoreChange["type"], parent: number, name: string): void {
    for (const l of this.listeners) {
      try {
        l({ type, parent, name });
      } catch {
        // a listener's fault never fails the change
      }
    }
  }

  private emitIno(type: StoreChange["type"], ino: number): void {
    if (this.listeners.size === 0) return;
    const d = this.dentryOf(ino);
    if (d) this.emit(type, Number(d.parent_ino), String(d.name));
  }

  private touch(ino: number): void {
    const [s, ns] = splitNs(nowNs());
    this.st("UPDATE fs_inode SET mtime = ?, mtime_nsec = ?, ctime = ?, ctime_nsec = ? WHERE ino = ?").run(
      s,
      ns,
      s,
      ns,
      ino,
    );
  }

  private newInode(mode: number): number {
    const [s, ns] = splitNs(nowNs());
    const r = this.st(
      "INSERT INTO fs_inode (mode, nlink, atime, mtime, ctime, atime_nsec, mtime_nsec, ctime_nsec) VALUES (?, 0, ?, ?, ?, ?, ?, ?) RETURNING ino",
    ).get(mode, s, s, s, ns, ns, ns);
    return Number(r!.ino);
  }

  // ---- directories --------------------------------------------------------

  /** The inode named `name` in directory `parent`, or undefined. */
  lookup(parent: number, name: string): number | undefined {
    const r = this.st("SELECT ino FROM fs_dentry WHERE parent_ino = ? AND name = ?").get(parent, name);
    return r ? Number(r.ino) : undefined;
  }

  /** The entries of directory `ino`, sorted by name. */
  readdir(ino: number): Dirent[] {
    return this.st(
      "SELECT d.name AS name, d.ino AS ino, i.mode AS mode FROM fs_dentry d JOIN fs_inode i ON i.ino = d.ino WHERE d.parent_ino = ? ORDER BY d.name",
    )
      .all(ino)
      .map((r) => ({ name: String(r.name), ino: Number(r.ino), mode: Number(r.mode) }));
  }

  private addEntry(parent: number, name: string, ino: number, path: string): void {
    if (name.length === 0 || name === "." || name === ".." || name.includes("/") || name.includes("\0")) {
      throw new FsError("EINVAL", "link", path);
    }
    if (this.lookup(parent, name) !== undefined) throw new FsError("EEXIST", "link", path);
    this.st("INSERT INTO fs_dentry (name, parent_ino, ino) VALUES (?, ?, ?)").run(name, parent, ino);
    this.st("UPDATE fs_inode SET nlink = nlink + 1 WHERE ino = ?").run(ino);
    this.touch(parent);
    this.emit("create", parent, name);
  }

  /** Creates a file, directory or other node named `name` in `parent`; returns its inode. */
  mknod(parent: number, name: string, mode: number, path = name): number {
    return this.tx(() => {
      if (!isDir(this.getattr(parent, path).mode)) throw new FsError("ENOTDIR", "mknod", path);
      if (this.lookup(parent, name) !== undefined) throw new FsError("EEXIST", "mknod", path);
      const ino = this.newInode(mode);
      this.addEntry(parent, name, ino, path);
      return ino;
    });
  }

  /** Creates a symlink `name` in `parent` pointing to `target`. */
  symlink(parent: number, name: string, target: string, path = name): number {
    return this.tx(() => {
      const ino = this.mknod(parent, name, S_IFLNK | 0o777, path);
      this.st("INSERT INTO fs_symlink (ino, target) VALUES (?, ?)").run(ino, target);
      this.st("UPDATE fs_inode SET size = ? WHERE ino = ?").run(Buffer.byteLength(target), ino);
      return ino;
    });
  }

  /** Adds a hard link to file `ino` as `name` in `parent`. */
  link(ino: number, parent: number, name: string, path = name): void {
    this.tx(() => {
      if (isDir(this.getattr(ino, path).mode)) throw new FsError("EPERM", "link", path);
      this.addEntry(parent, name, ino, path);
    });
  }

  /** The target of symlink `ino`. @throws FsError EINVAL when not a symlink */
  readlink(ino: number, path = `#${ino}`): string {
    const r = this.st("SELECT target FROM fs_symlink WHERE ino = ?").get(ino);
    if (!r) throw new FsError("EINVAL", "readlink", path);
    return String(r.target);
  }

  private dropLink(ino: number): void {
    this.st("UPDATE fs_inode SET nlink = nlink - 1 WHERE ino = ?").run(ino);
    const n = Number(this.st("SELECT nlink FROM fs_inode WHERE ino = ?").get(ino)?.nlink ?? 0);
    if (n <= 0) {
      this.st("DELETE FROM fs_data WHERE ino = ?").run(ino);
      this.st("DELETE FROM fs_symlink WHERE ino = ?").run(ino);
      this.st("DELETE FROM fs_inode WHERE ino = ?").run(ino);
    }
  }

  /** AgentFS's root, where the shell's tree holds it (`/workspace`), stays: EBUSY, as for a mount point. */
  private keep(ino: number, syscall: string, path: string): void {
    if (ino === ROOT_INO && this.rootIno !== ROOT_INO) throw new FsError("EBUSY", syscall, path);
  }

  /** Removes the non-directory entry `name` from `parent`. */
  unlink(parent: number, name: string, path = name): void {
    this.tx(() => {
      const ino = this.lookup(parent, name);
      if (ino === undefined) throw new FsError("ENOENT", "unlink", path);
      if (isDir(this.getattr(ino, path).mode)) throw new FsError("EISDIR", "unlink", path);
      this.st("DELETE FROM fs_dentry WHERE parent_ino = ? AND name = ?").run(parent, name);
      this.touch(parent);
      this.dropLink(ino);
      this.emit("remove", parent, name);
    });
  }

  /** Removes the empty directory `name` from `parent`. */
  rmdir(parent: number, name: string, path = name): void {
    this.tx(() => {
      const ino = this.lookup(parent, name);
      if (ino === undefined) throw new FsError("ENOENT", "rmdir", path);
      if (!isDir(this.getattr(ino, path).mode)) throw new FsError("ENOTDIR", "rmdir", path);
      this.keep(ino, "rmdir", path);
      if (this.st("SELECT 1 AS x FROM fs_dentry WHERE parent_ino = ? LIMIT 1").get(ino)) {
        throw new FsError("ENOTEMPTY", "rmdir", path);
      }
      this.st("DELETE FROM fs_dentry WHERE parent_ino = ? AND name = ?").run(parent, name);
      this.touch(parent);
      this.dropLink(ino);
      this.emit("remove", parent, name);
    });
  }

  /** Removes `name` from `parent` and everything below it. */
  removeTree(parent: number, name: string, path = name): void {
    this.tx(() => {
      const ino = this.lookup(parent, name);
      if (ino === undefined) throw new FsError("ENOENT", "rm", path);
      if (isDir(this.getattr(ino, path).mode)) {
        for (const child of this.readdir(ino)) this.removeTree(ino, child.name, `${path}/${child.name}`);
        this.rmdir(parent, name, path);
      } else {
        this.unlink(parent, name, path);
      }
    });
  }

  /**
   * Removes, anywhere in the tree, the temporary entries of Kiln process
   * `owner` (a process token): `.kiln-write-<owner>-…` files of unfinished
   * writes and `.kiln-import-<owner>-…` folders of unfinished tar imports.
   * Returns how many it removed.
   */
  sweepTemporary(owner: string): number {
    if (!/^\d+-\d+$/.test(owner)) return 0;
    const rows = this.st("SELECT parent_ino, name FROM fs_dentry WHERE name LIKE ? OR name LIKE ?").all(
      `.kiln-write-${owner}-%`,
      `.kiln-import-${owner}-%`,
    );
    for (const r of rows) this.removeTree(Number(r.parent_ino), String(r.name));
    return rows.length;
  }

  /** True when directory `anc` is `ino` or contains it. */
  private isAncestor(anc: number, ino: number): boolean {
    let cur = ino;
    for (let hops = 0; hops < 4096; hops++) {
      if (cur === anc) return true;
      if (cur === this.rootIno) return false;
      cur = this.parentOf(cur);
    }
    return false;
  }

  /** Renames with POSIX semantics (replaces a file, or an empty directory). */
  rename(oldParent: number, oldName: string, newParent: number, newName: string, path = newName): void {
    this.tx(() => {
      const ino = this.lookup(oldParent, oldName);
      if (ino === undefined) throw new FsError("ENOENT", "rename", path);
      if (oldParent === newParent && oldName === newName) return;
      this.keep(ino, "rename", path);
      const mode = this.getattr(ino).mode;
      if (isDir(mode) && this.isAncestor(ino, newParent)) throw new FsError("EINVAL", "rename", path);
      const existing = this.lookup(newParent, newName);
      if (existing !== undefined) {
        this.keep(existing, "rename", path);
        const emode = this.getattr(existing).mode;
        if (isDir(mode) && !isDir(emode)) throw new FsError("ENOTDIR", "rename", path);
        if (!isDir(mode) && isDir(emode)) throw new FsError("EISDIR", "rename", path);
        if (isDir(emode)) this.rmdir(newParent, newName, path);
        else this.unlink(newParent, newName, path);
      }
      if (newName.length === 0 || newName.includes("/") || newName.includes("\0")) {
        throw new FsError("EINVAL", "rename", path);
      }
      this.st("UPDATE fs_dentry SET parent_ino = ?, name = ? WHERE parent_ino = ? AND name = ?").run(
        newParent,
        newName,
        oldParent,
        oldName,
      );
      this.touch(oldParent);
      if (newParent !== oldParent) this.touch(newParent);
      this.emit("rename", oldParent, oldName);
      this.emit("create", newParent, newName);
    });
  }

  // ---- file data ----------------------------------------------------------

  /** Reads up to `length` bytes of file `ino` from `offset`. */
  read(ino: number, offset: number, length: number): Uint8Array {
    const size = this.getattr(ino).size;
    const end = Math.min(size, offset + length);
    if (end <= offset) return new Uint8Array(0);
    const out = new Uint8Array(end - offset);
    const cs = this.chunkSize;
    const first = Math.floor(offset / cs);
    const last = Math.floor((end - 1) / cs);
    const rows = this.st(
      "SELECT chunk_index, data FROM fs_data WHERE ino = ? AND chunk_index BETWEEN ? AND ? ORDER BY chunk_index",
    ).all(ino, first, last);
    for (const r of rows) {
      const idx = Number(r.chunk_index);
      const data = r.data as Uint8Array;
      const chunkStart = idx * cs;
      const from = Math.max(offset, chunkStart);
      const to = Math.min(end, chunkStart + data.length);
      if (to > from) out.set(data.subarray(from - chunkStart, to - chunkStart), from - offset);
    }
    return out;
  }

  /** Writes `data` into file `ino` at `offset`, growing it as needed. */
  write(ino: number, offset: number, data: Uint8Array, path = `#${ino}`): number {
    if (data.length === 0) return 0;
    return this.tx(() => {
      const inode = this.getattr(ino, path);
      if (this.usedBytes() + data.length > this.maxBytes) throw new FsError("ENOSPC", "write", path);
      const cs = this.chunkSize;
      const end = offset + data.length;
      const get = this.st("SELECT data FROM fs_data WHERE ino = ? AND chunk_index = ?");
      const put = this.st("INSERT OR REPLACE INTO fs_data (ino, chunk_index, data) VALUES (?, ?, ?)");
      for (let idx = Math.floor(offset / cs); idx * cs < end; idx++) {
        const chunkStart = idx * cs;
        const from = Math.max(offset, chunkStart);
        const to = Math.min(end, chunkStart + cs);
        const fileEndInChunk = Math.min(cs, Math.max(0, Math.max(inode.size, end) - chunkStart));
        let chunk: Uint8Array;
        if (from === chunkStart && to - chunkStart >= fileEndInChunk) {
          chunk = data.subarray(from - offset, to - offset);
        } else {
          const old = get.get(ino, idx)?.data as Uint8Array | undefined;
          chunk = new Uint8Array(Math.max(old?.length ?? 0, to - chunkStart));
          if (old) chunk.set(old);
          chunk.set(data.subarray(from - offset, to - offset), from - chunkStart);
        }
        put.run(ino, idx, chunk);
      }
      const [s, ns] = splitNs(nowNs());
      this.st(
        "UPDATE fs_inode SET size = MAX(size, ?), mtime = ?, mtime_nsec = ?, ctime = ?, ctime_nsec = ? WHERE ino = ?",
      ).run(end, s, ns, s, ns, ino);
      this.emitIno("write", ino);
      return data.length;
    });
  }

  /** Sets file `ino`'s size, dropping or zero-filling chunks. */
  truncate(ino: number, size: number): void {
    this.tx(() => {
      const cs = this.chunkSize;
      const keep = Math.ceil(size / cs);
      this.st("DELETE FROM fs_data WHERE ino = ? AND chunk_index >= ?").run(ino, keep);
      if (size % cs !== 0 && keep > 0) {
        const r = this.st("SELECT data FROM fs_data WHERE ino = ? AND chunk_index = ?").get(ino, keep - 1);
        const data = r?.data as Uint8Array | undefined;
        if (data && data.length > size % cs) {
          this.st("UPDATE fs_data SET data = ? WHERE ino = ? AND chunk_index = ?").run(
            data.subarray(0, size % cs),
            ino,
            keep - 1,
          );
        }
      }
      const [s, ns] = splitNs(nowNs());
      this.st(
        "UPDATE fs_inode SET size = ?, mtime = ?, mtime_nsec = ?, ctime = ?, ctime_nsec = ? WHERE ino = ?",
      ).run(size, s, ns, s, ns, ino);
      this.emitIno("write", ino);
    });
  }

  // ---- paths --------------------------------------------------------------

  /**
   * Resolves an absolute path to `{ parent, name, ino }`, following symlinks in
   * every component and, when `follow` is set, in the last one too.
   * `ino` is undefined when the last component does not exist.
   * @throws FsError ENOENT (a missing parent), ENOTDIR, ELOOP
   */
  resolve(path: string, follow: boolean): { parent: number; name: string; ino: number | undefined } {
    let hops = 0;
    type Found = { parent: number; name: string; ino: number | undefined };
    const walk = (start: number, stack: string[], followLast: boolean): Found => {
      let dir = start;
      for (let i = 0; i < stack.length; i++) {
        const name = stack[i]!;
        const last = i === stack.length - 1;
        if (name === "." || name === "..") {
          if (name === "..") dir = this.parentOf(dir);
          if (last) return { parent: this.parentOf(dir), name: ".", ino: dir };
          continue;
        }
        const ino = this.lookup(dir, name);
        if (ino === undefined) {
          if (last) return { parent: dir, name, ino: undefined };
          throw new FsError("ENOENT", "open", path);
        }
        const mode = this.getattr(ino).mode;
        if (isLink(mode) && (!last || followLast)) {
          if (++hops > MAX_SYMLINK_HOPS) throw new FsError("ELOOP", "open", path);
          const target = this.readlink(ino);
          const resolved = walk(target.startsWith("/") ? this.rootIno : dir, components(target), true);
          if (last) return resolved;
          if (resolved.ino === undefined) throw new FsError("ENOENT", "open", path);
          if (!isDir(this.getattr(resolved.ino).mode)) throw new FsError("ENOTDIR", "open", path);
          dir = resolved.ino;
          continue;
        }
        if (last) return { parent: dir, name, ino };
        if (!isDir(mode)) throw new FsError("ENOTDIR", "open", path);
        dir = ino;
      }
      return { parent: this.parentOf(dir), name: ".", ino: dir };
    };
    return walk(this.rootIno, components(path), follow);
  }

  /** One dentry of inode `ino`: its parent and name. */
  dentryOf(ino: number): { parent_ino: unknown; name: unknown } | undefined {
    return this.st("SELECT parent_ino, name FROM fs_dentry WHERE ino = ? LIMIT 1").get(ino) as
      | { parent_ino: unknown; name: unknown }
      | undefined;
  }

  /** The directory holding directory `ino` (the root is its own parent). */
  parentOf(ino: number): number {
    if (ino === this.rootIno) return ino;
    const r = this.st("SELECT parent_ino FROM fs_dentry WHERE ino = ? LIMIT 1").get(ino);
    return r ? Number(r.parent_ino) : this.rootIno;
  }

  /** The inode at `path`. @throws FsError ENOENT */
  inodeAt(path: string, follow = true): number {
    const r = this.resolve(path, follow);
    if (r.ino === undefined) throw new FsError("ENOENT", "stat", path);
    return r.ino;
  }
}
