/**
 * `kiln cp SRC DST`: copies files and directories between the host and a
 * sandbox (`ID:/path` names the sandbox side), like `docker cp`. Copies out
 * never write through a link on the host and carry no setuid, setgid or
 * sticky bits (see workspace/host-tree.ts).
 */
import { basename, dirname, join, posix, resolve } from "node:path";
import type { Command } from "commander";
import { InvalidArgumentError } from "../../core/errors.ts";
import { withKiln } from "../context.ts";
import { printJson } from "../output.ts";

/** `ID:/path` → `{ id, path }`; a host path → `{ path }`. */
export function parseLocation(arg: string): { id?: string; path: string } {
  const m = /^(sb_[a-z0-9]{20}):(.*)$/.exec(arg);
  if (m) return { id: m[1]!, path: m[2] || "/workspace" };
  return { path: arg };
}

/**
 * Where a copy of sandbox path `srcPath` lands for host destination `dst`.
 * The path the user typed resolves as usual up to its last component, which
 * is never followed: a real directory is copied into (under the source's
 * base name); a symbolic link, a device, a FIFO or a socket is refused (a
 * link could lead anywhere, and replacing one the user named, or a device,
 * could break the host). Under a directory, an entry of the sandbox's name
 * that is a link is replaced, never followed (it may be one an earlier copy
 * brought out); one that is a device, FIFO or socket is refused.
 * @throws InvalidArgumentError
 */
async function hostTarget(dst: string, srcPath: string): Promise<string> {
  const { lstat } = await import("node:fs/promises");
  const special = (st: import("node:fs").Stats) =>
    st.isCharacterDevice() || st.isBlockDevice() || st.isFIFO() || st.isSocket();
  const typed = resolve(dst);
  const st = await lstat(typed).catch(() => undefined);
  if (st?.isSymbolicLink() || (st && special(st)))
    throw new InvalidArgumentError(`refusing to copy onto ${typed}: not a regular file or directory`);
  if (!st?.isDirectory()) return typed;
  const host = join(typed, posix.basename(srcPath));
  const inner = await lstat(host).catch(() => undefined);
  if (inner && special(inner))
    throw new InvalidArgumentError(`refusing to copy onto ${host}: not a regular file or directory`);
  return host;
}

/** Registers `cp`. */
export function registerCopy(program: Command): void {
  program
    .command("cp")
    .description(
      "copy between host and sandbox: kiln cp ./src ID:/workspace/src, kiln cp ID:/workspace/out.txt .",
    )
    .argument("<src>", "source: host path or ID:/path")
    .argument("<dst>", "destination: host path or ID:/path")
    .action(async (srcArg: string, dstArg: string, _flags, cmd: Command) =>
      withKiln(cmd, async (kiln, g) => {
        const { ensureHostDir, hostTreeSink, hostTreeSource, writeHostFile } = await import(
          "../../workspace/host-tree.ts"
        );
        const { packTree, unpackTree } = await import("../../workspace/tar.ts");
        const { createReadStream } = await import("node:fs");
        const { lstat, mkdir, stat } = await import("node:fs/promises");
        const { Readable } = await import("node:stream");
        const src = parseLocation(srcArg);
        const dst = parseLocation(dstArg);
        if (Boolean(src.id) === Boolean(dst.id)) {
          throw new InvalidArgumentError("exactly one of SRC and DST must be a sandbox path (ID:/path)");
        }
        if (dst.id) {
          const sb = await kiln.connect(dst.id);
          const host = resolve(src.path);
          const st = await stat(host);
          const target =
            (await sb.files.exists(dst.path)) && (await sb.files.stat(dst.path)).type === "dir"
              ? posix.join(dst.path, basename(host))
              : dst.path;
          if (st.isDirectory()) await sb.files.importTar(target, packTree(hostTreeSource(host)));
          else
            await sb.files.write(
              target,
              Readable.toWeb(createReadStream(host)) as ReadableStream<Uint8Array>,
            );
          if (g.json) printJson({ copied: host, to: `${dst.id}:${target}` });
        } else {
          const sb = await kiln.connect(src.id!);
          const info = await sb.files.stat(src.path);
          const host = await hostTarget(dst.path, src.path);
          if (info.type === "dir") {
            // The export first: a folder it refuses (a name that is not UTF-8) leaves nothing on the host.
            const tar = await sb.files.exportTar(src.path);
            try {
              await mkdir(dirname(host), { recursive: true });
              if ((await lstat(host).catch(() => undefined))?.isFile())
                throw new InvalidArgumentError(`cannot copy a directory onto the file ${host}`);
              await ensureHostDir(host, info.mode);
            } catch (e) {
              await tar.cancel().catch(() => {});
              throw e;
            }
            const sink = hostTreeSink(host, {
              onSkip: (path, type) => process.stderr.write(`kiln: skipped ${type} ${path}\n`),
            });
            await unpackTree(tar, sink);
          } else {
            const data = await sb.files.read(src.path, { format: "stream" });
            // A link's own mode says nothing of the file it names.
            const mode = info.type === "file" ? info.mode : 0o644;
            await writeHostFile(host, Readable.fromWeb(data as never), mode);
          }
          if (g.json) printJson({ copied: `${src.id}:${src.path}`, to: host });
        }
      }),
    );
}
