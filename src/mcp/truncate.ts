/**
 * Truncation of tool output for a language model: one rule, shared by the MCP
 * server (src/mcp) and the AI SDK tools (src/ai).
 *
 * Long text keeps its head and its tail (where errors and summaries usually
 * are) and says, on a line of its own, how many bytes were cut and how to get
 * the rest. Sizes are UTF-8 bytes; a cut never splits a character.
 */

/** Default cap for each of stdout and stderr, in UTF-8 bytes. */
export const DEFAULT_MAX_OUTPUT_BYTES = 16 * 1024;

/** Default number of bytes one `read_file` call returns. */
export const DEFAULT_MAX_READ_BYTES = 64 * 1024;

/** Text after truncation. */
export interface TruncatedText {
  /** The text to show: the whole text, or head + marker line + tail. */
  text: string;
  /** UTF-8 bytes of the original text. */
  totalBytes: number;
  /** UTF-8 bytes left out (0 when nothing was cut). */
  omittedBytes: number;
}

/** Options of {@link truncateMiddle}. */
export interface TruncateOptions {
  /** Cap in UTF-8 bytes for the kept head + tail; default {@link DEFAULT_MAX_OUTPUT_BYTES}. */
  maxBytes?: number;
  /** What the text is, for the marker line (e.g. `stdout`). */
  label?: string;
  /** How to get the rest, appended to the marker line. */
  hint?: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** True when byte `b` continues a UTF-8 sequence (is not the start of a character). */
function isContinuation(b: number | undefined): boolean {
  return b !== undefined && (b & 0xc0) === 0x80;
}

/** Moves `i` back to the start of the character it falls in. */
export function utf8Boundary(bytes: Uint8Array, i: number): number {
  let j = Math.max(0, Math.min(i, bytes.length));
  while (j > 0 && j < bytes.length && isContinuation(bytes[j])) j--;
  return j;
}

/**
 * Keeps the first and last `maxBytes / 2` bytes of `text` and puts a marker
 * line between them saying how many bytes were cut (and `hint`, how to get
 * them). Text within the cap is returned as is.
 */
export function truncateMiddle(text: string, options: TruncateOptions = {}): TruncatedText {
  const maxBytes = Math.max(0, Math.floor(options.maxBytes ?? DEFAULT_MAX_OUTPUT_BYTES));
  const bytes = encoder.encode(text);
  if (bytes.length <= maxBytes) return { text, totalBytes: bytes.length, omittedBytes: 0 };
  const headEnd = utf8Boundary(bytes, Math.floor(maxBytes / 2));
  const tailStart = utf8Boundary(bytes, bytes.length - (maxBytes - Math.floor(maxBytes / 2)));
  const omitted = tailStart - headEnd;
  const head = decoder.decode(bytes.subarray(0, headEnd));
  const tail = decoder.decode(bytes.subarray(tailStart));
  const what = options.label ? `${options.label}: ` : "";
  const marker =
    `[${what}${omitted} of ${bytes.length} bytes cut from the middle` +
    `${options.hint ? `; ${options.hint}` : ""}]`;
  const sepBefore = head.endsWith("\n") || head === "" ? "" : "\n";
  const sepAfter = tail.startsWith("\n") ? "" : "\n";
  return {
    text: `${head}${sepBefore}${marker}${sepAfter}${tail}`,
    totalBytes: bytes.length,
    omittedBytes: omitted,
  };
}

/** The hint for command output: redirect to a file, then read it in ranges with `readTool`. */
export function commandOutputHint(readTool: string): string {
  return (
    `to see all of it, rerun with output redirected to a file (e.g. \`cmd > /tmp/out.txt 2>&1\`) ` +
    `and read it in ranges with ${readTool} (offset, length), or filter it (grep, head, tail)`
  );
}
