/** What every CLI command shares: the global options, and a Kiln opened and closed around the command. */
import type { Command } from "commander";
import type { Kiln } from "../index.ts";

/** Global options every command sees. */
export interface GlobalOptions {
  dataDir?: string;
  json?: boolean;
}

/** Opens Kiln for a command, runs `fn`, and always closes it. */
export async function withKiln<T>(
  cmd: Command,
  fn: (kiln: Kiln, g: GlobalOptions) => Promise<T>,
): Promise<T> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  // Loaded here, not at the top: `--version`, `--help` and usage errors never need the library.
  const { Kiln } = await import("../index.ts");
  const kiln = await Kiln.open(g.dataDir ? { dataDir: g.dataDir } : {});
  try {
    return await fn(kiln, g);
  } finally {
    await kiln.close();
  }
}
