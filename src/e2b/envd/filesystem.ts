/**
 * envd's `filesystem.Filesystem` Connect service over Kiln's `sandbox.files`:
 * `Stat`, `MakeDir` (`already_exists` when it exists, which the SDK turns
 * into `false`), `Move`, `ListDir` (with depth), `Remove`. Watching
 * (`WatchDir` and the watcher calls) is not supported: `unimplemented`.
 */
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { EntryInfo } from "../../core/types.ts";
import { rpc } from "../errors.ts";
import type { EntryInfoInit } from "../proto/filesystem.ts";
import { targetOf } from "./target.ts";

/** envd's `FileType` enum values. */
const FILE_TYPE: Record<EntryInfo["type"], number> = { file: 1, dir: 2, symlink: 3 };

/** `ls -l`-style permissions, e.g. `-rw-r--r--`. */
export function permissions(type: EntryInfo["type"], mode: number): string {
  const kind = type === "dir" ? "d" : type === "symlink" ? "l" : "-";
  let s = "";
  for (let shift = 6; shift >= 0; shift -= 3) {
    const bits = (mode >> shift) & 7;
    s += (bits & 4 ? "r" : "-") + (bits & 2 ? "w" : "-") + (bits & 1 ? "x" : "-");
  }
  return kind + s;
}

/** A Kiln entry as envd's `EntryInfo`. */
export function entryInfo(e: EntryInfo): EntryInfoInit {
  const ms = Math.floor(e.mtimeMs);
  return {
    name: e.name,
    type: FILE_TYPE[e.type],
    path: e.path,
    size: BigInt(e.size),
    mode: e.mode & 0o7777,
    permissions: permissions(e.type, e.mode),
    owner: "",
    group: "",
    modifiedTime: { seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 },
    ...(e.symlinkTarget !== undefined ? { symlinkTarget: e.symlinkTarget } : {}),
  };
}

function unsupportedWatch(): never {
  throw new ConnectError("watching directories is not supported by Kiln", Code.Unimplemented);
}

/** The `filesystem.Filesystem` implementation. */
export function filesystemService() {
  return {
    async stat(req: { path: string }, call: HandlerContext) {
      const { sandbox } = targetOf(call);
      return { entry: entryInfo(await rpc(() => sandbox.files.stat(req.path))) };
    },

    async makeDir(req: { path: string }, call: HandlerContext) {
      const { sandbox } = targetOf(call);
      const created = await rpc(() => sandbox.files.makeDir(req.path));
      if (!created) throw new ConnectError(`${req.path} already exists`, Code.AlreadyExists);
      return { entry: entryInfo(await rpc(() => sandbox.files.stat(req.path))) };
    },

    async move(req: { source: string; destination: string }, call: HandlerContext) {
      const { sandbox } = targetOf(call);
      return { entry: entryInfo(await rpc(() => sandbox.files.rename(req.source, req.destination))) };
    },

    async listDir(req: { path: string; depth: number }, call: HandlerContext) {
      const { sandbox } = targetOf(call);
      const depth = req.depth || 1;
      const entries = await rpc(() => sandbox.files.list(req.path, { depth }));
      return { entries: entries.map(entryInfo) };
    },

    async remove(req: { path: string }, call: HandlerContext) {
      const { sandbox } = targetOf(call);
      await rpc(() => sandbox.files.remove(req.path));
      return {};
    },

    // biome-ignore lint/correctness/useYield: always fails: not supported
    async *watchDir() {
      unsupportedWatch();
    },
    async createWatcher() {
      unsupportedWatch();
    },
    async getWatcherEvents() {
      unsupportedWatch();
    },
    async removeWatcher() {
      unsupportedWatch();
    },
  };
}
