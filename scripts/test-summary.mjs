// A node:test reporter that prints, after the run, one row per suite (a top-level `describe`, or a
// file's top-level tests together) with its counts and duration, then which tiers ran and why
// tests were skipped. It runs beside the spec reporter: `--test-reporter=./scripts/test-summary.mjs`.
const TIERS = ["virtual", "namespace", "oci", "gvisor", "microvm"];

/** @param {AsyncIterable<{type: string, data: any}>} source */
export default async function* summary(source) {
  const stacks = new Map(); // file -> open tests, innermost last: { hasChildren }
  const suites = new Map(); // key -> { name, tests, pass, fail, skip, ms }
  const skips = new Map(); // reason -> count
  const wallStart = Date.now();
  const row = (key, name) => {
    if (!suites.has(key)) suites.set(key, { name, tests: 0, pass: 0, fail: 0, skip: 0, ms: 0 });
    return suites.get(key);
  };
  const pending = new Map(); // file -> leaf outcomes not yet under a top-level suite
  const failures = []; // { name, file, text }: why each failed leaf test failed, printed last

  for await (const { type, data } of source) {
    const file = data?.file ?? "";
    if (type === "test:start") {
      if (!stacks.has(file)) stacks.set(file, []);
      stacks.get(file).push({ hasChildren: false });
      continue;
    }
    if (type !== "test:pass" && type !== "test:fail") continue;
    const stack = stacks.get(file) ?? [];
    const self = stack.pop() ?? { hasChildren: false };
    if (stack.length) stack[stack.length - 1].hasChildren = true;
    const isLeaf = data.details?.type !== "suite" && !self.hasChildren;
    if (isLeaf) {
      const outcome =
        data.skip !== undefined || data.todo !== undefined ? "skip" : type === "test:pass" ? "pass" : "fail";
      if (outcome === "skip" && typeof data.skip === "string")
        skips.set(data.skip, (skips.get(data.skip) ?? 0) + 1);
      if (outcome === "fail")
        failures.push({ name: data.name, file, text: failureText(data.details?.error) });
      if (!pending.has(file)) pending.set(file, []);
      pending.get(file).push(outcome);
    }
    if (data.nesting !== 0) continue;
    const named = data.details?.type === "suite";
    const rel = file.startsWith(process.cwd()) ? file.slice(process.cwd().length + 1) : file;
    const r = named ? row(`${rel}\0${data.name}`, data.name) : row(rel, rel);
    for (const outcome of pending.get(file) ?? []) {
      r.tests++;
      r[outcome]++;
    }
    pending.delete(file);
    r.ms += data.details?.duration_ms ?? 0;
  }

  const lines = [`\n== summary (${((Date.now() - wallStart) / 1000).toFixed(1)} s wall)`];
  const width = Math.max(44, ...[...suites.values()].map((r) => r.name.length + 1));
  lines.push(`${"suite".padEnd(width)} tests  pass  fail  skip      time`);
  for (const r of suites.values()) {
    const n = (v) => String(v).padStart(5);
    const mark = r.fail ? "  FAILED" : "";
    lines.push(
      `${r.name.padEnd(width)}${n(r.tests)} ${n(r.pass)} ${n(r.fail)} ${n(r.skip)} ${`${(r.ms / 1000).toFixed(1)} s`.padStart(9)}${mark}`,
    );
  }
  lines.push("", "tiers:");
  for (const tier of TIERS) {
    const mine = [...suites.values()].filter((r) => new RegExp(`\\b${tier}\\b`).test(r.name));
    const passed = mine.reduce((a, r) => a + r.pass, 0);
    lines.push(
      `  ${tier.padEnd(10)} ${passed ? `ran (${passed} tests passed in suites named for it)` : "did not run (no passing test in a suite named for it)"}`,
    );
  }
  if (skips.size) {
    lines.push("", "skipped, and why:");
    for (const [reason, count] of skips) lines.push(`  ${String(count).padStart(4)} × ${reason}`);
  }
  if (failures.length) {
    lines.push("", "failures, and why:");
    for (const f of failures) {
      lines.push(
        `  ✖ ${f.name} (${f.file.startsWith(process.cwd()) ? f.file.slice(process.cwd().length + 1) : f.file})`,
      );
      for (const l of f.text) lines.push(`      ${l}`);
    }
  }
  yield `${lines.join("\n")}\n`;
}

/** The first lines of a failed test's error (the assertion or exception inside the runner's wrapper). */
function failureText(error) {
  const inner = error?.cause ?? error;
  const text = inner instanceof Error ? (inner.stack ?? `${inner.name}: ${inner.message}`) : String(inner);
  return text.split("\n").slice(0, 12);
}
