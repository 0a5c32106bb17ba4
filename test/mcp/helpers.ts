/** Helpers of the MCP tests: calling tools with the SDK's own client and reading their results. */
import assert from "node:assert/strict";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";

/** A tool result, reduced to what the tests look at. */
export interface ToolOutcome {
  isError: boolean;
  /** The text of each content block. */
  texts: string[];
  /** The image blocks: base64 data and MIME type. */
  images: { data: string; mimeType: string }[];
}

/** Calls a tool and returns its result's error flag and text blocks. */
export async function call(
  client: Client,
  name: string,
  args: Record<string, unknown> = {},
): Promise<ToolOutcome> {
  const r = await client.callTool({ name, arguments: args });
  const content = (r.content ?? []) as { type: string; text?: string; data?: string; mimeType?: string }[];
  return {
    isError: r.isError === true,
    texts: content.map((c) => c.text ?? ""),
    images: content.flatMap((c) =>
      c.type === "image" ? [{ data: c.data ?? "", mimeType: c.mimeType ?? "" }] : [],
    ),
  };
}

/** Calls a tool that must succeed; returns its first text block. */
export async function ok(client: Client, name: string, args: Record<string, unknown> = {}): Promise<string> {
  const r = await call(client, name, args);
  assert.equal(r.isError, false, `${name} failed: ${r.texts.join("\n")}`);
  return r.texts[0] ?? "";
}

/** Calls a tool that must fail; returns the Kiln error code from the result's first line. */
export async function failsWith(
  client: Client,
  name: string,
  args: Record<string, unknown>,
  code: string,
): Promise<ToolOutcome> {
  const r = await call(client, name, args);
  assert.equal(r.isError, true, `${name} should have failed: ${r.texts.join("\n")}`);
  const first = JSON.parse(r.texts[0]!.split("\n")[0]!) as { error: { code: string } };
  assert.equal(first.error.code, code, r.texts.join("\n"));
  return r;
}

/** The exit code in a `run_command` / `run_code` text. */
export function exitCode(text: string): number {
  const m = /^exit_code: (\d+)/m.exec(text);
  assert.ok(m, `no exit code in ${text}`);
  return Number(m[1]);
}

/** The section of a `run_command` text after `--- stdout ---` (or stderr), up to the next section. */
export function section(text: string, name: "stdout" | "stderr"): string {
  const start = text.indexOf(`--- ${name} ---\n`);
  if (start < 0) return "";
  const rest = text.slice(start + name.length + 9);
  const end = rest.indexOf("\n--- std");
  return end < 0 ? rest : rest.slice(0, end);
}

/** A sandbox id that is well-formed but does not exist. */
export const UNKNOWN_ID = "sb_aaaaaaaaaaaaaaaaaaaa";
