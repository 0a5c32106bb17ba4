/**
 * The sandbox a CLI command acts on: through this process's own Kiln (the
 * default), or through a `kiln serve` with `--server URL` (or `$KILN_SERVER`;
 * the key in `$KILN_API_KEY`). A real sandbox's processes belong to the Kiln
 * process that has it open, so commands that follow a sandbox over time
 * (`watch`, `stats`) should go through the server that serves it.
 */
import type { Command } from "commander";
import type { SandboxApi } from "../client/api.ts";
import { InvalidArgumentError } from "../core/errors.ts";
import { type GlobalOptions, withKiln } from "./context.ts";

/** Runs `fn` on sandbox `id`, locally or through `server`; always closes what it opened. */
export async function withSandbox<T>(
  cmd: Command,
  id: string,
  server: string | undefined,
  fn: (sb: SandboxApi, g: GlobalOptions) => Promise<T>,
): Promise<T> {
  const g = cmd.optsWithGlobals<GlobalOptions>();
  if (!server) return withKiln(cmd, async (kiln) => fn(await kiln.connect(id), g));
  const apiKey = process.env.KILN_API_KEY;
  if (!apiKey) throw new InvalidArgumentError("--server needs the API key in $KILN_API_KEY");
  const { KilnClient } = await import("../client/index.ts");
  const client = await KilnClient.open({ url: server, apiKey });
  try {
    return await fn(await client.connect(id), g);
  } finally {
    await client.close();
  }
}
