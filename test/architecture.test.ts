/**
 * Import rules of the code base (docs/architecture.md), checked on every
 * relative import under src/:
 *  - core imports only core;
 *  - workspace and protocol import only core and themselves;
 *  - a tier imports core, workspace, protocol, templates and tiers/common, never another tier;
 *  - tiers/common imports no tier;
 *  - the CLI, the server, the client and the adapters (e2b, mcp, ai) never import a tier:
 *    they reach tiers through src/index.ts and the registry.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { test } from "node:test";

const SRC = join(import.meta.dirname, "..", "src");

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

/** Relative imports of a file, as paths relative to src/ (e.g. `tiers/oci/backend.ts`). */
function imports(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const specs = [...text.matchAll(/(?:import|export)\s[^"']*?from\s+["'](\.{1,2}\/[^"']+)["']/g)].map(
    (m) => m[1]!,
  );
  const dynamic = [...text.matchAll(/import\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/g)].map((m) => m[1]!);
  return [...specs, ...dynamic].map((s) => relative(SRC, resolve(dirname(file), s)));
}

/** The area of a path under src/: `core`, `tiers/oci`, `tiers/common`, `server`, ... */
function area(path: string): string {
  const parts = path.split("/");
  if (parts[0] === "tiers" && parts.length > 2) return `tiers/${parts[1]}`;
  return parts.length > 1 ? parts[0]! : path;
}

function allowed(from: string, to: string): boolean {
  if (from === to) return true;
  if (to.startsWith("..")) return false;
  switch (true) {
    case from === "core":
      return false;
    case from === "workspace" || from === "protocol":
      return to === "core";
    case from === "tiers/common":
      return ["core", "workspace", "protocol", "templates"].includes(to);
    case from.startsWith("tiers/"):
      return ["core", "workspace", "protocol", "templates", "tiers/common"].includes(to);
    case ["cli", "server", "client", "e2b", "mcp", "ai"].includes(from):
      return !to.startsWith("tiers/");
    default:
      return true;
  }
}

test("import rules hold across src/", () => {
  const broken: string[] = [];
  let checked = 0;
  for (const file of files(SRC)) {
    const rel = relative(SRC, file);
    const from = area(rel);
    for (const target of imports(file)) {
      checked++;
      if (!allowed(from, area(target))) broken.push(`${rel} imports ${target}`);
    }
  }
  assert.ok(checked > 100, `too few imports found (${checked}): the parser is broken`);
  assert.deepEqual(broken, [], `import rules broken:\n${broken.join("\n")}`);
});

test("the rules reject what they should", () => {
  assert.equal(allowed("tiers/oci", "tiers/namespace"), false);
  assert.equal(allowed("core", "tiers/virtual"), false);
  assert.equal(allowed("server", "tiers/common"), false);
  assert.equal(allowed("tiers/gvisor", "tiers/common"), true);
});
