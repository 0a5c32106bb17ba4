/** The MCP tools over a sandbox's network: `network_get` (policy and recent audit entries), `network_update`. */
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { textResult } from "../format.ts";
import { networkShape, sandboxIdShape } from "../schemas.ts";
import { guarded, type ToolContext } from "./context.ts";

/** Registers `network_get` and `network_update`. */
export function registerNetworkTools(server: McpServer, ctx: ToolContext): void {
  const { access } = ctx;

  server.registerTool(
    "network_get",
    {
      title: "Show a sandbox's network",
      description:
        "Show a sandbox's egress policy and its newest network audit entries (requests, connections, " +
        "DNS questions and refusals, each with the rule that decided).",
      inputSchema: {
        ...sandboxIdShape,
        limit: z.number().int().min(0).max(1000).optional().describe("audit entries to show (default 50)"),
      },
      annotations: { readOnlyHint: true },
    },
    (input, extra) =>
      guarded(async () => {
        const sb = await access.get(input.sandboxId, extra.signal);
        const policy = await sb.network.get({ signal: extra.signal });
        const log =
          input.limit === 0 ? [] : await sb.networkLogs({ limit: input.limit ?? 50, signal: extra.signal });
        return textResult(JSON.stringify({ policy, log }, null, 2));
      }),
  );

  server.registerTool(
    "network_update",
    {
      title: "Change a sandbox's network",
      description:
        "Replace a running sandbox's egress policy (the whole of it, as REST PUT /v1/sandboxes/{id}/network); " +
        'new connections see it at once. No network is the default: egress "none" with no allow rules. ' +
        "Allow rules win over deny rules. Secret values, header values and the proxy's password stay on the host.",
      // Strict, as REST: a field that is not part of the policy is invalid_argument, not dropped.
      inputSchema: z.object({ ...sandboxIdShape, ...networkShape }).strict(),
    },
    (input, extra) =>
      guarded(async () => {
        const sb = await access.get(input.sandboxId, extra.signal);
        const { sandboxId: _, ...options } = input;
        const policy = await sb.network.update(options, { signal: extra.signal });
        return textResult(JSON.stringify(policy, null, 2));
      }),
  );
}
