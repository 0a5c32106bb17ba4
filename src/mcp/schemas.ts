/**
 * Zod input shapes of the tools, shared by the MCP server (which adds
 * `sandboxId`) and the AI SDK tools (bound to one sandbox). The descriptions
 * are what a model reads.
 */
import { z } from "zod";
import { TIER_NAMES } from "../core/types.ts";

/** `sandboxId`: which sandbox a tool acts on. */
export const sandboxIdShape = {
  sandboxId: z.string().describe("Sandbox id (sb_...), as returned by sandbox_create or sandbox_list"),
};

/** Inputs of `sandbox_create`. */
export const createShape = {
  tier: z
    .enum(TIER_NAMES)
    .optional()
    .describe("Isolation tier; default virtual (in-process bash and Python, no real binaries)"),
  template: z
    .string()
    .optional()
    .describe("Template (root filesystem) for real-binary tiers; default `default`"),
  env: z.record(z.string(), z.string()).optional().describe("Environment variables for every command"),
  metadata: z
    .record(z.string(), z.string())
    .optional()
    .describe('Free-form string labels; keys starting with "kiln." are reserved'),
  lifetimeMs: z
    .number()
    .int()
    .min(0)
    .optional()
    .describe("Lifetime in ms, after which the sandbox is killed; 0 means no expiry"),
  snapshot: z
    .string()
    .optional()
    .describe("Start from this snapshot's files (snap_..., from sandbox_snapshot or snapshot_list)"),
  allowUnenforcedLimits: z
    .boolean()
    .optional()
    .describe(
      "Create it even where the tier cannot enforce every limit here (kiln doctor lists them); default false: refused",
    ),
};

/** Inputs of a command (`run_command`, `bash`). */
export const commandShape = {
  command: z.string().min(1).describe("Bash command line, run with `bash -c`"),
  cwd: z.string().optional().describe("Working directory; default /workspace"),
  env: z.record(z.string(), z.string()).optional().describe("Extra environment variables"),
  timeoutMs: z.number().int().min(0).optional().describe("Wall-time limit in ms; 0 means none"),
  stdin: z.string().optional().describe("Text for standard input (closed after it)"),
};

/** Inputs of a code run (`run_code`, `runCode`). */
export const codeShape = {
  code: z.string().describe("Source of the cell. Variables and imports persist between calls of one context"),
  language: z
    .string()
    .optional()
    .describe(
      "python (default), js, ts (TypeScript, its types stripped on the host) or bash; picks that language's default context",
    ),
  context: z.string().optional().describe("Context id; default the language's default context"),
  timeoutMs: z
    .number()
    .int()
    .min(0)
    .optional()
    .describe("Wall-time limit in ms; the cell is interrupted when it runs out"),
};

/** Inputs of a file read (`read_file`, `readFile`). */
export const readShape = {
  path: z.string().describe("File path; relative paths resolve against /workspace"),
  offset: z.number().int().min(0).optional().describe("First byte to return; default 0"),
  length: z
    .number()
    .int()
    .min(1)
    .optional()
    .describe("Bytes to return; default and maximum 65536. The result says where the next range starts"),
  encoding: z
    .enum(["utf8", "base64"])
    .optional()
    .describe("utf8 (default) for text, base64 for binary files"),
};

/** Inputs of a file write (`write_file`, `writeFile`). */
export const writeShape = {
  path: z.string().describe("File path; parent directories are created; an existing file is replaced"),
  content: z.string().describe("The file's content: text, or base64 when encoding is base64"),
  encoding: z.enum(["utf8", "base64"]).optional().describe("utf8 (default) or base64 for bytes"),
};

/** Inputs of a listing (`list_files`). */
export const listShape = {
  path: z.string().optional().describe("Directory; default /workspace"),
  depth: z.number().int().min(1).max(10).optional().describe("Levels to descend; default 1"),
};

const networkRules = z
  .array(z.string())
  .optional()
  .describe("host names (files.example.com, *.example.com, optional :port), addresses and CIDRs");

/**
 * Inputs of `network_update`: the whole policy, as REST `PUT
 * /v1/sandboxes/{id}/network` takes it (src/server/schemas.ts `NetworkSchema`;
 * a test keeps the two alike). Values are checked by Kiln, as for REST.
 */
export const networkShape = {
  egress: z
    .enum(["none", "all"])
    .optional()
    .describe('"none" (default) or "all" public addresses but the deny rules'),
  allow: networkRules,
  deny: networkRules,
  secrets: z
    .record(
      z.string(),
      z
        .object({
          value: z.string().describe("the real value (kept on the host, never shown)"),
          hosts: z
            .array(z.string())
            .describe("host names it may be sent to (they allow nothing by themselves)"),
          headers: z.array(z.string()).optional().describe("headers it may go in; default any"),
        })
        .strict(),
    )
    .optional()
    .describe("NAME -> a secret the sandbox uses through a placeholder in $NAME, substituted on the host"),
  headers: z
    .record(z.string(), z.record(z.string(), z.string()))
    .optional()
    .describe(
      "host (exact or *.wildcard) -> headers the host side sets on requests to it; never seen inside",
    ),
  upstreamProxy: z
    .union([
      z.string(),
      z
        .object({ url: z.string(), username: z.string().optional(), password: z.string().optional() })
        .strict(),
    ])
    .optional()
    .describe(
      "proxy that allowed traffic leaves through: http://host:port (CONNECT) or socks5://host:port, optional user:password@",
    ),
  limits: z
    .object({
      maxConnections: z
        .number()
        .int()
        .optional()
        .describe("open connections at once; default the server's (256)"),
      maxBytesPerSecond: z
        .number()
        .int()
        .optional()
        .describe("bytes a second each way over all connections; default the server's (none)"),
    })
    .strict()
    .optional()
    .describe("this sandbox's caps, within the server's"),
};
