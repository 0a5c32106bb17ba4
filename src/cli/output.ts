/** How the CLI prints: tables for people, JSON with `--json`, one-line errors. */
import { createRequire } from "node:module";
import type TableType from "cli-table3";
import { KilnError } from "../core/errors.ts";

/** cli-table3, loaded on the first table (most commands print none). */
function tableClass(): typeof TableType {
  return createRequire(import.meta.url)("cli-table3") as typeof TableType;
}

/** Prints rows as a borderless table with the given columns. */
export function printTable(head: string[], rows: (string | number)[][]): void {
  const Table = tableClass();
  const table = new Table({
    head,
    style: { head: [], border: [], compact: true, "padding-left": 0, "padding-right": 2 },
    chars: {
      top: "",
      "top-mid": "",
      "top-left": "",
      "top-right": "",
      bottom: "",
      "bottom-mid": "",
      "bottom-left": "",
      "bottom-right": "",
      left: "",
      "left-mid": "",
      mid: "",
      "mid-mid": "",
      right: "",
      "right-mid": "",
      middle: "",
    },
  });
  for (const r of rows) table.push(r.map(String));
  process.stdout.write(`${table.toString()}\n`);
}

/** Prints a value as JSON. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** A short age like `3m` or `2h`. */
export function age(iso: string): string {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/** Exit codes of the CLI itself (a command's own exit code passes through `run` and `exec`). */
export const EXIT = { error: 1, usage: 2, timeout: 124 } as const;

/** Prints an error as one line (or JSON) and returns the exit code to use. */
export function reportError(e: unknown, json: boolean): number {
  if (e instanceof KilnError) {
    if (json) process.stderr.write(`${JSON.stringify({ error: e.toJSON() })}\n`);
    else process.stderr.write(`kiln: ${e.code}: ${e.message}\n`);
    return e.code === "timeout" ? EXIT.timeout : e.code === "invalid_argument" ? EXIT.usage : EXIT.error;
  }
  const msg = e instanceof Error ? e.message : String(e);
  if (json) process.stderr.write(`${JSON.stringify({ error: { code: "internal", message: msg } })}\n`);
  else process.stderr.write(`kiln: ${msg}\n`);
  if (process.env.KILN_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
  return EXIT.error;
}

/** Parses repeated `KEY=VALUE` options into an object. */
export function keyValues(list: string[] | undefined, what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list ?? []) {
    const i = item.indexOf("=");
    if (i <= 0)
      throw new KilnError("invalid_argument", `${what} must be KEY=VALUE, got ${JSON.stringify(item)}`);
    out[item.slice(0, i)] = item.slice(i + 1);
  }
  return out;
}

/** Collects a repeatable option's values. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
