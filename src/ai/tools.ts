/**
 * Kiln sandboxes as tools for the Vercel AI SDK (`ai`): `bash`, `readFile`,
 * `writeFile` and `runCode`, bound to one sandbox. They run the same
 * operations as the MCP server (src/mcp/ops.ts) with the same truncation, and
 * return JSON-friendly objects. A failure does not throw: it returns
 * `{ error: { code, message } }` with Kiln's stable error code, so the model
 * sees what went wrong and can try again.
 */
import { tool } from "ai";
import { z } from "zod";
import type { Kiln } from "../core/kiln.ts";
import type { Sandbox } from "../core/sandbox.ts";
import {
  errorInfo,
  type OutputLimits,
  readFileRange,
  runCode,
  runCommand,
  type ToolErrorInfo,
  writeFile,
} from "../mcp/ops.ts";
import { codeShape, commandShape, readShape, writeShape } from "../mcp/schemas.ts";
import { DEFAULT_MAX_OUTPUT_BYTES } from "../mcp/truncate.ts";

/** Which sandbox the tools act on: a connected `Sandbox`, or a Kiln and a sandbox id. */
export type KilnToolsTarget = { sandbox: Sandbox } | { kiln: Kiln; sandboxId: string };

/** Options of {@link createKilnTools}: the target sandbox and caps on what a tool returns. */
export type KilnToolsOptions = KilnToolsTarget & Omit<OutputLimits, "readTool">;

/** A failed tool call, as the tools return it. */
export interface KilnToolError {
  error: ToolErrorInfo;
}

async function attempt<T>(fn: () => Promise<T>): Promise<T | KilnToolError> {
  try {
    return await fn();
  } catch (e) {
    return { error: errorInfo(e) };
  }
}

/**
 * Creates the AI SDK tools over one sandbox. Pass them to `generateText` /
 * `streamText` as `tools`.
 *
 * ```ts
 * const sb = await kiln.create();
 * const { text } = await generateText({ model, tools: createKilnTools({ sandbox: sb }), prompt });
 * ```
 */
export function createKilnTools(options: KilnToolsOptions) {
  const sandbox = (signal?: AbortSignal): Promise<Sandbox> =>
    "sandbox" in options
      ? Promise.resolve(options.sandbox)
      : options.kiln.connect(options.sandboxId, signal ? { signal } : {});
  const limits: OutputLimits = {
    ...(options.maxOutputBytes !== undefined ? { maxOutputBytes: options.maxOutputBytes } : {}),
    ...(options.maxReadBytes !== undefined ? { maxReadBytes: options.maxReadBytes } : {}),
    readTool: "readFile",
  };
  const cap = limits.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;

  return {
    bash: tool({
      description:
        "Run a bash command line in the sandbox (files live in /workspace) and wait for it to end. " +
        `Returns exitCode, stdout and stderr; each stream is capped at ${cap} bytes, keeping head and ` +
        "tail with a line saying how much was cut. Redirect big output to a file and use readFile.",
      inputSchema: z.object(commandShape),
      execute: (input, { abortSignal }) =>
        attempt(async () => runCommand(await sandbox(abortSignal), input, limits, abortSignal)),
    }),
    readFile: tool({
      description:
        "Read a file from the sandbox as text (or base64). Large files come in ranges: pass offset and " +
        "length; nextOffset says where to continue (null at the end).",
      inputSchema: z.object(readShape),
      execute: (input, { abortSignal }) =>
        attempt(async () => readFileRange(await sandbox(abortSignal), input, limits, abortSignal)),
    }),
    writeFile: tool({
      description:
        "Write a file in the sandbox (text, or bytes as base64), creating parent directories and " +
        "replacing any existing file.",
      inputSchema: z.object(writeShape),
      execute: (input, { abortSignal }) =>
        attempt(async () => writeFile(await sandbox(abortSignal), input, abortSignal)),
    }),
    runCode: tool({
      description:
        "Run a notebook cell (Python by default; js or bash with language): variables and imports " +
        "persist between calls with the same context; the last expression's value is returned.",
      inputSchema: z.object(codeShape),
      execute: (input, { abortSignal }) =>
        attempt(async () => {
          const v = await runCode(await sandbox(abortSignal), input, limits, abortSignal);
          // Images stay out of the model's text: `formats` says a result had one.
          return { ...v, results: v.results.map(({ png: _png, jpeg: _jpeg, ...r }) => r) };
        }),
    }),
  };
}
