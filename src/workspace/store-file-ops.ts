/**
 * Kiln's FileOps over the SQLite workspace store: what the virtual tier serves
 * to `sandbox.files`. Reads stream chunk by chunk; writes land in a temporary
 * file that replaces the target only when complete, so a write that fails
 * (too large, disk full, aborted) leaves the old file as it was.
 */
import { randomBytes } from "node:crypto";
import { posix } from "node:path";
import { Readable } from "node:stream";
import type { FileOps, WatchEvent, Watching } from "../core/backend.ts";
import { OWN_PROCESS_TOKEN } from "../core/process-token.ts";
import type { EntryInfo, EntryType } from "../core/types.ts";
import { type AgentFsStore, isDir, isLink, S_IFREG } from "./agentfs-store.ts";
import { FsError } from "./fs-error.ts";
import type { SqliteFs } from "./sqlite-fs.ts";
import { packTree, type TreeEntry, unpackTree } from "./tar.ts";

const READ_CHUNK_BYTES = 256 * 1024;

function typeOf(mode: number): EntryType {
  return isDir(mode) ? "dir" : isLink(mode) ? "symlink" : "file";
}

/** FileOps backed by an AgentFS store. */
export class StoreFileOps implements FileOps {
  private readonly store: AgentFsStore;
  private readonly fs: SqliteFs;
  private readonly watches = new Set<() => void>();

  constructor(store: AgentFsStore, fs: SqliteFs) {
    this.store = store;
    this.fs = fs;
  }

  private info(path: string, ino: number): EntryInfo {
    const i = this.store.getattr(ino, path);
    const type = typeOf(i.mode);
    return {
      name: posix.basename(path) || "/",
      path,
      type,
      size: i.size,
      mode: i.mode & 0o7777,
      mtimeMs: i.mtimeMs,
      ...(type === "symlink" ? { symlinkTarget: this.store.readlink(ino, path) } : {}),
    };
  }

  /**
   * Watches a directory through the store's change feed: changes made by
   * this process (the shell and the files API), which is every writer of a
   * virtual sandbox served by one Kiln process.
   */
  async watch(path: string, recursive: boolean, onEvent: (e: WatchEvent) => void): Promise<Watching> {
    const ino = this.store.inodeAt(path, true);
    if (!isDir(this.store.getattr(ino, path).mode)) throw new FsError("ENOTDIR", "watch", path);
    const self = this.store.dentryOf(ino);
    let endWatch = () => {};
    const ended = new Promise<void>((r) => {
      endWatch = r;
    });
    const stop = () => {
      unsubscribe();
      this.watches.delete(stop);
      endWatch();
    };
    const unsubscribe = this.store.onChange((c) => {
      if (self && c.parent === Number(self.parent_ino) && c.name === String(self.name)) {
        if (c.type === "remove" || c.type === "rename") queueMicrotask(stop);
        return;
      }
      const dir = c.parent === ino ? "" : recursive ? this.below(ino, c.parent) : undefined;
      if (dir === undefined) return;
      const event: WatchEvent = { type: c.type, name: dir === "" ? c.name : `${dir}/${c.name}` };
      // Told after the change's own call returns, never inside the store's transaction.
      queueMicrotask(() => onEvent(event));
    });
    this.watches.add(stop);
    return { ended, stop };
  }

  /** The path of directory `dir` below directory `root` (`a/b`), or undefined when it is not below it. */
  private below(root: number, dir: number): string | undefined {
    const names: string[] = [];
    let cur = dir;
    for (let hops = 0; hops < 4096 && cur !== root; hops++) {
      const d = this.store.dentryOf(cur);
      if (!d) return undefined;
      names.push(String(d.name));
      cur = Number(d.parent_ino);
    }
    return cur === root ? names.reverse().join("/") : undefined;
  }

  /** Ends every watch (the sandbox is closing). */
  stopWatches(): void {
    for (const stop of [...this.watches]) stop();
  }

  async stat(path: string): Promise<EntryInfo> {
    return this.info(path, this.store.inodeAt(path, false));
  }

  async list(path: string, depth: number): Promise<EntryInfo[]> {
    const ino = this.store.inodeAt(path, true);
    if (!isDir(this.store.getattr(ino, path).mode)) throw new FsError("ENOTDIR", "scandir", path);
    const out: EntryInfo[] = [];
    const walk = (dirIno: number, dirPath: string, level: number) => {
      for (const d of this.store.readdir(dirIno)) {
        const p = posix.join(dirPath, d.name);
        out.push(this.info(p, d.ino));
        if (level < depth && isDir(d.mode)) walk(d.ino, p, level + 1);
      }
    };
    walk(ino, path, 1);
    return out;
  }

  async read(path: string): Promise<ReadableStream<Uint8Array>> {
    const ino = this.store.inodeAt(path, true);
    if (isDir(this.store.getattr(ino, path).mode)) throw new FsError("EISDIR", "read", path);
    let offset = 0;
    const store = this.store;
    return new ReadableStream<Uint8Array>({
      pull(controller) {
        try {
          const chunk = store.read(ino, offset, READ_CHUNK_BYTES);
          if (chunk.length === 0) controller.close();
          else {
            offset += chunk.length;
            controller.enqueue(chunk);
          }
        } catch (e) {
          controller.error(e);
        }
      },
    });
  }

  async write(path: string, data: ReadableStream<Uint8Array>, maxBytes: number): Promise<EntryInfo> {
    await this.fs.mkdir(posix.dirname(path), { recursive: true });
    const target = this.store.resolve(path, true);
    if (target.ino !== undefined && isDir(this.store.getattr(target.ino).mode)) {
      throw new FsError("EISDIR", "open", path);
    }
    const dir = target.parent;
    // Named for this process, so that after a crash the next one can sweep it (sweepTemporary).
    const tmpName = `.kiln-write-${OWN_PROCESS_TOKEN}-${randomBytes(6).toString("hex")}`;
    const tmp = this.store.mknod(dir, tmpName, S_IFREG | 0o644, path);
    let written = 0;
    try {
      const reader = data.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        written += value.length;
        if (written > maxBytes) {
          await reader.cancel();
          throw new FsError("EFBIG", "write", path);
        }
        this.store.write(tmp, written - value.length, value, path);
      }
      this.store.tx(() => {
        if (target.ino !== undefined) {
          this.store.setattr(tmp, { mode: this.store.getattr(target.ino).mode });
        }
        this.store.rename(dir, tmpName, target.parent, target.name, path);
      });
    } catch (e) {
      if (this.store.lookup(dir, tmpName) !== undefined) this.store.unlink(dir, tmpName, path);
      throw e;
    }
    return this.stat(posix.join(posix.dirname(path), target.name === "." ? "" : target.name));
  }

  async mkdir(path: string): Promise<boolean> {
    const existed = (await this.fs.exists(path)) && (await this.fs.stat(path)).isDirectory;
    if (existed) return false;
    await this.fs.mkdir(path, { recursive: true });
    return true;
  }

  async remove(path: string): Promise<void> {
    await this.fs.rm(path, { recursive: true });
  }

  async rename(from: string, to: string): Promise<void> {
    await this.fs.mv(from, to);
  }

  async symlink(target: string, path: string): Promise<void> {
    await this.fs.symlink(target, path);
  }

  async exportTar(path: string): Promise<ReadableStream<Uint8Array>> {
    const rootIno = this.store.inodeAt(path, true);
    if (!isDir(this.store.getattr(rootIno, path).mode)) throw new FsError("ENOTDIR", "tar", path);
    const store = this.store;
    const self = this;
    return packTree({
      async *entries(): AsyncIterable<TreeEntry> {
        const walk = function* (dirIno: number, rel: string): Generator<TreeEntry> {
          for (const d of store.readdir(dirIno)) {
            const r = rel ? `${rel}/${d.name}` : d.name;
            const i = store.getattr(d.ino);
            const type = typeOf(i.mode);
            yield {
              path: r,
              type,
              mode: i.mode & 0o7777,
              mtimeMs: i.mtimeMs,
              size: type === "file" ? i.size : 0,
              ...(type === "symlink" ? { linkTarget: store.readlink(d.ino) } : {}),
            };
            if (type === "dir") yield* walk(d.ino, r);
          }
        };
        yield* walk(rootIno, "");
      },
      async open(rel: string) {
        return Readable.fromWeb((await self.read(posix.join(path, rel))) as never);
      },
    });
  }

  async importTar(path: string, tar: ReadableStream<Uint8Array>): Promise<void> {
    await this.fs.mkdir(path, { recursive: true });
    const abs = (rel: string) => posix.join(path, rel);
    await unpackTree(tar, {
      mkdir: async (rel, mode) => {
        await this.fs.mkdir(abs(rel), { recursive: true });
        const ino = this.store.inodeAt(abs(rel), false);
        if (isDir(this.store.getattr(ino).mode)) this.store.setattr(ino, { mode });
      },
      file: async (rel, mode, mtimeMs, data) => {
        const p = abs(rel);
        await this.write(p, ReadableStream.from(data as AsyncIterable<Uint8Array>), Number.MAX_SAFE_INTEGER);
        this.store.setattr(this.store.inodeAt(p, false), { mode, mtimeMs });
      },
      symlink: async (rel, target, mtimeMs) => {
        const p = abs(rel);
        await this.fs.mkdir(posix.dirname(p), { recursive: true });
        await this.fs.rm(p, { force: true });
        await this.fs.symlink(target, p);
        this.store.setattr(this.store.inodeAt(p, false), { mtimeMs });
      },
      finish: async (dirs) => {
        for (const d of dirs) {
          const ino = this.store.inodeAt(abs(d.path), false);
          if (isDir(this.store.getattr(ino).mode)) this.store.setattr(ino, { mtimeMs: d.mtimeMs });
        }
      },
    });
  }
}
