/**
 * The sandbox operations behind the MCP tools and the AI SDK tools, once:
 * each takes a {@link Sandbox} and plain input, and returns a plain,
 * JSON-friendly result with output already truncated for a model. Transport
 * and formatting live elsewhere (src/mcp/format.ts, src/ai/tools.ts).
 */
import { CellTimeoutError } from "../core/code-contexts.ts";
import { InvalidArgumentError, isKilnError, KilnError } from "../core/errors.ts";
import type { CellResult, Execution } from "../core/execution.ts";
import type { Sandbox } from "../core/sandbox.ts";
import type { EntryType } from "../core/types.ts";
import {
  commandOutputHint,
  DEFAULT_MAX_OUTPUT_BYTES,
  DEFAULT_MAX_READ_BYTES,
  truncateMiddle,
  utf8Boundary,
} from "./truncate.ts";

/** A Kiln error as a tool reports it: the stable `code`, the message, and any details (limit, tier...). */
export interface ToolErrorInfo {
  code: string;
  message: string;
  [detail: string]: unknown;
}

/** Any thrown value as a {@link ToolErrorInfo}; non-Kiln errors get code `internal`. */
export function errorInfo(e: unknown): ToolErrorInfo {
  if (e instanceof KilnError) return e.toJSON() as ToolErrorInfo;
  return { code: "internal", message: e instanceof Error ? e.message : String(e) };
}

/** Limits on what one tool call returns. */
export interface OutputLimits {
  /** Cap for each of stdout and stderr, UTF-8 bytes; default 16 KiB. */
  maxOutputBytes?: number;
  /** Cap for one file read, bytes; default 64 KiB. */
  maxReadBytes?: number;
  /** Cap for the entries one listing returns; default 1000. */
  maxListEntries?: number;
  /** Name of the file-reading tool, for truncation hints (`read_file`, `readFile`). */
  readTool?: string;
}

/** The result of a command or a code run, truncated for a model. */
export interface ExecView {
  exitCode: number;
  stdout: string;
  stderr: string;
  durationMs?: number;
  /** Bytes cut from the middle of stdout / stderr (present only when something was cut). */
  truncated?: { stdout?: number; stderr?: number };
  /** Set when Kiln ended the run (timeout, a limit): the output above is partial. */
  error?: ToolErrorInfo;
}

function view(
  r: { exitCode: number; stdout: string; stderr: string; durationMs?: number },
  limits: OutputLimits,
  error?: ToolErrorInfo,
): ExecView {
  const hint = commandOutputHint(limits.readTool ?? "read_file");
  const maxBytes = limits.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
  const out = truncateMiddle(r.stdout, { maxBytes, label: "stdout", hint });
  const err = truncateMiddle(r.stderr, { maxBytes, label: "stderr", hint });
  const v: ExecView = { exitCode: r.exitCode, stdout: out.text, stderr: err.text };
  if (r.durationMs !== undefined) v.durationMs = r.durationMs;
  if (out.omittedBytes || err.omittedBytes) {
    v.truncated = {
      ...(out.omittedBytes ? { stdout: out.omittedBytes } : {}),
      ...(err.omittedBytes ? { stderr: err.omittedBytes } : {}),
    };
  }
  if (error) v.error = error;
  return v;
}

/** Input of {@link runCommand}. */
export interface RunCommandInput {
  command: string;
  cwd?: string | undefined;
  env?: Record<string, string> | undefined;
  timeoutMs?: number | undefined;
  stdin?: string | undefined;
}

/**
 * Runs a command to its end. A command that Kiln ends (timeout, output or
 * other limit) resolves with its partial output and `error` set; other
 * failures throw.
 */
export async function runCommand(
  sb: Sandbox,
  input: RunCommandInput,
  limits: OutputLimits = {},
  signal?: AbortSignal,
): Promise<ExecView> {
  try {
    const r = await sb.commands.run(input.command, {
      ...(input.cwd !== undefined ? { cwd: input.cwd } : {}),
      ...(input.env !== undefined ? { env: input.env } : {}),
      ...(input.timeoutMs !== undefined ? { timeoutMs: input.timeoutMs } : {}),
      ...(input.stdin !== undefined ? { stdin: input.stdin } : {}),
      ...(signal ? { signal } : {}),
    });
    return view(r, limits);
  } catch (e) {
    if (isKilnError(e) && e.result) return view(e.result, limits, errorInfo(e));
    throw e;
  }
}

/** Input of {@link runCode}. */
export interface RunCodeInput {
  code: string;
  language?: string | undefined;
  context?: string | undefined;
  timeoutMs?: number | undefined;
}

/** One displayed value of a cell, for a model: its text, and images as base64. */
export interface ResultView {
  isMainResult: boolean;
  /** Its text (text/plain; markdown or html when it has no plain text). */
  text?: string;
  /** Every representation it has (`text`, `html`, `png`, `chart`, ...). */
  formats: string[];
  png?: string;
  jpeg?: string;
}

/** A cell's outcome, truncated for a model. */
export interface CodeView {
  stdout: string;
  stderr: string;
  results: ResultView[];
  /** The exception the cell raised (traceback truncated). */
  cellError?: { name: string; value: string; traceback: string };
  executionCount?: number;
  durationMs: number;
  truncated?: { stdout?: number; stderr?: number };
  /** Set when Kiln ended the cell (timeout): what is above is partial. */
  error?: ToolErrorInfo;
}

const FORMATS = [
  "text",
  "html",
  "markdown",
  "svg",
  "png",
  "jpeg",
  "pdf",
  "latex",
  "json",
  "javascript",
  "chart",
];

function codeView(e: Execution, durationMs: number, limits: OutputLimits, error?: ToolErrorInfo): CodeView {
  const hint = commandOutputHint(limits.readTool ?? "read_file");
  const maxBytes = limits.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
  const out = truncateMiddle(e.logs.stdout.join(""), { maxBytes, label: "stdout", hint });
  const err = truncateMiddle(e.logs.stderr.join(""), { maxBytes, label: "stderr", hint });
  const v: CodeView = {
    stdout: out.text,
    stderr: err.text,
    results: e.results.map((r) => {
      const text = r.text ?? r.markdown ?? r.html;
      return {
        isMainResult: r.isMainResult,
        ...(text !== undefined
          ? { text: truncateMiddle(text, { maxBytes, label: "result", hint }).text }
          : {}),
        formats: FORMATS.filter((f) => r[f as keyof CellResult] !== undefined),
        ...(r.png !== undefined ? { png: r.png } : {}),
        ...(r.jpeg !== undefined ? { jpeg: r.jpeg } : {}),
      };
    }),
    durationMs,
  };
  if (e.error) {
    const tb = truncateMiddle(e.error.traceback, { maxBytes, label: "traceback", hint }).text;
    v.cellError = { name: e.error.name, value: e.error.value, traceback: tb };
  }
  if (e.executionCount !== undefined) v.executionCount = e.executionCount;
  if (out.omittedBytes || err.omittedBytes) {
    v.truncated = {
      ...(out.omittedBytes ? { stdout: out.omittedBytes } : {}),
      ...(err.omittedBytes ? { stderr: err.omittedBytes } : {}),
    };
  }
  if (error) v.error = error;
  return v;
}

/**
 * Runs a cell in a code context (state persists per context). A cell that
 * runs out of time resolves with what it produced and `error.code` `timeout`.
 */
export async function runCode(
  sb: Sandbox,
  input: RunCodeInput,
  limits: OutputLimits = {},
  signal?: AbortSignal,
): Promise<CodeView> {
  const started = Date.now();
  try {
    const r = await sb.runCode(input.code, {
      ...(input.language !== undefined ? { language: input.language } : {}),
      ...(input.context !== undefined ? { context: input.context } : {}),
      ...(input.timeoutMs !== undefined ? { timeoutMs: input.timeoutMs } : {}),
      ...(signal ? { signal } : {}),
    });
    return codeView(r, Date.now() - started, limits);
  } catch (e) {
    if (e instanceof CellTimeoutError)
      return codeView(e.execution, Date.now() - started, limits, errorInfo(e));
    throw e;
  }
}

/** Input of {@link readFileRange}. */
export interface ReadFileInput {
  path: string;
  /** First byte to return; default 0. */
  offset?: number | undefined;
  /** Bytes to return; default and maximum the read cap. */
  length?: number | undefined;
  /** `utf8` (default) or `base64` for bytes. */
  encoding?: "utf8" | "base64" | undefined;
}

/** A byte range of a file. */
export interface FileRange {
  path: string;
  encoding: "utf8" | "base64";
  content: string;
  /** First byte returned. */
  offset: number;
  /** Bytes returned. */
  bytes: number;
  /** Size of the whole file. */
  totalBytes: number;
  /** Where the next read should start, or null at the end of the file. */
  nextOffset: number | null;
}

async function readAll(stream: ReadableStream<Uint8Array>, signal?: AbortSignal): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const reader = stream.getReader();
  for (;;) {
    if (signal?.aborted) {
      await reader.cancel().catch(() => {});
      throw new KilnError("aborted", "operation aborted");
    }
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
  }
  return new Uint8Array(Buffer.concat(parts));
}

/**
 * Reads `length` bytes of a file from `offset` (at most the read cap). Text
 * ranges end on a character boundary; `nextOffset` says where to continue.
 * @throws NotFoundError, InvalidArgumentError (bad path or range, a directory)
 */
export async function readFileRange(
  sb: Sandbox,
  input: ReadFileInput,
  limits: OutputLimits = {},
  signal?: AbortSignal,
): Promise<FileRange> {
  const offset = input.offset ?? 0;
  const cap = limits.maxReadBytes ?? DEFAULT_MAX_READ_BYTES;
  const length = Math.min(input.length ?? cap, cap);
  if (!Number.isInteger(offset) || offset < 0)
    throw new InvalidArgumentError("offset must be an integer >= 0");
  if (!Number.isInteger(length) || length < 1)
    throw new InvalidArgumentError("length must be an integer >= 1");
  const encoding = input.encoding ?? "utf8";
  const bytes = await readAll(
    await sb.files.read(input.path, { format: "stream", ...(signal ? { signal } : {}) }),
    signal,
  );
  const start = Math.min(offset, bytes.length);
  let end = Math.min(start + length, bytes.length);
  if (encoding === "utf8" && end < bytes.length) {
    const b = utf8Boundary(bytes, end);
    if (b > start) end = b;
  }
  const slice = bytes.subarray(start, end);
  return {
    path: input.path,
    encoding,
    content: encoding === "base64" ? Buffer.from(slice).toString("base64") : new TextDecoder().decode(slice),
    offset: start,
    bytes: slice.length,
    totalBytes: bytes.length,
    nextOffset: end < bytes.length ? end : null,
  };
}

/** Input of {@link writeFile}. */
export interface WriteFileInput {
  path: string;
  content: string;
  /** `utf8` (default) or `base64` for bytes. */
  encoding?: "utf8" | "base64" | undefined;
}

/** Decodes standard base64 (whitespace ignored). @throws InvalidArgumentError when malformed */
export function decodeBase64(s: string): Uint8Array {
  const clean = s.replace(/\s+/g, "");
  if (clean.length % 4 === 1 || !/^[A-Za-z0-9+/]*={0,2}$/.test(clean)) {
    throw new InvalidArgumentError("content is not valid base64");
  }
  return new Uint8Array(Buffer.from(clean, "base64"));
}

/**
 * Writes (replacing) a file and creates its parent directories.
 * @throws LimitExceededError (`maxFileBytes`, `diskBytes`), InvalidArgumentError
 */
export async function writeFile(
  sb: Sandbox,
  input: WriteFileInput,
  signal?: AbortSignal,
): Promise<{ path: string; bytes: number }> {
  const data = input.encoding === "base64" ? decodeBase64(input.content) : input.content;
  const info = await sb.files.write(input.path, data, signal ? { signal } : {});
  return { path: info.path, bytes: info.size };
}

/** Input of {@link listFiles}. */
export interface ListFilesInput {
  /** Directory; default the sandbox's working directory. */
  path?: string | undefined;
  /** Levels to descend; default 1. */
  depth?: number | undefined;
}

/** One listed entry. */
export interface ListedEntry {
  path: string;
  type: EntryType;
  size: number;
  symlinkTarget?: string;
}

/** A directory listing, cut at the entry cap. */
export interface Listing {
  entries: ListedEntry[];
  /** Entries left out by the cap (0 when none). */
  omitted: number;
}

/** Lists a directory `depth` levels deep, sorted by path. @throws NotFoundError */
export async function listFiles(
  sb: Sandbox,
  input: ListFilesInput,
  limits: OutputLimits = {},
  signal?: AbortSignal,
): Promise<Listing> {
  const all = await sb.files.list(input.path ?? ".", {
    depth: input.depth ?? 1,
    ...(signal ? { signal } : {}),
  });
  all.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const cap = limits.maxListEntries ?? 1000;
  return {
    entries: all.slice(0, cap).map((e) => ({
      path: e.path,
      type: e.type,
      size: e.size,
      ...(e.symlinkTarget !== undefined ? { symlinkTarget: e.symlinkTarget } : {}),
    })),
    omitted: Math.max(0, all.length - cap),
  };
}
