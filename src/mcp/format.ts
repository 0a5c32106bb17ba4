/**
 * How the MCP tools put results into text for a model. Errors are one JSON
 * line, `{"error":{"code":"not_found","message":...}}`, first in the text, so
 * a client can branch on the stable code; output follows where there is some.
 */
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import type { CodeView, ExecView, FileRange, Listing, ToolErrorInfo } from "./ops.ts";

/** A successful tool result of one or more text blocks. */
export function textResult(...texts: string[]): CallToolResult {
  return { content: texts.map((text) => ({ type: "text" as const, text })) };
}

/** A tool error (`isError: true`) whose first text line is `{"error":{code,message,...}}`. */
export function errorResult(info: ToolErrorInfo, ...more: string[]): CallToolResult {
  return { ...textResult(JSON.stringify({ error: info }), ...more), isError: true };
}

/** A command's or code run's result: exit code, duration, stdout, stderr, truncation. */
export function execText(v: ExecView): string {
  const lines = [`exit_code: ${v.exitCode}${v.durationMs !== undefined ? ` (${v.durationMs} ms)` : ""}`];
  if (v.truncated) {
    const cut = Object.entries(v.truncated).map(([k, n]) => `${k} ${n} bytes`);
    lines.push(`truncated: ${cut.join(", ")} cut from the middle (marked inline)`);
  }
  if (v.stdout === "" && v.stderr === "") lines.push("(no output)");
  if (v.stdout !== "") lines.push("--- stdout ---", v.stdout.replace(/\n$/, ""));
  if (v.stderr !== "") lines.push("--- stderr ---", v.stderr.replace(/\n$/, ""));
  return lines.join("\n");
}

/** The tool result of a command or code run: an error result when Kiln ended it. */
export function execResult(v: ExecView): CallToolResult {
  return v.error ? errorResult(v.error, execText(v)) : textResult(execText(v));
}

/** A cell's outcome as text: output, each result's text, the error's traceback. */
export function codeText(v: CodeView): string {
  const count = v.executionCount !== undefined ? `[${v.executionCount}] ` : "";
  const lines = [`${count}${v.cellError ? "error" : "ok"} (${v.durationMs} ms)`];
  if (v.truncated) {
    const cut = Object.entries(v.truncated).map(([k, n]) => `${k} ${n} bytes`);
    lines.push(`truncated: ${cut.join(", ")} cut from the middle (marked inline)`);
  }
  if (v.stdout !== "") lines.push("--- stdout ---", v.stdout.replace(/\n$/, ""));
  if (v.stderr !== "") lines.push("--- stderr ---", v.stderr.replace(/\n$/, ""));
  for (const r of v.results) {
    lines.push(`--- ${r.isMainResult ? "result" : "display"} (${r.formats.join(", ")}) ---`);
    if (r.text !== undefined) lines.push(r.text.replace(/\n$/, ""));
  }
  if (v.cellError)
    lines.push(`--- ${v.cellError.name}: ${v.cellError.value} ---`, v.cellError.traceback.replace(/\n$/, ""));
  if (lines.length === 1) lines.push("(no output)");
  return lines.join("\n");
}

/** The tool result of a cell: its text, then each image as MCP image content; an error result when Kiln ended it. */
export function codeResult(v: CodeView): CallToolResult {
  const images = v.results.flatMap((r) => [
    ...(r.png !== undefined ? [{ type: "image" as const, data: r.png, mimeType: "image/png" }] : []),
    ...(r.jpeg !== undefined ? [{ type: "image" as const, data: r.jpeg, mimeType: "image/jpeg" }] : []),
  ]);
  const head = v.error ? errorResult(v.error, codeText(v)) : textResult(codeText(v));
  return { ...head, content: [...head.content, ...images] };
}

/** A file range: the content, then a note when it is partial or base64. */
export function rangeResult(r: FileRange, readTool = "read_file"): CallToolResult {
  const whole = r.offset === 0 && r.nextOffset === null;
  if (whole && r.encoding === "utf8") return textResult(r.content);
  const end = r.offset + r.bytes;
  let note = `[${r.path}: bytes ${r.offset}-${end} of ${r.totalBytes}${r.encoding === "base64" ? ", base64" : ""}`;
  if (r.nextOffset !== null) note += `; call ${readTool} with offset=${r.nextOffset} for the rest`;
  return textResult(r.content, `${note}]`);
}

/** A listing: one line per entry, `<type> <size> <path>`, directories ending in `/`. */
export function listingText(l: Listing): string {
  if (l.entries.length === 0) return "(empty directory)";
  const lines = l.entries.map((e) => {
    const path = e.type === "dir" ? `${e.path}/` : e.path;
    const target = e.symlinkTarget !== undefined ? ` -> ${e.symlinkTarget}` : "";
    return `${e.type.padEnd(7)} ${String(e.size).padStart(10)}  ${path}${target}`;
  });
  if (l.omitted > 0)
    lines.push(`[${l.omitted} more entries not shown; list a subdirectory or use less depth]`);
  return lines.join("\n");
}
