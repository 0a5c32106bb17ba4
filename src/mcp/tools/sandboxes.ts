/** The MCP tools over sandboxes themselves: `sandbox_create`, `sandbox_list`, `sandbox_kill`. */
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { SandboxInfo } from "../../core/types.ts";
import { publicMetadata } from "../access.ts";
import { textResult } from "../format.ts";
import { createShape, sandboxIdShape } from "../schemas.ts";
import { guarded, type ToolContext } from "./context.ts";

/** A sandbox record as the tools show it (reserved metadata hidden). */
export function sandboxSummary(info: SandboxInfo): Record<string, unknown> {
  return {
    id: info.id,
    tier: info.tier,
    template: info.template,
    state: info.state,
    cwd: info.cwd,
    metadata: publicMetadata(info.metadata),
    createdAt: info.createdAt,
    expiresAt: info.expiresAt,
  };
}

/** Registers `sandbox_create`, `sandbox_list` and `sandbox_kill`. */
export function registerSandboxTools(server: McpServer, ctx: ToolContext): void {
  const { access, defaults } = ctx;

  server.registerTool(
    "sandbox_create",
    {
      title: "Create a sandbox",
      description:
        "Create an isolated sandbox with an empty /workspace and return its id. " +
        "Pass the id to the other tools. Kill it with sandbox_kill when done.",
      inputSchema: createShape,
    },
    (input, extra) =>
      guarded(async () => {
        // From a snapshot, its tier and template unless named.
        const fromSnapshot = input.snapshot !== undefined;
        const tier = input.tier ?? (fromSnapshot ? undefined : defaults.tier);
        const template = input.template ?? (fromSnapshot ? undefined : defaults.template);
        const lifetimeMs = input.lifetimeMs ?? defaults.sandboxLifetimeMs ?? defaults.sandboxTimeoutMs;
        const sb = await access.create({
          ...(tier !== undefined ? { tier } : {}),
          ...(template !== undefined ? { template } : {}),
          ...(input.env !== undefined ? { env: input.env } : {}),
          ...(input.metadata !== undefined ? { metadata: input.metadata } : {}),
          ...(input.snapshot !== undefined ? { snapshot: input.snapshot } : {}),
          ...(lifetimeMs !== undefined ? { lifetimeMs } : {}),
          ...(input.allowUnenforcedLimits ? { allowUnenforcedLimits: true } : {}),
          signal: extra.signal,
        });
        return textResult(JSON.stringify(sandboxSummary(await sb.info()), null, 2));
      }),
  );

  server.registerTool(
    "sandbox_list",
    {
      title: "List sandboxes",
      description: "List the sandboxes you can use, with tier, labels, creation and expiry times.",
      inputSchema: {},
      annotations: { readOnlyHint: true },
    },
    (_input, extra) =>
      guarded(async () => {
        const list = await access.list(extra.signal);
        return textResult(JSON.stringify(list.map(sandboxSummary), null, 2));
      }),
  );

  server.registerTool(
    "sandbox_kill",
    {
      title: "Kill a sandbox",
      description: "Kill a sandbox: stop its processes and delete its workspace. This cannot be undone.",
      inputSchema: sandboxIdShape,
      annotations: { destructiveHint: true, idempotentHint: true },
    },
    (input, extra) =>
      guarded(async () => {
        await access.kill(input.sandboxId, extra.signal);
        return textResult(JSON.stringify({ killed: input.sandboxId }));
      }),
  );
}
