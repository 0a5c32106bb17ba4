/**
 * Kiln's MCP server: `import { createKilnMcpServer, createMcpHttpHandler } from "kiln/mcp"`.
 * See docs/mcp.md.
 */
export { OWNER_KEY, publicMetadata, RESERVED_METADATA_PREFIX, SandboxAccess } from "./access.ts";
export { createMcpHttpHandler, type McpHttpHandler, type McpHttpHandlerOptions } from "./http.ts";
export * from "./ops.ts";
export { createKilnMcpServer, KILN_MCP_TOOLS, type KilnMcpServerOptions } from "./server.ts";
export type { KilnMcpDefaults } from "./tools/context.ts";
export * from "./truncate.ts";
