/**
 * The virtual shell's view of the system around the workspace: `/usr/bin`
 * (and `/bin`, a link to it, as on Debian) listing the shell's commands, so
 * `which ls` and `/bin/echo x` work; the devices `/dev/null`, `/dev/zero`,
 * `/dev/random` and `/dev/urandom`; and a `/proc` that says only what is true
 * of an interpreter (it has no kernel). None of this is stored: the SQLite
 * store, and so the AgentFS file, holds only what the sandbox wrote.
 *
 * Everything else is the store, through {@link SqliteFs}.
 */
import { randomFillSync } from "node:crypto";
import { posix } from "node:path";
import type {
  BufferEncoding,
  ByteString,
  CpOptions,
  FileContent,
  FsStat,
  IFileSystem,
  MkdirOptions,
  RmOptions,
} from "just-bash";
import { unsafeBytesFromLatin1 } from "just-bash";

/** One directory entry with its type (just-bash's DirentEntry). */
type DirentEntry = { name: string; isFile: boolean; isDirectory: boolean; isSymbolicLink: boolean };

import { FsError } from "../../workspace/fs-error.ts";
import { normalizeFsPath, type SqliteFs } from "../../workspace/sqlite-fs.ts";

const S_IFCHR = 0o020000;
/** Bytes one read of /dev/zero or /dev/urandom returns: just-bash reads a file whole, so an endless device is cut here. */
export const ENDLESS_DEVICE_READ_BYTES = 1024 * 1024;
/** Device id of the synthetic entries (not the store's). */
const SYSTEM_DEVICE_ID = 0x4b4c4f;

type Node =
  | { kind: "dir"; entries: () => DirentEntry[] }
  | { kind: "link"; target: string }
  | { kind: "file"; mode: number; read: () => Uint8Array }
  | { kind: "device"; rdev: number; read: () => Uint8Array };

const dirent = (name: string, kind: Node["kind"]): DirentEntry => ({
  name,
  isFile: kind === "file",
  isDirectory: kind === "dir",
  isSymbolicLink: kind === "link",
});

const endless = (fill: (b: Uint8Array) => void) => () => {
  const b = new Uint8Array(ENDLESS_DEVICE_READ_BYTES);
  fill(b);
  return b;
};

/** Linux's device numbers (major 1, "mem"), as `ls -l` shows them. */
const RDEV: Record<string, number> = { null: 0x103, zero: 0x105, random: 0x108, urandom: 0x109 };

const DEVICES: Record<string, () => Uint8Array> = {
  null: () => new Uint8Array(0),
  zero: endless(() => {}),
  random: endless((b) => randomFillSync(b)),
  urandom: endless((b) => randomFillSync(b)),
};

/** The synthetic root entries (beside the store's own). */
const ROOT_ENTRIES: DirentEntry[] = [dirent("bin", "link"), dirent("proc", "dir"), dirent("usr", "dir")];

/** just-bash's filesystem for the virtual shell: the store, with the system's entries around it. */
export class SystemFs implements IFileSystem {
  private readonly inner: SqliteFs;
  private readonly commands: () => readonly string[];
  private readonly startedMs = Date.now();

  /** `commands`: the names the shell runs (listed in /usr/bin). */
  constructor(inner: SqliteFs, commands: () => readonly string[]) {
    this.inner = inner;
    this.commands = commands;
  }

  /** The synthetic node at normalized path `p` (following /bin), or undefined when the store serves it. */
  private node(p: string): Node | undefined {
    if (p === "/bin") return { kind: "link", target: "usr/bin" };
    if (p.startsWith("/bin/")) return this.node(`/usr${p}`);
    if (p === "/usr") return { kind: "dir", entries: () => [dirent("bin", "dir")] };
    if (p === "/usr/bin") {
      return { kind: "dir", entries: () => [...this.commands()].sort().map((n) => dirent(n, "file")) };
    }
    if (p.startsWith("/usr/")) {
      const name = p.slice("/usr/bin/".length);
      if (p.startsWith("/usr/bin/") && !name.includes("/") && this.commands().includes(name)) {
        const text = `#!/bin/bash\n# ${name}: a command built into the virtual tier's shell\n`;
        return { kind: "file", mode: 0o755, read: () => Buffer.from(text) };
      }
      throw new FsError("ENOENT", "open", p);
    }
    if (p === "/proc") {
      return { kind: "dir", entries: () => [dirent("uptime", "file"), dirent("version", "file")] };
    }
    if (p.startsWith("/proc/")) {
      const name = p.slice("/proc/".length);
      if (name === "version") {
        const text = `Kiln virtual tier: the just-bash interpreter on Node ${process.versions.node}, no Linux kernel\n`;
        return { kind: "file", mode: 0o444, read: () => Buffer.from(text) };
      }
      if (name === "uptime") {
        // Seconds since this sandbox's shell started, twice (there is no idle time to report apart).
        const up = ((Date.now() - this.startedMs) / 1000).toFixed(2);
        return { kind: "file", mode: 0o444, read: () => Buffer.from(`${up} ${up}\n`) };
      }
      throw new FsError("ENOENT", "open", p);
    }
    if (p.startsWith("/dev/")) {
      const name = p.slice("/dev/".length);
      const read = DEVICES[name];
      if (read) return { kind: "device", rdev: RDEV[name] ?? 0, read };
    }
    return undefined;
  }

  private statOf(n: Node): FsStat {
    const base = { size: 0, mtime: new Date(this.startedMs), dev: SYSTEM_DEVICE_ID };
    switch (n.kind) {
      case "dir":
        return { ...base, isFile: false, isDirectory: true, isSymbolicLink: false, mode: 0o755 };
      case "link":
        return {
          ...base,
          isFile: false,
          isDirectory: false,
          isSymbolicLink: true,
          mode: 0o777,
          size: n.target.length,
        };
      case "file":
        return {
          ...base,
          isFile: true,
          isDirectory: false,
          isSymbolicLink: false,
          mode: n.mode,
          size: n.read().length,
        };
      case "device":
        return {
          ...base,
          isFile: false,
          isDirectory: false,
          isSymbolicLink: false,
          mode: S_IFCHR | 0o666,
          rdev: n.rdev,
        } as FsStat;
    }
  }

  private readNode(p: string): Uint8Array | undefined {
    const n = this.node(p);
    if (!n) return undefined;
    if (n.kind === "dir" || n.kind === "link") throw new FsError("EISDIR", "read", p);
    return n.read();
  }

  /** Throws EROFS when `p` is a synthetic entry (or inside one) that cannot be written. */
  private refuseWrite(p: string, syscall: string): boolean {
    const n = this.node(p);
    if (n?.kind === "device") return true;
    if (n || p.startsWith("/usr/") || p.startsWith("/proc/") || p.startsWith("/bin/")) {
      throw new FsError("EROFS", syscall, p);
    }
    return false;
  }

  async readFile(
    path: string,
    options?: { encoding?: BufferEncoding | null } | BufferEncoding,
  ): Promise<string> {
    const b = this.readNode(normalizeFsPath(path));
    if (!b) return this.inner.readFile(path, options);
    const enc = (typeof options === "string" ? options : options?.encoding) ?? "utf8";
    return Buffer.from(b).toString(enc === "binary" ? "latin1" : enc);
  }

  async readFileBytes(path: string): Promise<ByteString> {
    const b = this.readNode(normalizeFsPath(path));
    if (!b) return this.inner.readFileBytes(path);
    return unsafeBytesFromLatin1(Buffer.from(b).toString("latin1"));
  }

  async readFileBuffer(path: string): Promise<Uint8Array> {
    return this.readNode(normalizeFsPath(path)) ?? this.inner.readFileBuffer(path);
  }

  async writeFile(
    path: string,
    content: FileContent,
    options?: { encoding?: BufferEncoding } | BufferEncoding,
  ) {
    if (this.refuseWrite(normalizeFsPath(path), "open")) return;
    return this.inner.writeFile(path, content, options);
  }

  async appendFile(
    path: string,
    content: FileContent,
    options?: { encoding?: BufferEncoding } | BufferEncoding,
  ) {
    if (this.refuseWrite(normalizeFsPath(path), "open")) return;
    return this.inner.appendFile(path, content, options);
  }

  async exists(path: string): Promise<boolean> {
    try {
      const n = this.node(normalizeFsPath(path));
      if (n) return true;
    } catch {
      return false;
    }
    return this.inner.exists(path);
  }

  async stat(path: string): Promise<FsStat> {
    let p = normalizeFsPath(path);
    if (p === "/bin" || p.startsWith("/bin/")) p = `/usr${p}`;
    const n = this.node(p);
    return n ? this.statOf(n) : this.inner.stat(p);
  }

  async lstat(path: string): Promise<FsStat> {
    const p = normalizeFsPath(path);
    const n = this.node(p === "/bin" ? p : p.startsWith("/bin/") ? `/usr${p}` : p);
    return n ? this.statOf(n) : this.inner.lstat(p);
  }

  async mkdir(path: string, options?: MkdirOptions): Promise<void> {
    const p = normalizeFsPath(path);
    const n = this.node(p);
    if (n) {
      if (options?.recursive && (n.kind === "dir" || n.kind === "link")) return;
      throw new FsError("EEXIST", "mkdir", p);
    }
    this.refuseWrite(p, "mkdir");
    return this.inner.mkdir(p, options);
  }

  async readdir(path: string): Promise<string[]> {
    return (await this.readdirWithFileTypes(path)).map((d) => d.name);
  }

  async readdirWithFileTypes(path: string): Promise<DirentEntry[]> {
    let p = normalizeFsPath(path);
    if (p === "/bin" || p.startsWith("/bin/")) p = `/usr${p}`;
    const n = this.node(p);
    if (n?.kind === "dir") return n.entries();
    if (n) throw new FsError("ENOTDIR", "scandir", p);
    const own = await this.inner.readdirWithFileTypes(p);
    const extra =
      p === "/" ? ROOT_ENTRIES : p === "/dev" ? Object.keys(DEVICES).map((d) => dirent(d, "file")) : [];
    if (extra.length === 0) return own;
    const names = new Set(extra.map((e) => e.name));
    return [...own.filter((e) => !names.has(e.name)), ...extra].sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  async rm(path: string, options?: RmOptions): Promise<void> {
    const p = normalizeFsPath(path);
    if (this.node(p) || this.refuseWrite(p, "rm")) throw new FsError("EPERM", "rm", p);
    return this.inner.rm(p, options);
  }

  async cp(src: string, dest: string, options?: CpOptions): Promise<void> {
    const s = normalizeFsPath(src);
    const d = normalizeFsPath(dest);
    if (this.refuseWrite(d, "open")) return;
    const b = this.readNode(s);
    if (b) return this.inner.writeFile(d, b);
    return this.inner.cp(s, d, options);
  }

  async mv(src: string, dest: string): Promise<void> {
    const s = normalizeFsPath(src);
    const d = normalizeFsPath(dest);
    if (this.node(s)) throw new FsError("EPERM", "rename", s);
    if (this.refuseWrite(d, "rename")) throw new FsError("EPERM", "rename", d);
    return this.inner.mv(s, d);
  }

  resolvePath(base: string, path: string): string {
    return posix.resolve(base, path);
  }

  getAllPaths(): string[] {
    return [];
  }

  async chmod(path: string, mode: number): Promise<void> {
    const p = normalizeFsPath(path);
    if (this.node(p)) throw new FsError("EPERM", "chmod", p);
    return this.inner.chmod(p, mode);
  }

  async symlink(target: string, linkPath: string): Promise<void> {
    const p = normalizeFsPath(linkPath);
    if (this.node(p)) throw new FsError("EEXIST", "symlink", p);
    this.refuseWrite(p, "symlink");
    return this.inner.symlink(target, p);
  }

  async link(existingPath: string, newPath: string): Promise<void> {
    const e = normalizeFsPath(existingPath);
    const n = normalizeFsPath(newPath);
    if (this.node(e)) throw new FsError("EPERM", "link", e);
    if (this.node(n)) throw new FsError("EEXIST", "link", n);
    this.refuseWrite(n, "link");
    return this.inner.link(e, n);
  }

  async readlink(path: string): Promise<string> {
    const p = normalizeFsPath(path);
    const n = this.node(p);
    if (n?.kind === "link") return n.target;
    if (n) throw new FsError("EINVAL", "readlink", p);
    return this.inner.readlink(p);
  }

  async realpath(path: string): Promise<string> {
    let p = normalizeFsPath(path);
    if (p === "/bin" || p.startsWith("/bin/")) p = `/usr${p}`;
    return this.node(p) ? p : this.inner.realpath(p);
  }

  async utimes(path: string, atime: Date, mtime: Date): Promise<void> {
    const p = normalizeFsPath(path);
    if (this.node(p)) return;
    return this.inner.utimes(p, atime, mtime);
  }
}
