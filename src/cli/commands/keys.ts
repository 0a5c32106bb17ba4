/** `kiln keys create|ls|revoke`: API keys for `kiln serve`, stored hashed in the data directory. */
import type { Command } from "commander";
import { InvalidArgumentError } from "../../core/errors.ts";
import type { KeyStore } from "../../server/keys.ts";
import type { GlobalOptions } from "../context.ts";
import { printJson, printTable } from "../output.ts";

async function withKeys<T>(cmd: Command, fn: (keys: KeyStore, g: GlobalOptions) => T): Promise<T> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  const { KeyStore } = await import("../../server/keys.ts");
  const { defaultDataDir } = await import("../../core/kiln.ts");
  const keys = new KeyStore(g.dataDir ?? defaultDataDir());
  try {
    return fn(keys, g);
  } finally {
    keys.close();
  }
}

function quota(value: string | undefined, flag: string): number | null {
  if (value === undefined) return null;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(`${flag} must be an integer >= 0`);
  return n;
}

/** Registers `keys`. */
export function registerKeys(program: Command): void {
  const keys = program.command("keys").description("API keys of `kiln serve`");

  keys
    .command("create")
    .description("create an API key and print it (once: it is stored hashed)")
    .option("--name <name>", "a name for the key", "")
    .option("--max-sandboxes <n>", "most live sandboxes the key may own")
    .option("--max-memory-bytes <n>", "most total memoryBytes limit of the key's live sandboxes")
    .option("--max-disk-bytes <n>", "most bytes of the key's snapshots and pause images")
    .action((flags, cmd: Command) =>
      withKeys(cmd, (store, g) => {
        const { key, info } = store.create({
          name: flags.name,
          maxSandboxes: quota(flags.maxSandboxes, "--max-sandboxes"),
          maxMemoryBytes: quota(flags.maxMemoryBytes, "--max-memory-bytes"),
          maxDiskBytes: quota(flags.maxDiskBytes, "--max-disk-bytes"),
        });
        if (g.json) printJson({ key, ...info });
        else process.stdout.write(`${key}\n`);
        if (!g.json) process.stderr.write(`kiln: key ${info.id} created; the key is shown only this once\n`);
      }),
    );

  keys
    .command("ls")
    .description("list API keys (never their secrets)")
    .action((_flags, cmd: Command) =>
      withKeys(cmd, (store, g) => {
        const list = store.list();
        if (g.json) return printJson(list);
        printTable(
          ["ID", "NAME", "CREATED", "REVOKED", "MAX SANDBOXES", "MAX MEMORY", "MAX DISK"],
          list.map((k) => [
            k.id,
            k.name,
            k.createdAt,
            k.revokedAt ?? "",
            k.maxSandboxes ?? "-",
            k.maxMemoryBytes ?? "-",
            k.maxDiskBytes ?? "-",
          ]),
        );
      }),
    );

  keys
    .command("revoke")
    .description("revoke an API key (takes effect on the next request)")
    .argument("<id>", "key id (key_...)")
    .action((id: string, _flags, cmd: Command) =>
      withKeys(cmd, (store, g) => {
        const info = store.revoke(id);
        if (g.json) printJson(info);
        else process.stdout.write(`${id} revoked\n`);
      }),
    );
}
