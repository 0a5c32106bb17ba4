/**
 * `kiln cp SRC DST`: copies files and directories between the host and a
 * sandbox (`ID:/path` names the sandbox side), like `docker cp`.
 */
import { basename, join, posix, resolve } from "node:path";
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
        const { hostTreeSink, hostTreeSource } = await import("../../workspace/host-tree.ts");
        const { packTree, unpackTree } = await import("../../workspace/tar.ts");
        const { createReadStream, createWriteStream } = await import("node:fs");
        const { mkdir, stat } = await import("node:fs/promises");
        const { Readable } = await import("node:stream");
        const { pipeline } = await import("node:stream/promises");
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
          let host = resolve(dst.path);
          const hostSt = await stat(host).catch(() => undefined);
          if (hostSt?.isDirectory()) host = join(host, posix.basename(src.path));
          if (info.type === "dir") {
            await mkdir(host, { recursive: true });
            await unpackTree(await sb.files.exportTar(src.path), hostTreeSink(host));
          } else {
            const data = await sb.files.read(src.path, { format: "stream" });
            await pipeline(Readable.fromWeb(data as never), createWriteStream(host));
          }
          if (g.json) printJson({ copied: `${src.id}:${src.path}`, to: host });
        }
      }),
    );
}
