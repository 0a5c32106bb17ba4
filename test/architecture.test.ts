/**
 * The import rules of the code base, checked on every relative import under src/ (test files aside).
 * docs/architecture.md ("Import rules") states the same table; this test is what enforces it.
 *
 *  - core imports only core and network (the policy a sandbox is created with); network imports only
 *    core; workspace and protocol import only core; templates import core and workspace.
 *  - tiers/common imports core, network, workspace, protocol and templates; a tier imports those and tiers/common,
 *    never another tier; only the registry (tiers/index.ts) imports the tiers.
 *  - The surfaces (cli, server, client, e2b, mcp, ai) never import a tier, and reach core only through
 *    src/index.ts or a core module that src/index.ts re-exports (the public API). Among themselves:
 *    client imports no surface; mcp and tokens none; ai only mcp; e2b mcp and tokens; server e2b,
 *    mcp and tokens; cli any, and
 *    workspace and templates too (it copies trees and builds templates).
 *  - No import cycle between files, type-only imports included.
 *  - Capabilities are declared, not inferred: outside its own folder (and the registry), no code
 *    compares a tier's name to a literal or types a tier as a union of names; it reads `capabilities`.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { test } from "node:test";

const SRC = join(import.meta.dirname, "..", "src");

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? files(join(dir, e.name))
      : e.name.endsWith(".ts") && !e.name.endsWith(".test.ts")
        ? [join(dir, e.name)]
        : [],
  );
}

/** Relative imports of a file, as paths relative to src/ (e.g. `tiers/oci/backend.ts`). */
function imports(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const specs = [...text.matchAll(/(?:import|export)\s[^"';]*?from\s+["'](\.{1,2}\/[^"']+)["']/g)].map(
    (m) => m[1]!,
  );
  const dynamic = [...text.matchAll(/import\(\s*["'](\.{1,2}\/[^"']+)["']\s*\)/g)].map((m) => m[1]!);
  const bare = [...text.matchAll(/^import\s+["'](\.{1,2}\/[^"']+)["']/gm)].map((m) => m[1]!);
  return [...specs, ...dynamic, ...bare].map((s) => relative(SRC, resolve(dirname(file), s)));
}

/** The area of a path under src/: `core`, `tiers/oci`, `tiers/common`, `server`, `index.ts`, ... */
function area(path: string): string {
  const parts = path.split("/");
  if (parts[0] === "tiers" && parts.length > 2) return `tiers/${parts[1]}`;
  return parts.length > 1 ? parts[0]! : path;
}

/** Core modules that src/index.ts re-exports: the public API the surfaces may use. */
const PUBLIC_CORE = new Set(imports(join(SRC, "index.ts")).filter((t) => area(t) === "core"));

const SURFACES: Record<string, string[]> = {
  client: [],
  mcp: [],
  tokens: [],
  ai: ["mcp"],
  e2b: ["mcp", "tokens"],
  server: ["e2b", "mcp", "tokens"],
  cli: ["server", "client", "e2b", "mcp", "ai", "tokens", "workspace", "templates"],
};

/** Whether a file in area `from` may import `target` (a path under src/). */
function allowed(from: string, target: string): boolean {
  const to = area(target);
  if (from === to) return true;
  if (target.startsWith("..")) return false;
  if (from in SURFACES) {
    if (to === "index.ts") return true;
    if (to === "core") return PUBLIC_CORE.has(target);
    return SURFACES[from]!.includes(to);
  }
  switch (true) {
    case from === "core":
      return to === "network";
    case from === "network":
      return to === "core";
    case from === "workspace" || from === "protocol":
      return to === "core";
    case from === "templates":
      return to === "core" || to === "workspace";
    case from === "tiers/common":
      return ["core", "network", "workspace", "protocol", "templates"].includes(to);
    case from === "tiers": // the registry, tiers/index.ts
      return to === "core" || to.startsWith("tiers/");
    case from.startsWith("tiers/"):
      return ["core", "network", "workspace", "protocol", "templates", "tiers/common"].includes(to);
    case from === "index.ts":
      return to === "core" || to === "tiers" || to === "network";
    default:
      return false;
  }
}

/** Every import cycle among `graph`'s files, each as the path that closes it. */
function cycles(graph: Map<string, string[]>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, "open" | "done">();
  const path: string[] = [];
  const visit = (node: string) => {
    state.set(node, "open");
    path.push(node);
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === "open") found.push([...path.slice(path.indexOf(next)), next]);
      else if (!state.has(next)) visit(next);
    }
    path.pop();
    state.set(node, "done");
  };
  for (const node of graph.keys()) if (!state.has(node)) visit(node);
  return found;
}

const GRAPH = new Map(files(SRC).map((f) => [relative(SRC, f), imports(f)]));

test("import rules hold across src/", () => {
  const broken: string[] = [];
  let checked = 0;
  for (const [file, targets] of GRAPH) {
    for (const target of targets) {
      checked++;
      if (!allowed(area(file), target)) broken.push(`${file} imports ${target}`);
    }
  }
  assert.ok(checked > 100, `too few imports found (${checked}): the parser is broken`);
  assert.ok(PUBLIC_CORE.size > 5, "src/index.ts re-exports too few core modules: the parser is broken");
  assert.deepEqual(broken, [], `import rules broken:\n${broken.join("\n")}`);
});

test("no import cycles in src/", () => {
  const found = cycles(GRAPH).map((c) => c.join(" -> "));
  assert.deepEqual(found, [], `import cycles:\n${found.join("\n")}`);
});

/** A comparison with, or a union of, tier-name literals: `tier === "virtual"`, `"oci" | "gvisor"`. */
const TIER_BRANCH =
  /(?:===|!==)\s*"(?:virtual|namespace|oci|gvisor|microvm)"|"(?:virtual|namespace|oci|gvisor|microvm)"\s*\|\s*"/;

test("no code outside a tier's folder branches on a tier's name", () => {
  const found: string[] = [];
  for (const file of GRAPH.keys()) {
    if (/^tiers\/(?!common\/)/.test(file)) continue;
    readFileSync(join(SRC, file), "utf8")
      .split("\n")
      .forEach((line, i) => {
        if (TIER_BRANCH.test(line)) found.push(`${file}:${i + 1}: ${line.trim()}`);
      });
  }
  assert.deepEqual(found, [], `branches on a tier name (declare a capability instead):\n${found.join("\n")}`);
});

test("the rules reject what they should", () => {
  assert.ok(TIER_BRANCH.test('if (tier === "virtual")') && TIER_BRANCH.test('tier: "oci" | "gvisor";'));
  assert.ok(!TIER_BRANCH.test("if (caps.templates)"));
  assert.equal(allowed("tiers/oci", "tiers/namespace/backend.ts"), false);
  assert.equal(allowed("core", "tiers/virtual/backend.ts"), false);
  assert.equal(allowed("server", "tiers/common/host.ts"), false);
  assert.equal(allowed("server", "client/errors.ts"), false);
  assert.equal(allowed("client", "server/index.ts"), false);
  assert.equal(allowed("mcp", "core/warm-pool.ts"), false);
  assert.equal(allowed("tiers/gvisor", "tiers/common/oci-tier.ts"), true);
  assert.equal(allowed("server", "core/kiln.ts"), true);
  assert.deepEqual(
    cycles(
      new Map([
        ["a", ["b"]],
        ["b", ["c"]],
        ["c", ["a"]],
        ["d", ["a"]],
      ]),
    ),
    [["a", "b", "c", "a"]],
  );
});
