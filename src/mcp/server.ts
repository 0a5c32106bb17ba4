/**
 * `createKilnMcpServer`: an MCP server (official TypeScript SDK) whose tools
 * create sandboxes and run commands, Python and file operations in them.
 * Connect it to any transport: stdio (`kiln mcp`), or Streamable HTTP
 * (src/mcp/http.ts).
 */
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import type { Kiln } from "../core/kiln.ts";
import { SandboxAccess } from "./access.ts";
import { errorResult } from "./format.ts";
import type { KilnMcpDefaults } from "./tools/context.ts";
import { registerNetworkTools } from "./tools/network.ts";
import { registerSandboxTools } from "./tools/sandboxes.ts";
import { registerStateTools } from "./tools/state.ts";
import { registerWorkspaceTools } from "./tools/workspace.ts";

/** Options of {@link createKilnMcpServer}. */
export interface KilnMcpServerOptions {
  /** The Kiln whose sandboxes the tools use; the caller opens and closes it. */
  kiln: Kiln;
  /**
   * Scope every tool to this owner: created sandboxes get metadata
   * `kiln.owner = owner`, and other sandboxes are `not_found`. Unset: every
   * sandbox is visible (a local, single-user server).
   */
  owner?: string | undefined;
  /** Defaults for sandbox creation and caps on what a tool returns. */
  defaults?: KilnMcpDefaults | undefined;
}

/** The names of the tools the server registers. */
export const KILN_MCP_TOOLS = [
  "sandbox_create",
  "sandbox_list",
  "sandbox_kill",
  "run_command",
  "run_code",
  "read_file",
  "write_file",
  "list_files",
  "sandbox_snapshot",
  "snapshot_list",
  "sandbox_fork",
  "sandbox_pause",
  "sandbox_resume",
  "network_get",
  "network_update",
] as const;

/**
 * Creates an MCP server exposing Kiln sandboxes as tools ({@link KILN_MCP_TOOLS}).
 * Tool failures are results with `isError: true` whose first text line is
 * `{"error":{"code":...,"message":...}}` with Kiln's stable error code.
 * @throws InvalidArgumentError when `owner` is an empty string
 */
export function createKilnMcpServer(options: KilnMcpServerOptions): McpServer {
  const server = new McpServer(
    { name: "kiln", version: "0.1.0" },
    {
      instructions:
        "Kiln runs code in isolated sandboxes. Create one with sandbox_create, then use its id with " +
        "run_command, run_code, read_file, write_file and list_files. Files live under /workspace. " +
        "Kill sandboxes you no longer need with sandbox_kill.",
    },
  );
  const ctx = { access: new SandboxAccess(options.kiln, options.owner), defaults: options.defaults ?? {} };
  registerSandboxTools(server, ctx);
  registerWorkspaceTools(server, ctx);
  registerStateTools(server, ctx);
  registerNetworkTools(server, ctx);
  codeSdkToolErrors(server);
  return server;
}

/**
 * The SDK turns errors it raises before a tool runs (input that fails the
 * schema, an unknown tool) into a tool error of plain text. Give those the
 * same shape as Kiln's own: `{"error":{"code":"invalid_argument"|"not_found",...}}`.
 * This replaces a method the SDK does not declare public; should it go away,
 * those errors keep the SDK's plain text (test/mcp checks the shape).
 */
function codeSdkToolErrors(server: McpServer): void {
  const target = server as unknown as { createToolError?: (message: string) => CallToolResult };
  if (typeof target.createToolError !== "function") return;
  target.createToolError = (message) =>
    errorResult({
      code: /^(MCP error -?\d+: )?Tool \S+ not found$/.test(message) ? "not_found" : "invalid_argument",
      message,
    });
}
