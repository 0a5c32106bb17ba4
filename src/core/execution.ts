/**
 * The result model of a code cell (`sandbox.runCode`), the same on every tier
 * and every surface (REST, client, MCP, AI tools, the E2B API): what Jupyter
 * returns for a cell, in the shape of E2B's code interpreter.
 *
 * A kernel reports a cell as a sequence of {@link CellEvent}s; an
 * {@link ExecutionBuilder} folds them into an {@link Execution} and calls the
 * caller's callbacks as they arrive.
 */
import { InvalidArgumentError } from "./errors.ts";

/**
 * One displayed value: the cell's last expression (`isMainResult`) or a
 * `display(...)` call, a matplotlib figure, ... Each representation is
 * optional; `text` is present for a main result. Binary formats (png, jpeg,
 * pdf) are base64.
 */
export interface CellResult {
  /** text/plain. */
  text?: string;
  /** text/html. */
  html?: string;
  /** text/markdown. */
  markdown?: string;
  /** image/svg+xml. */
  svg?: string;
  /** image/png, base64. */
  png?: string;
  /** image/jpeg, base64. */
  jpeg?: string;
  /** application/pdf, base64. */
  pdf?: string;
  /** text/latex. */
  latex?: string;
  /** application/json, parsed. */
  json?: unknown;
  /** application/javascript. */
  javascript?: string;
  /** Chart data of a figure of one clear kind: `{ type: "line" | "bar" | "scatter" | "pie", title, elements, ... }`. */
  chart?: Record<string, unknown>;
  /** Representations of other MIME types, by type. */
  extra?: Record<string, unknown>;
  /** True for the value of the cell's last expression. */
  isMainResult: boolean;
}

/** An error the cell raised. */
export interface CellError {
  /** The exception's class name (`ZeroDivisionError`, `TypeError`, ...). */
  name: string;
  /** Its message. */
  value: string;
  /** The formatted traceback. */
  traceback: string;
}

/** The outcome of one cell. */
export interface Execution {
  /** Displayed values, in order; the main result among them. */
  results: CellResult[];
  /** Printed output, as the chunks arrived. */
  logs: { stdout: string[]; stderr: string[] };
  /** Set when the cell raised. */
  error?: CellError;
  /** How many cells this context has run, this one included. */
  executionCount?: number;
}

/** One event of a running cell, as a kernel reports it. */
export type CellEvent =
  | { type: "stdout" | "stderr"; text: string }
  | { type: "result"; result: CellResult }
  | { type: "error"; error: CellError }
  | { type: "done"; executionCount?: number };

/** Callbacks of a running cell. */
export interface CellCallbacks {
  onStdout?: (text: string) => void;
  onStderr?: (text: string) => void;
  onResult?: (result: CellResult) => void;
  onError?: (error: CellError) => void;
}

/** The languages a code context can run. */
export type CodeLanguage = "python" | "js" | "ts" | "bash";

const ALIASES: Record<string, CodeLanguage> = {
  python: "python",
  python3: "python",
  py: "python",
  js: "js",
  javascript: "js",
  node: "js",
  bash: "bash",
  sh: "bash",
  shell: "bash",
  ts: "ts",
  typescript: "ts",
};

/**
 * The language `value` names (default python).
 * @throws InvalidArgumentError (`invalid_argument`) for a name Kiln does not know
 */
export function checkLanguage(value: unknown): CodeLanguage {
  if (value === undefined || value === null) return "python";
  const lang = typeof value === "string" ? ALIASES[value.toLowerCase()] : undefined;
  if (lang === undefined)
    throw new InvalidArgumentError(
      `unknown language ${JSON.stringify(value)}; one of python, js (javascript), ts (typescript), bash`,
    );
  return lang;
}

const RESULT_KEYS = ["text", "html", "markdown", "svg", "png", "jpeg", "pdf", "latex", "javascript"] as const;

/** A result as a kernel's JSON line gives it (`is_main_result`, E2B's field names), checked. */
export function resultFromWire(raw: Record<string, unknown>): CellResult {
  const r: CellResult = { isMainResult: raw.is_main_result === true || raw.isMainResult === true };
  for (const k of RESULT_KEYS) if (typeof raw[k] === "string") r[k] = raw[k] as string;
  if (raw.json !== undefined && raw.json !== null) r.json = raw.json;
  if (raw.chart && typeof raw.chart === "object") r.chart = raw.chart as Record<string, unknown>;
  if (raw.extra && typeof raw.extra === "object") r.extra = raw.extra as Record<string, unknown>;
  return r;
}

/** Folds a cell's events into an {@link Execution}, calling the callbacks as they arrive. */
export class ExecutionBuilder {
  readonly execution: Execution = { results: [], logs: { stdout: [], stderr: [] } };
  private readonly callbacks: CellCallbacks;

  constructor(callbacks: CellCallbacks = {}) {
    this.callbacks = callbacks;
  }

  /** Adds one event. A throwing callback does not stop the cell. */
  add(e: CellEvent): void {
    const ex = this.execution;
    const call = (f: (() => void) | undefined) => {
      try {
        f?.();
      } catch {
        // The caller's callback failing is the caller's business; the cell goes on.
      }
    };
    switch (e.type) {
      case "stdout":
        ex.logs.stdout.push(e.text);
        call(() => this.callbacks.onStdout?.(e.text));
        break;
      case "stderr":
        ex.logs.stderr.push(e.text);
        call(() => this.callbacks.onStderr?.(e.text));
        break;
      case "result":
        ex.results.push(e.result);
        call(() => this.callbacks.onResult?.(e.result));
        break;
      case "error":
        ex.error = e.error;
        call(() => this.callbacks.onError?.(e.error));
        break;
      case "done":
        if (e.executionCount !== undefined) ex.executionCount = e.executionCount;
        break;
    }
  }
}

/** The main result's text, or undefined (E2B's `execution.text`). */
export function executionText(e: Execution): string | undefined {
  return e.results.find((r) => r.isMainResult)?.text;
}

/**
 * An error out of a traceback a plain interpreter printed on stderr (the
 * last line, `Name: value`), for interpreters that report no structured error.
 */
export function errorFromTraceback(stderr: string, fallbackName: string): CellError {
  const lines = stderr.trimEnd().split("\n");
  const last = lines.at(-1) ?? "";
  const m = /^([A-Za-z_][\w.]*)(?::\s?(.*))?$/.exec(last);
  return m
    ? { name: m[1]!.split(".").at(-1)!, value: m[2] ?? "", traceback: stderr }
    : { name: fallbackName, value: last, traceback: stderr };
}
