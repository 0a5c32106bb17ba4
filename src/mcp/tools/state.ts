/** The MCP tools over sandbox state: `sandbox_snapshot`, `snapshot_list`, `sandbox_fork`, `sandbox_pause`, `sandbox_resume`. */
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import type { SnapshotInfo } from "../../core/types.ts";
import { publicMetadata } from "../access.ts";
import { textResult } from "../format.ts";
import { sandboxIdShape } from "../schemas.ts";
import { guarded, type ToolContext } from "./context.ts";
import { sandboxSummary } from "./sandboxes.ts";

/** A snapshot as the tools show it (reserved metadata hidden). */
function snapshotSummary(s: SnapshotInfo): Record<string, unknown> {
  return { ...s, metadata: publicMetadata(s.metadata) };
}

/** Registers the state tools. */
export function registerStateTools(server: McpServer, ctx: ToolContext): void {
  const { access } = ctx;

  server.registerTool(
    "sandbox_snapshot",
    {
      title: "Snapshot a sandbox",
      description:
        "Save a sandbox's files as a snapshot and return it. Start new sandboxes from it with " +
        "sandbox_create { snapshot }, as many times as wanted.",
      inputSchema: {
        ...sandboxIdShape,
        name: z.string().min(1).max(128).optional().describe("A name to find the snapshot by"),
      },
    },
    (input, extra) =>
      guarded(async () => {
        const sb = await access.get(input.sandboxId, extra.signal);
        const snap = await sb.snapshot({
          ...(input.name !== undefined ? { name: input.name } : {}),
          signal: extra.signal,
        });
        return textResult(JSON.stringify(snapshotSummary(snap), null, 2));
      }),
  );

  server.registerTool(
    "snapshot_list",
    {
      title: "List snapshots",
      description: "List the snapshots you can start sandboxes from.",
      inputSchema: {},
      annotations: { readOnlyHint: true },
    },
    (_input, extra) =>
      guarded(async () => {
        const list = await access.snapshots(extra.signal);
        return textResult(JSON.stringify(list.map(snapshotSummary), null, 2));
      }),
  );

  server.registerTool(
    "sandbox_fork",
    {
      title: "Fork a sandbox",
      description:
        "Make new sandboxes that start from this one's files as they are now; each has its own id " +
        "and its writes are its own. Returns the new sandboxes.",
      inputSchema: {
        ...sandboxIdShape,
        count: z.number().int().min(1).max(64).optional().describe("How many; default 1"),
      },
    },
    (input, extra) =>
      guarded(async () => {
        const sb = await access.get(input.sandboxId, extra.signal);
        const forks = await sb.fork(input.count ?? 1, { signal: extra.signal });
        const infos = await Promise.all(forks.map((f) => f.info()));
        return textResult(JSON.stringify(infos.map(sandboxSummary), null, 2));
      }),
  );

  for (const op of ["pause", "resume"] as const) {
    server.registerTool(
      `sandbox_${op}`,
      {
        title: op === "pause" ? "Pause a sandbox" : "Resume a sandbox",
        description:
          op === "pause"
            ? "Pause a sandbox: it stops using CPU and memory, its files (and, on tiers that keep them, " +
              "its running processes) stay. Any later tool call on it resumes it."
            : "Resume a paused sandbox.",
        inputSchema: sandboxIdShape,
        annotations: { idempotentHint: true },
      },
      (input, extra) =>
        guarded(async () => {
          const sb = await access.get(input.sandboxId, extra.signal);
          await sb[op]({ signal: extra.signal });
          return textResult(JSON.stringify(sandboxSummary(await sb.info()), null, 2));
        }),
    );
  }
}
