/**
 * docs/e2b.md's call-by-call table, checked against what the E2B tests prove:
 * every call of a row marked `supported` is made by the suite (test/e2b,
 * test/e2b-code and the E2B hostile tests), and every row's status is one of the known words.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

const ROOT = join(import.meta.dirname, "..", "..");

/** The rows of the table under `## Supported surface`: [calls cell, status]. */
function rows(): { calls: string; status: string }[] {
  const md = readFileSync(join(ROOT, "docs", "e2b.md"), "utf8");
  const section = md.slice(md.indexOf("## Supported surface"));
  const out: { calls: string; status: string }[] = [];
  for (const line of section.split("\n").slice(1)) {
    if (line.startsWith("## ")) break;
    if (!line.startsWith("| ") || line.startsWith("| call") || line.startsWith("|---")) continue;
    // Cells split on unescaped pipes.
    const cells = line.split(/(?<!\\)\|/).map((c) => c.trim());
    out.push({ calls: cells[1] ?? "", status: cells[2] ?? "" });
  }
  return out;
}

/** The method names a calls cell names: `files.watchDir(path, ...)` -> watchDir; `sbx.git.*` -> git. */
function methods(calls: string): string[] {
  const names: string[] = [];
  for (const m of calls.matchAll(/`([^`]+)`/g)) {
    const code = m[1]!;
    if (code.startsWith("@")) continue;
    const head = /^([A-Za-z][\w.]*?)(?:\.\*)?(?:\(|$|\s)/.exec(code)?.[1];
    if (!head) continue;
    names.push(head.split(".").at(-1)!);
  }
  return names;
}

const sources = (): string => {
  const files = [
    ...readdirSync(join(ROOT, "test", "e2b")).map((f) => join(ROOT, "test", "e2b", f)),
    ...readdirSync(join(ROOT, "test", "e2b-code")).map((f) => join(ROOT, "test", "e2b-code", f)),
    join(ROOT, "test", "hostile", "tokens-e2b.security.test.ts"),
  ].filter((f) => f.endsWith(".ts") && !f.endsWith("docs-table.test.ts"));
  return files.map((f) => readFileSync(f, "utf8")).join("\n");
};

test("docs/e2b.md: every call of a supported row is made by the E2B tests", () => {
  const code = sources();
  const table = rows();
  assert.ok(table.length > 20, `the table has ${table.length} rows`);
  for (const { calls, status } of table) {
    assert.match(status, /^(supported|supported on [a-z, ]+|partial|not supported)$/, `status of ${calls}`);
    if (!status.startsWith("supported")) continue;
    for (const name of methods(calls)) {
      const called = new RegExp(`\\.${name}[(.]`).test(code);
      assert.ok(called, `docs/e2b.md says ${calls} is ${status}, but no E2B test calls .${name}(`);
    }
  }
});

test("the table parser finds the calls of a row", () => {
  assert.deepEqual(methods("`Sandbox.kill(id)` / `sbx.kill()`"), ["kill", "kill"]);
  assert.deepEqual(methods("`sbx.git.*`"), ["git"]);
  assert.deepEqual(methods("`files.watchDir(path, onEvent, { recursive })`"), ["watchDir"]);
  assert.deepEqual(methods("`commands.run(cmd, { background: true })` → `wait`, `kill`"), [
    "run",
    "wait",
    "kill",
  ]);
});
