/**
 * The MCP tools that work inside one sandbox: `run_command`, `run_code`,
 * `read_file`, `write_file`, `list_files`.
 */
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { codeResult, execResult, listingText, rangeResult, textResult } from "../format.ts";
import { listFiles, readFileRange, runCode, runCommand, writeFile } from "../ops.ts";
import { codeShape, commandShape, listShape, readShape, sandboxIdShape, writeShape } from "../schemas.ts";
import { DEFAULT_MAX_OUTPUT_BYTES } from "../truncate.ts";
import { guarded, type ToolContext } from "./context.ts";

/** Registers the tools that act inside a sandbox. */
export function registerWorkspaceTools(server: McpServer, ctx: ToolContext): void {
  const { access, defaults } = ctx;
  const limits = { ...defaults, readTool: "read_file" };
  const cap = defaults.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;

  server.registerTool(
    "run_command",
    {
      title: "Run a command",
      description:
        "Run a bash command line in a sandbox and wait for it to end. Returns the exit code, stdout and " +
        `stderr. Each stream is capped at ${cap} bytes: longer output keeps its head and tail with a line ` +
        "saying how much was cut; redirect big output to a file and read it with read_file instead.",
      inputSchema: { ...sandboxIdShape, ...commandShape },
    },
    ({ sandboxId, ...input }, extra) =>
      guarded(async () => {
        const sb = await access.get(sandboxId, extra.signal);
        return execResult(await runCommand(sb, input, limits, extra.signal));
      }),
  );

  server.registerTool(
    "run_code",
    {
      title: "Run a code cell",
      description:
        "Run a notebook cell (Python by default; js or bash with language) in a persistent context: " +
        "variables, functions and imports persist between calls with the same context. The value of the " +
        "last expression is returned, charts come back as images. numpy, pandas and matplotlib need the " +
        "code-interpreter template on a real tier.",
      inputSchema: { ...sandboxIdShape, ...codeShape },
    },
    ({ sandboxId, ...input }, extra) =>
      guarded(async () => {
        const sb = await access.get(sandboxId, extra.signal);
        return codeResult(await runCode(sb, input, limits, extra.signal));
      }),
  );

  server.registerTool(
    "read_file",
    {
      title: "Read a file",
      description:
        "Read a file from a sandbox, as text or base64. Large files come in ranges: pass offset and " +
        "length; a partial result ends with a note giving the offset to continue from.",
      inputSchema: { ...sandboxIdShape, ...readShape },
      annotations: { readOnlyHint: true },
    },
    ({ sandboxId, ...input }, extra) =>
      guarded(async () => {
        const sb = await access.get(sandboxId, extra.signal);
        return rangeResult(await readFileRange(sb, input, limits, extra.signal), "read_file");
      }),
  );

  server.registerTool(
    "write_file",
    {
      title: "Write a file",
      description:
        "Write a file in a sandbox (text, or bytes as base64), creating parent directories and " +
        "replacing any existing file.",
      inputSchema: { ...sandboxIdShape, ...writeShape },
      annotations: { idempotentHint: true },
    },
    ({ sandboxId, ...input }, extra) =>
      guarded(async () => {
        const sb = await access.get(sandboxId, extra.signal);
        return textResult(JSON.stringify(await writeFile(sb, input, extra.signal)));
      }),
  );

  server.registerTool(
    "list_files",
    {
      title: "List files",
      description:
        "List a directory in a sandbox, depth levels deep: one line per entry with type, size and path.",
      inputSchema: { ...sandboxIdShape, ...listShape },
      annotations: { readOnlyHint: true },
    },
    ({ sandboxId, ...input }, extra) =>
      guarded(async () => {
        const sb = await access.get(sandboxId, extra.signal);
        return textResult(listingText(await listFiles(sb, input, limits, extra.signal)));
      }),
  );
}
