/** What every tool of the MCP server shares: the owner's view of Kiln, the defaults, error mapping. */
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import type { TierName } from "../../core/types.ts";
import type { SandboxAccess } from "../access.ts";
import { errorResult } from "../format.ts";
import { errorInfo, type OutputLimits } from "../ops.ts";

/** Defaults of the MCP server's tools. */
export interface KilnMcpDefaults extends OutputLimits {
  /** Tier for `sandbox_create` when the input names none; default `virtual`. */
  tier?: TierName;
  /** Template for `sandbox_create` when the input names none. */
  template?: string;
  /** Lifetime in ms for `sandbox_create` when the input gives none; default no expiry. */
  sandboxLifetimeMs?: number;
  /** @deprecated The old name of `sandboxLifetimeMs`. */
  sandboxTimeoutMs?: number;
}

/** The state the tools close over. */
export interface ToolContext {
  access: SandboxAccess;
  defaults: KilnMcpDefaults;
}

/** Runs a tool body; any thrown error becomes an `isError` result carrying the Kiln error code. */
export async function guarded(fn: () => Promise<CallToolResult>): Promise<CallToolResult> {
  try {
    return await fn();
  } catch (e) {
    return errorResult(errorInfo(e));
  }
}
