/**
 * Kiln tools for the Vercel AI SDK: `import { createKilnTools } from "kiln/ai"`.
 * See docs/mcp.md.
 */

export { DEFAULT_MAX_OUTPUT_BYTES, DEFAULT_MAX_READ_BYTES, truncateMiddle } from "../mcp/truncate.ts";
export { createKilnTools, type KilnToolError, type KilnToolsOptions, type KilnToolsTarget } from "./tools.ts";
