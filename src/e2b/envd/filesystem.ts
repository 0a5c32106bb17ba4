/**
 * envd's `filesystem.Filesystem` Connect service over Kiln's `sandbox.files`:
 * `Stat`, `MakeDir` (`already_exists` when it exists, which the SDK turns
 * into `false`), `Move`, `ListDir` (with depth), `Remove`, and watching over
 * `sandbox.files.watch`: `WatchDir` (a stream: `start`, then one
 * `filesystem` event per change, keepalives when idle) and the polled
 * watchers (`CreateWatcher`, `GetWatcherEvents`, `RemoveWatcher`).
 */
import { randomUUID } from "node:crypto";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { WatchEvent, Watching } from "../../core/backend.ts";
import type { EntryInfo } from "../../core/types.ts";
import { rpc } from "../errors.ts";
import type { EntryInfoInit } from "../proto/filesystem.ts";
import { EventQueue, targetOf } from "./target.ts";

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

/** envd's `EventType` enum values. */
const EVENT_TYPE: Record<WatchEvent["type"], number> = {
  create: 1,
  write: 2,
  remove: 3,
  rename: 4,
  chmod: 5,
};

/** A Kiln watch event as envd's `FilesystemEvent`. */
function fsEvent(e: WatchEvent): { name: string; type: number } {
  return { name: e.name, type: EVENT_TYPE[e.type] };
}

/** How often an idle `WatchDir` stream sends a keepalive, in ms. */
const KEEPALIVE_MS = 30_000;
/** Events a polled watcher keeps between two `GetWatcherEvents`; older ones are dropped. */
const MAX_POLLED_EVENTS = 10_000;

/** A watcher made by `CreateWatcher`, drained by `GetWatcherEvents`. */
interface PolledWatcher {
  sandboxId: string;
  events: WatchEvent[];
  watching: Watching;
}

/** The `filesystem.Filesystem` implementation. */
export function filesystemService() {
  const watchers = new Map<string, PolledWatcher>();
  const polled = (id: string, sandboxId: string): PolledWatcher => {
    const w = watchers.get(id);
    if (!w || w.sandboxId !== sandboxId) throw new ConnectError(`no watcher ${id}`, Code.NotFound);
    return w;
  };
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

    async *watchDir(req: { path: string; recursive: boolean }, call: HandlerContext) {
      const { sandbox } = targetOf(call);
      type Item = { event: { case: "filesystem" | "keepalive"; value: object } };
      const queue = new EventQueue<Item>();
      const watching = await rpc(() =>
        sandbox.files.watch(req.path, { recursive: req.recursive, signal: call.signal }, (e) =>
          queue.push({ event: { case: "filesystem", value: fsEvent(e) } }),
        ),
      );
      void watching.ended.then(() => queue.close());
      const keepalive = setInterval(
        () => queue.push({ event: { case: "keepalive", value: {} } }),
        KEEPALIVE_MS,
      );
      try {
        yield { event: { case: "start", value: {} } };
        for await (const item of queue.drain(call.signal)) yield item;
      } finally {
        clearInterval(keepalive);
        watching.stop();
        queue.close();
      }
    },

    async createWatcher(req: { path: string; recursive: boolean }, call: HandlerContext) {
      const { sandbox } = targetOf(call);
      const events: WatchEvent[] = [];
      const watching = await rpc(() =>
        sandbox.files.watch(req.path, { recursive: req.recursive }, (e) => {
          if (events.length >= MAX_POLLED_EVENTS) events.shift();
          events.push(e);
        }),
      );
      const watcherId = randomUUID();
      watchers.set(watcherId, { sandboxId: sandbox.id, events, watching });
      // A watch that ended (stopped, the directory or the sandbox gone) is forgotten: no entry outlives its sandbox.
      void watching.ended.then(() => watchers.delete(watcherId));
      return { watcherId };
    },

    async getWatcherEvents(req: { watcherId: string }, call: HandlerContext) {
      const { sandbox } = targetOf(call);
      const w = polled(req.watcherId, sandbox.id);
      return { events: w.events.splice(0).map(fsEvent) };
    },

    async removeWatcher(req: { watcherId: string }, call: HandlerContext) {
      const { sandbox } = targetOf(call);
      const w = polled(req.watcherId, sandbox.id);
      w.watching.stop();
      watchers.delete(req.watcherId);
      return {};
    },
  };
}
