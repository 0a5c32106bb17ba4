/**
 * The sandbox's SQLite workspace as an Emscripten filesystem, for the virtual
 * tier's Python worker: every top-level directory of the store is mounted at
 * the same path inside the interpreter, so that paths mean the same in Python
 * and in bash. Store errors become the errno Python sees.
 */
import { type AgentFsStore, isDir, isFile, S_IFLNK, S_IFMT } from "../../workspace/agentfs-store.ts";
import { ERRNO_NUMBERS, FsError } from "../../workspace/fs-error.ts";

// ---- Emscripten types (only what the worker touches) ----------------------------

/** A node of Emscripten's filesystem. */
export interface EmNode {
  id: number;
  name: string;
  mode: number;
  parent: EmNode;
  mount: EmMount;
  mounted: EmMount | null;
  node_ops: object;
  stream_ops: object;
  name_next?: EmNode;
  /** Our field: the AgentFS inode this node stands for. */
  storeIno: number;
}
/** A mounted filesystem. */
export interface EmMount {
  type: object;
  opts: { root: string };
  root: EmNode;
}
/** An open file. */
export interface EmStream {
  node: EmNode;
  position: number;
}
/** Emscripten's `FS` object. */
export interface EmFS {
  ErrnoError: new (errno: number) => Error;
  nameTable: (EmNode | undefined)[];
  createNode(parent: EmNode | null, name: string, mode: number, rdev: number): EmNode;
  hashRemoveNode(node: EmNode): void;
  lookupNode(parent: EmNode, name: string): EmNode;
  lookupPath(path: string): { node: EmNode };
  mount(type: object, opts: { root: string }, mountpoint: string): EmNode;
  mkdir(path: string): void;
  mkdirTree(path: string): void;
  writeFile(path: string, data: Uint8Array): void;
  registerDevice(dev: number, ops: object): void;
  makedev(major: number, minor: number): number;
  mkdev(path: string, dev: number): void;
  open(path: string, flags: number): unknown;
}

const EIO = 29;

/** Copies up to `length` bytes of `src` from `from` into Emscripten's buffer; returns how many. */
export function copyOut(
  src: Uint8Array,
  from: number,
  buffer: Int8Array,
  offset: number,
  length: number,
): number {
  const n = Math.min(length, src.length - from);
  if (n <= 0) return 0;
  new Uint8Array(buffer.buffer, buffer.byteOffset + offset, n).set(src.subarray(from, from + n));
  return n;
}

/** A view of `length` bytes of Emscripten's buffer at `offset`. */
export function bytesOf(buffer: Int8Array, offset: number, length: number): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset + offset, length);
}

// ---- the store as an Emscripten filesystem ----------------------------------

/** The filesystem type that serves a mount from `store` (errors mapped to errno). */
function createStoreFs(FS: EmFS, store: AgentFsStore) {
  const toErrno = (e: unknown): Error => {
    if (e instanceof FS.ErrnoError) return e;
    if (e instanceof FsError) return new FS.ErrnoError(ERRNO_NUMBERS[e.code]);
    return new FS.ErrnoError(EIO); // e.g. SQLITE_BUSY after the busy timeout
  };
  const guard = <T>(fn: () => T): T => {
    try {
      return fn();
    } catch (e) {
      throw toErrno(e);
    }
  };

  const node_ops = {
    getattr: (node: EmNode) =>
      guard(() => {
        const i = store.getattr(node.storeIno);
        node.mode = i.mode;
        return {
          dev: 1,
          ino: i.ino,
          mode: i.mode,
          nlink: i.nlink,
          uid: i.uid,
          gid: i.gid,
          rdev: 0,
          size: i.size,
          atime: new Date(i.atimeMs),
          mtime: new Date(i.mtimeMs),
          ctime: new Date(i.ctimeMs),
          blksize: 4096,
          blocks: Math.ceil(i.size / 512),
        };
      }),
    setattr: (
      node: EmNode,
      attr: { mode?: number; size?: number; atime?: number | null; mtime?: number | null },
    ) =>
      guard(() => {
        if (attr.mode !== undefined) {
          store.setattr(node.storeIno, { mode: attr.mode });
          node.mode = (node.mode & S_IFMT) | (attr.mode & 0o7777);
        }
        if (attr.size !== undefined) store.truncate(node.storeIno, attr.size);
        const times = { atimeMs: attr.atime ?? undefined, mtimeMs: attr.mtime ?? undefined };
        if (times.atimeMs !== undefined || times.mtimeMs !== undefined) store.setattr(node.storeIno, times);
      }),
    lookup: (parent: EmNode, name: string) =>
      guard(() => {
        const ino = store.lookup(parent.storeIno, name);
        if (ino === undefined) throw new FsError("ENOENT", "lookup", name);
        return makeNode(parent, name, ino, store.getattr(ino).mode);
      }),
    mknod: (parent: EmNode, name: string, mode: number) =>
      guard(() => {
        // Only files and directories: devices and FIFOs would mean nothing to bash.
        if (!isFile(mode) && !isDir(mode)) throw new FsError("EPERM", "mknod", name);
        return makeNode(parent, name, store.mknod(parent.storeIno, name, mode), mode);
      }),
    rename: (node: EmNode, newDir: EmNode, newName: string) =>
      guard(() => {
        let replaced: EmNode | undefined;
        try {
          replaced = FS.lookupNode(newDir, newName);
        } catch {}
        store.rename(node.parent.storeIno, node.name, newDir.storeIno, newName);
        // Emscripten re-hashes `node` itself; the replaced node must leave the cache.
        if (replaced && replaced !== node) FS.hashRemoveNode(replaced);
        node.name = newName;
      }),
    unlink: (parent: EmNode, name: string) => guard(() => store.unlink(parent.storeIno, name)),
    rmdir: (parent: EmNode, name: string) => guard(() => store.rmdir(parent.storeIno, name)),
    readdir: (node: EmNode) => guard(() => [".", "..", ...store.readdir(node.storeIno).map((d) => d.name)]),
    symlink: (parent: EmNode, name: string, target: string) =>
      guard(() => makeNode(parent, name, store.symlink(parent.storeIno, name, target), S_IFLNK | 0o777)),
    readlink: (node: EmNode) => guard(() => store.readlink(node.storeIno)),
  };

  const stream_ops = {
    read: (s: EmStream, buf: Int8Array, off: number, len: number, pos: number) =>
      guard(() => {
        if (isDir(s.node.mode)) throw new FsError("EISDIR", "read", s.node.name);
        return copyOut(store.read(s.node.storeIno, pos, len), 0, buf, off, len);
      }),
    write: (s: EmStream, buf: Int8Array, off: number, len: number, pos: number) =>
      guard(() => store.write(s.node.storeIno, pos, bytesOf(buf, off, len))),
    llseek: (s: EmStream, offset: number, whence: number) =>
      guard(() => {
        let pos = offset;
        if (whence === 1) pos += s.position;
        else if (whence === 2) pos += store.getattr(s.node.storeIno).size;
        if (pos < 0) throw new FsError("EINVAL", "llseek", s.node.name);
        return pos;
      }),
  };

  function makeNode(parent: EmNode | null, name: string, ino: number, mode: number): EmNode {
    const node = FS.createNode(parent, name, mode, 0);
    node.node_ops = node_ops;
    node.stream_ops = stream_ops;
    node.storeIno = ino;
    return node;
  }

  return {
    mount: (m: EmMount) =>
      guard(() =>
        makeNode(null, "/", store.inodeAt(m.opts.root), store.getattr(store.inodeAt(m.opts.root)).mode),
      ),
    node_ops,
    stream_ops,
  };
}

/** The store's top-level directories mounted into one interpreter, kept current between jobs. */
export class StoreMounts {
  private readonly store: AgentFsStore;
  private readonly reserved: ReadonlySet<string>;
  private storeFs: object | undefined;
  private readonly mounted = new Set<string>();

  /** `reserved`: top-level names that stay Emscripten's own, never mounted from the store. */
  constructor(store: AgentFsStore, reserved: ReadonlySet<string>) {
    this.store = store;
    this.reserved = reserved;
  }

  /** Run before each job: bash (another connection) may have changed the tree since the last one. */
  refresh(FS: EmFS): void {
    this.forgetCachedNodes(FS);
    this.mountStoreDirs(FS);
  }

  /**
   * Mounts every top-level directory of the store (/workspace, /tmp, ...) at the
   * same path; directories bash created since the last job are picked up.
   */
  private mountStoreDirs(FS: EmFS): void {
    this.storeFs ??= createStoreFs(FS, this.store);
    for (const d of this.store.readdir(this.store.root)) {
      if (!isDir(d.mode) || this.reserved.has(d.name) || this.mounted.has(d.name)) continue;
      const at = `/${d.name}`;
      try {
        FS.mkdir(at);
      } catch {} // exists already (Emscripten's own /tmp and /home)
      try {
        FS.mount(this.storeFs, { root: at }, at);
        this.mounted.add(d.name);
      } catch {} // not a directory on the Emscripten side: leave it
    }
  }

  /**
   * Drops cached store nodes from Emscripten's name cache. bash (another
   * connection) may have replaced any file since the last job; an open file
   * keeps its node, as POSIX wants.
   */
  private forgetCachedNodes(FS: EmFS): void {
    const stale: EmNode[] = [];
    for (const head of FS.nameTable) {
      for (let n = head; n; n = n.name_next) {
        if (n.mount?.type === this.storeFs && n !== n.mount.root && !n.mounted) stale.push(n);
      }
    }
    for (const n of stale) FS.hashRemoveNode(n);
  }
}
