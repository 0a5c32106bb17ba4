/** `kiln mcp`: the Kiln MCP server on stdio, for MCP clients that start it as a child process. */
import { type Command, Option } from "commander";
import { InvalidArgumentError } from "../../core/errors.ts";
import { checkTierName } from "../../core/tier-registry.ts";
import type { KilnMcpDefaults } from "../../mcp/tools/context.ts";
import { withKiln } from "../context.ts";

function positiveInt(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${flag} must be an integer >= 0`);
  return n;
}

/** Resolves when stdin ends or the process is asked to stop. */
function untilStdinEnds(): Promise<void> {
  return new Promise((resolve) => {
    process.stdin.once("end", resolve);
    process.stdin.once("close", resolve);
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
}

/** Registers `kiln mcp`. */
export function registerMcp(program: Command): void {
  program
    .command("mcp")
    .description("serve the Kiln MCP server on stdio (tools: sandbox_create, run_command, read_file, ...)")
    .option("--owner <id>", "scope the tools to the sandboxes of this owner (metadata kiln.owner)")
    .option("--tier <tier>", "default tier of sandbox_create")
    .option("--template <name>", "default template of sandbox_create")
    .option("--sandbox-lifetime <ms>", "default lifetime of sandboxes made by sandbox_create")
    .addOption(new Option("--sandbox-timeout <ms>", "the old name of --sandbox-lifetime").hideHelp())
    .option("--max-output-bytes <n>", "cap for each of stdout and stderr in a tool result", "16384")
    .action(async (flags, cmd: Command) =>
      withKiln(cmd, async (kiln) => {
        // stdout carries the protocol: anything printed by mistake goes to stderr instead.
        console.log = console.error;
        console.info = console.error;
        const sandboxLifetimeMs = positiveInt(
          "--sandbox-lifetime",
          flags.sandboxLifetime ?? flags.sandboxTimeout,
        );
        const maxOutputBytes = positiveInt("--max-output-bytes", flags.maxOutputBytes);
        const defaults: KilnMcpDefaults = {
          ...(flags.tier ? { tier: checkTierName(flags.tier) } : {}),
          ...(flags.template ? { template: flags.template } : {}),
          ...(sandboxLifetimeMs !== undefined ? { sandboxLifetimeMs } : {}),
          ...(maxOutputBytes !== undefined ? { maxOutputBytes } : {}),
        };
        const { createKilnMcpServer } = await import("../../mcp/server.ts");
        const { StdioServerTransport } = await import("@modelcontextprotocol/sdk/server/stdio.js");
        const server = createKilnMcpServer({ kiln, owner: flags.owner, defaults });
        const transport = new StdioServerTransport();
        const closed = new Promise<void>((resolve) => {
          transport.onclose = resolve;
        });
        await server.connect(transport);
        await Promise.race([untilStdinEnds(), closed]);
        await server.close().catch(() => {});
      }),
    );
}
