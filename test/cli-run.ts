/**
 * Runs the real `kiln` CLI as a child process, as a user would: shared by the
 * CLI end-to-end tests and the hostile suite.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";

/** The repository's root. */
export const ROOT = join(import.meta.dirname, "..");
/** The CLI's entry point (TypeScript, run by Node directly). */
export const MAIN = join(ROOT, "src", "cli", "main.ts");

/** What one CLI run printed and how it ended. */
export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the CLI (`entry`, default src/cli/main.ts) on data directory `dir`
 * with `args`. `stdin` is piped to it when given; otherwise its stdin is
 * closed at once (piped, so the CLI sees no terminal). A run that has not
 * ended after `guardMs` (default 30 s) is killed.
 */
export function kiln(
  dir: string,
  args: string[],
  options: { stdin?: string | Uint8Array; entry?: string; guardMs?: number } = {},
): Promise<Run> {
  const env = { ...process.env };
  delete env.KILN_DEBUG; // would add stack traces to errors
  delete env.KILN_DATA_DIR;
  const child = spawn(process.execPath, [options.entry ?? MAIN, "--data-dir", dir, ...args], {
    cwd: ROOT,
    env,
    stdio: ["pipe", "pipe", "pipe"],
  });
  // A CLI that does not read its stdin (--no-stdin) may exit before we finish writing it.
  child.stdin.on("error", () => {});
  child.stdin.end(options.stdin);
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (d: string) => {
    stdout += d;
  });
  child.stderr.setEncoding("utf8").on("data", (d: string) => {
    stderr += d;
  });
  const guard = setTimeout(() => child.kill("SIGKILL"), options.guardMs ?? 30_000);
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(guard);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A run's full output, for assertion messages. */
export const show = (r: Run) => `exit ${r.code}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`;

/** Asserts that `r` ended with exit code `code`. */
export function assertExit(r: Run, code: number): void {
  assert.equal(r.code, code, show(r));
}
