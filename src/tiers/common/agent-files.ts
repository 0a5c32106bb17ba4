/**
 * FileOps served by the in-sandbox agent: every path is resolved inside the
 * sandbox's own mount namespace, so symlinks can never reach the host. Tar
 * export and import are built here on the agent's primitives.
 */
import { posix } from "node:path";
import { Readable } from "node:stream";
import type { FileOps, WatchEvent, Watching } from "../../core/backend.ts";
import { UnsupportedError } from "../../core/errors.ts";
import type { EntryInfo } from "../../core/types.ts";
import type { AgentClient } from "../../protocol/agent-client.ts";
import { packTree, type TreeEntry, unpackTree } from "../../workspace/tar.ts";

/** FileOps over an agent connection. */
export class AgentFiles implements FileOps {
  private readonly agent: () => Promise<AgentClient>;

  /** `agent` returns the live connection (it changes when the sandbox's runtime is relaunched). */
  constructor(agent: () => Promise<AgentClient>) {
    this.agent = agent;
  }

  async stat(path: string): Promise<EntryInfo> {
    return (await this.agent()).stat(path);
  }
  async list(path: string, depth: number): Promise<EntryInfo[]> {
    return (await this.agent()).list(path, depth);
  }
  async read(path: string): Promise<ReadableStream<Uint8Array>> {
    return (await this.agent()).read(path);
  }
  async write(path: string, data: ReadableStream<Uint8Array>, maxBytes: number): Promise<EntryInfo> {
    await (await this.agent()).mkdir(posix.dirname(path));
    return (await this.agent()).write(path, data, maxBytes);
  }
  async watch(path: string, recursive: boolean, onEvent: (e: WatchEvent) => void): Promise<Watching> {
    return (await this.agent()).watch(path, recursive, onEvent);
  }
  async mkdir(path: string): Promise<boolean> {
    return (await this.agent()).mkdir(path);
  }
  async remove(path: string): Promise<void> {
    return (await this.agent()).remove(path);
  }
  async rename(from: string, to: string): Promise<void> {
    return (await this.agent()).rename(from, to);
  }
  async symlink(target: string, path: string): Promise<void> {
    return (await this.agent()).symlink(target, path);
  }

  async exportTar(path: string): Promise<ReadableStream<Uint8Array>> {
    const agent = await this.agent();
    const root = (await agent.stat(path)).type;
    if (root !== "dir") throw Object.assign(new Error(`not a directory: ${path}`), { errno: "ENOTDIR" });
    const listed = await agent.listWithSpecial(path, 1_000_000);
    // Kiln's paths are UTF-8, so such a name cannot be read nor written: refuse before any byte, never leave it out.
    const lossy = listed.find((e) => e.lossy);
    if (lossy)
      throw new UnsupportedError(
        `cannot export ${path}: ${lossy.entry.path} has a name or a link target that is not UTF-8 (shown with U+FFFD)`,
      );
    // FIFOs, sockets and devices are not exported: reading a FIFO would block, and no copy may create one.
    const entries = listed.filter((e) => !e.special).map((e) => e.entry);
    // Parents before children: the listing is depth-first per directory; sort by path to be sure.
    entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    const rel = (p: string) => posix.relative(path, p);
    return packTree({
      async *entries(): AsyncIterable<TreeEntry> {
        for (const e of entries) {
          yield {
            path: rel(e.path),
            type: e.type,
            mode: e.mode,
            mtimeMs: e.mtimeMs,
            size: e.type === "file" ? e.size : 0,
            ...(e.symlinkTarget !== undefined ? { linkTarget: e.symlinkTarget } : {}),
          };
        }
      },
      open: async (p: string) => Readable.fromWeb((await agent.read(posix.join(path, p))) as never),
    });
  }

  async importTar(path: string, tar: ReadableStream<Uint8Array>): Promise<void> {
    const agent = await this.agent();
    const a = () => agent;
    const abs = (p: string) => posix.join(path, p);
    await a().mkdir(path);
    await unpackTree(tar, {
      async mkdir(p, mode) {
        await a().mkdir(abs(p));
        await a().chmod(abs(p), mode);
      },
      async file(p, mode, mtimeMs, data) {
        await a().mkdir(posix.dirname(abs(p)));
        await a().write(
          abs(p),
          ReadableStream.from(data as AsyncIterable<Uint8Array>),
          Number.MAX_SAFE_INTEGER,
        );
        await a().chmod(abs(p), mode);
        await a().utimes(abs(p), mtimeMs);
      },
      async symlink(p, target, mtimeMs) {
        await a().mkdir(posix.dirname(abs(p)));
        await a()
          .remove(abs(p))
          .catch(() => {});
        await a().symlink(target, abs(p));
        await a()
          .utimes(abs(p), mtimeMs)
          .catch(() => {});
      },
      async finish(dirs) {
        for (const d of dirs) await a().utimes(abs(d.path), d.mtimeMs);
      },
    });
  }
}
