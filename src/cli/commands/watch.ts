/**
 * `kiln watch ID PATH`: prints a directory's changes as they happen, one line
 * each (`create sub/file.txt`; `--json`: one JSON object per line), until
 * interrupted (SIGINT, SIGTERM) or the watch ends. "watching PATH" goes to
 * stderr once the watch is in place.
 *
 * A sandbox's processes belong to the Kiln process that has it open, so a
 * watch sees the changes made through the process serving the sandbox: with
 * `--server URL` (or `$KILN_SERVER`; the key in `$KILN_API_KEY`) the watch is
 * the server's, and sees every change made through it.
 */
import type { Command } from "commander";
import type { WatchEvent, Watching } from "../../core/backend.ts";
import type { GlobalOptions } from "../context.ts";
import { withSandbox } from "../sandbox-access.ts";

type WatchFn = (
  path: string,
  options: { recursive: boolean; signal: AbortSignal },
  onEvent: (e: WatchEvent) => void,
) => Promise<Watching>;

/** Registers `watch`. */
export function registerWatch(program: Command): void {
  program
    .command("watch")
    .description("print a directory's changes (create, write, remove, rename, chmod) as they happen")
    .argument("<id>", "sandbox id")
    .argument("<path>", "directory inside the sandbox")
    .option("-r, --recursive", "every directory below it too")
    .option("--server <url>", "watch through a `kiln serve` (key in $KILN_API_KEY)", process.env.KILN_SERVER)
    .action(async (id: string, path: string, flags: { recursive?: boolean; server?: string }, cmd: Command) =>
      withSandbox(cmd, id, flags.server, (sb, g) =>
        follow((p, o, on) => sb.files.watch(p, o, on), path, flags.recursive === true, g),
      ),
    );
}

/** Watches until the watch ends or the process is interrupted, printing each change. */
async function follow(watch: WatchFn, path: string, recursive: boolean, g: GlobalOptions): Promise<void> {
  const stop = new AbortController();
  const watching = await watch(path, { recursive, signal: stop.signal }, (e) => {
    process.stdout.write(g.json ? `${JSON.stringify(e)}\n` : `${e.type} ${e.name}\n`);
  });
  process.stderr.write(`watching ${path}\n`);
  const onSignal = () => stop.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    await watching.ended;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
