/**
 * just-bash's IFileSystem over an {@link AgentFsStore}: the virtual tier's
 * shell reads and writes the SQLite workspace directly, with symlinks, hard
 * links, modes and mtimes intact.
 */
import { posix } from "node:path";
import {
  type BufferEncoding,
  type ByteString,
  type CpOptions,
  type FileContent,
  type FsStat,
  type IFileSystem,
  type MkdirOptions,
  type RmOptions,
  unsafeBytesFromLatin1,
} from "just-bash";
import { type AgentFsStore, isDir, isFile, isLink, ROOT_INO, S_IFDIR, S_IFREG } from "./agentfs-store.ts";
import { FsError } from "./fs-error.ts";

type WriteOpts = { encoding?: BufferEncoding } | BufferEncoding | undefined;
type ReadOpts = { encoding?: BufferEncoding | null } | BufferEncoding | undefined;

function encodingOf(o: WriteOpts | ReadOpts): BufferEncoding | undefined {
  if (typeof o === "string") return o;
  return o?.encoding ?? undefined;
}

function toBytes(content: FileContent, o: WriteOpts): Uint8Array {
  if (typeof content !== "string") return content;
  const enc = encodingOf(o) ?? "utf8";
  return Buffer.from(content, enc === "binary" ? "latin1" : enc);
}

/** Normalizes an absolute path; rejects NUL bytes. */
export function normalizeFsPath(path: string): string {
  if (path.includes("\0")) throw new FsError("EINVAL", "open", path.replace(/\0/g, "\\0"));
  return posix.resolve("/", path);
}

/** just-bash's stat, with the inode's link count and owner (for `ls -l`). */
export interface WorkspaceStat extends FsStat {
  nlink: number;
  uid: number;
  gid: number;
  /** Modification time in ns since the epoch (`mtime` is only to the millisecond). */
  mtimeNs: bigint;
}

/**
 * Bytes a directory reports to the shell: one 4 KiB block, as on ext4 (the real tiers' workspace),
 * so that `ls -l`, its total, `stat -c %s` and `du` read the same on every tier.
 */
export const DIRECTORY_SIZE = 4096;

/** The device id every inode of a store reports (a store is one filesystem). */
export const STORE_DEVICE_ID = 0x4b4c4e;

/** The null device: an empty file in the store whose writes are discarded. */
export const DEV_NULL = "/dev/null";
const isDevNull = (path: string) => path === DEV_NULL;

/** just-bash filesystem backed by the SQLite workspace store. */
export class SqliteFs implements IFileSystem {
  private readonly store: AgentFsStore;

  constructor(store: AgentFsStore) {
    this.store = store;
  }

  private statOf(ino: number, path: string): WorkspaceStat {
    const i = this.store.getattr(ino, path);
    return {
      nlink: i.nlink,
      uid: i.uid,
      gid: i.gid,
      isFile: isFile(i.mode),
      isDirectory: isDir(i.mode),
      isSymbolicLink: isLink(i.mode),
      mode: i.mode & 0o7777,
      size: isDir(i.mode) ? DIRECTORY_SIZE : i.size,
      mtime: new Date(i.mtimeMs),
      mtimeNs: i.mtimeNs,
      // One store is one device: same-file checks (mv onto a file, cp f f, split) compare dev and ino.
      dev: STORE_DEVICE_ID,
      ino,
    };
  }

  private fileIno(path: string, syscall: string): number {
    const p = normalizeFsPath(path);
    const ino = this.store.inodeAt(p, true);
    if (isDir(this.store.getattr(ino, p).mode)) throw new FsError("EISDIR", syscall, p);
    return ino;
  }

  /** Reads a whole file's bytes. */
  readBytes(path: string): Uint8Array {
    const ino = this.fileIno(path, "open");
    return this.store.read(ino, 0, this.store.getattr(ino).size);
  }

  async readFile(path: string, options?: ReadOpts): Promise<string> {
    const enc = encodingOf(options) ?? "utf8";
    return Buffer.from(this.readBytes(path)).toString(enc === "binary" ? "latin1" : enc);
  }

  async readFileBytes(path: string): Promise<ByteString> {
    return unsafeBytesFromLatin1(Buffer.from(this.readBytes(path)).toString("latin1"));
  }

  async readFileBuffer(path: string): Promise<Uint8Array> {
    return this.readBytes(path);
  }

  /** Creates or truncates the file at `path` and returns its inode. */
  openForWrite(path: string, truncate: boolean): number {
    const p = normalizeFsPath(path);
    const r = this.store.resolve(p, true);
    if (r.ino === undefined) return this.store.mknod(r.parent, r.name, S_IFREG | 0o644, p);
    if (isDir(this.store.getattr(r.ino, p).mode)) throw new FsError("EISDIR", "open", p);
    if (truncate) this.store.truncate(r.ino, 0);
    return r.ino;
  }

  async writeFile(path: string, content: FileContent, options?: WriteOpts): Promise<void> {
    if (isDevNull(path)) return;
    const data = toBytes(content, options);
    this.store.tx(() => {
      const ino = this.openForWrite(path, true);
      this.store.write(ino, 0, data, path);
    });
  }

  async appendFile(path: string, content: FileContent, options?: WriteOpts): Promise<void> {
    if (isDevNull(path)) return;
    const data = toBytes(content, options);
    this.store.tx(() => {
      const ino = this.openForWrite(path, false);
      this.store.write(ino, this.store.getattr(ino).size, data, path);
    });
  }

  async exists(path: string): Promise<boolean> {
    try {
      return this.store.resolve(normalizeFsPath(path), true).ino !== undefined;
    } catch {
      return false;
    }
  }

  async stat(path: string): Promise<FsStat> {
    const p = normalizeFsPath(path);
    return this.statOf(this.store.inodeAt(p, true), p);
  }

  async lstat(path: string): Promise<FsStat> {
    const p = normalizeFsPath(path);
    return this.statOf(this.store.inodeAt(p, false), p);
  }

  /** Creates `path` and, with `recursive`, its parents; returns whether it created it. */
  mkdirSync(path: string, options?: MkdirOptions): boolean {
    const p = normalizeFsPath(path);
    return this.store.tx(() => {
      const r = this.store.resolve(p, true);
      if (r.ino !== undefined) {
        if (options?.recursive && isDir(this.store.getattr(r.ino).mode)) return false;
        throw new FsError("EEXIST", "mkdir", p);
      }
      this.store.mknod(r.parent, r.name, S_IFDIR | 0o755, p);
      return true;
    });
  }

  async mkdir(path: string, options?: MkdirOptions): Promise<void> {
    const p = normalizeFsPath(path);
    if (!options?.recursive) {
      this.mkdirSync(p);
      return;
    }
    this.store.tx(() => {
      let cur = "";
      for (const part of p.split("/").filter(Boolean)) {
        cur += `/${part}`;
        this.mkdirSync(cur, { recursive: true });
      }
    });
  }

  async readdir(path: string): Promise<string[]> {
    return (await this.readdirWithFileTypes(path)).map((d) => d.name);
  }

  async readdirWithFileTypes(
    path: string,
  ): Promise<{ name: string; isFile: boolean; isDirectory: boolean; isSymbolicLink: boolean }[]> {
    const p = normalizeFsPath(path);
    const ino = this.store.inodeAt(p, true);
    if (!isDir(this.store.getattr(ino, p).mode)) throw new FsError("ENOTDIR", "scandir", p);
    return this.store.readdir(ino).map((d) => ({
      name: d.name,
      isFile: isFile(d.mode),
      isDirectory: isDir(d.mode),
      isSymbolicLink: isLink(d.mode),
    }));
  }

  async rm(path: string, options?: RmOptions): Promise<void> {
    const p = normalizeFsPath(path);
    const r = this.store.resolve(p, false);
    if (r.ino === undefined) {
      if (options?.force) return;
      throw new FsError("ENOENT", "rm", p);
    }
    if (r.ino === this.store.root) throw new FsError("EPERM", "rm", p);
    if (r.ino === ROOT_INO && options?.recursive) {
      // The agent's directory is AgentFS's root: like a mount point, emptied but kept (EBUSY).
      this.store.tx(() => {
        for (const d of this.store.readdir(ROOT_INO))
          this.store.removeTree(ROOT_INO, d.name, `${p}/${d.name}`);
      });
      throw new FsError("EBUSY", "rm", p);
    }
    if (isDir(this.store.getattr(r.ino).mode)) {
      if (options?.recursive) this.store.removeTree(r.parent, r.name, p);
      else this.store.rmdir(r.parent, r.name, p);
    } else {
      this.store.unlink(r.parent, r.name, p);
    }
  }

  async cp(src: string, dest: string, options?: CpOptions): Promise<void> {
    const s = normalizeFsPath(src);
    const d = normalizeFsPath(dest);
    // Like cp: a symlink named as the source is followed, unless copying recursively (cp -r copies links as links).
    this.store.tx(() => this.copy(s, d, options?.recursive ?? false, !(options?.recursive ?? false)));
  }

  private copy(src: string, dest: string, recursive: boolean, followSource = false): void {
    const ino = this.store.inodeAt(src, followSource);
    const inode = this.store.getattr(ino, src);
    if (isLink(inode.mode)) {
      const r = this.store.resolve(dest, false);
      if (r.ino !== undefined) this.store.unlink(r.parent, r.name, dest);
      this.store.symlink(r.parent, r.name, this.store.readlink(ino), dest);
      return;
    }
    if (isDir(inode.mode)) {
      if (!recursive) throw new FsError("EISDIR", "cp", src);
      this.mkdirSync(dest, { recursive: true });
      for (const child of this.store.readdir(ino)) {
        this.copy(posix.join(src, child.name), posix.join(dest, child.name), true);
      }
      return;
    }
    const target = this.openForWrite(dest, true);
    const cs = this.store.chunkSize * 256;
    for (let off = 0; off < inode.size; off += cs) {
      this.store.write(target, off, this.store.read(ino, off, cs), dest);
    }
    this.store.setattr(target, { mode: inode.mode });
  }

  async mv(src: string, dest: string): Promise<void> {
    const s = normalizeFsPath(src);
    const d = normalizeFsPath(dest);
    this.store.tx(() => {
      const from = this.store.resolve(s, false);
      if (from.ino === undefined) throw new FsError("ENOENT", "rename", s);
      const to = this.store.resolve(d, false);
      this.store.rename(from.parent, from.name, to.parent, to.name, d);
    });
  }

  resolvePath(base: string, path: string): string {
    return posix.resolve(base, path);
  }

  getAllPaths(): string[] {
    return [];
  }

  async chmod(path: string, mode: number): Promise<void> {
    const p = normalizeFsPath(path);
    this.store.setattr(this.store.inodeAt(p, true), { mode });
  }

  async symlink(target: string, linkPath: string): Promise<void> {
    const p = normalizeFsPath(linkPath);
    if (target.includes("\0")) throw new FsError("EINVAL", "symlink", p);
    const r = this.store.resolve(p, false);
    if (r.ino !== undefined) throw new FsError("EEXIST", "symlink", p);
    this.store.symlink(r.parent, r.name, target, p);
  }

  async link(existingPath: string, newPath: string): Promise<void> {
    const e = normalizeFsPath(existingPath);
    const n = normalizeFsPath(newPath);
    const ino = this.store.inodeAt(e, false);
    const r = this.store.resolve(n, false);
    if (r.ino !== undefined) throw new FsError("EEXIST", "link", n);
    this.store.link(ino, r.parent, r.name, n);
  }

  async readlink(path: string): Promise<string> {
    const p = normalizeFsPath(path);
    return this.store.readlink(this.store.inodeAt(p, false), p);
  }

  async realpath(path: string): Promise<string> {
    const p = normalizeFsPath(path);
    return this.pathOf(this.store.inodeAt(p, true));
  }

  /** The canonical path of inode `ino` (its first dentry). */
  pathOf(ino: number): string {
    const parts: string[] = [];
    let cur = ino;
    for (let hops = 0; cur !== this.store.root && hops < 4096; hops++) {
      // The store's compiled statement: this runs for every command (the shell resolves its cwd).
      const r = this.store.dentryOf(cur);
      if (!r) break;
      parts.unshift(String(r.name));
      cur = Number(r.parent_ino);
    }
    return `/${parts.join("/")}`;
  }

  async utimes(path: string, atime: Date, mtime: Date): Promise<void> {
    const p = normalizeFsPath(path);
    this.store.setattr(this.store.inodeAt(p, true), { atimeMs: atime.getTime(), mtimeMs: mtime.getTime() });
  }
}
