// Whether the compiled CLI in dist/ was built from the source tree as it is now.
// Plain JavaScript with no dependencies: bin/kiln.mjs runs it before it knows which
// code to load, and scripts/build-cli.mjs writes the stamp it checks.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

/** The stamp's file name inside dist/. */
export const STAMP = ".kiln-build.json";

/**
 * A fingerprint of the sources the build compiles: every non-test `.ts` file
 * under src/, with its size and modification time. Any edit, checkout, added
 * or removed file changes it.
 */
export function sourceFingerprint(root) {
  const src = join(root, "src");
  const parts = [];
  for (const rel of readdirSync(src, { recursive: true })) {
    const name = String(rel);
    if (!name.endsWith(".ts") || name.endsWith(".test.ts")) continue;
    const st = statSync(join(src, name));
    parts.push(`${name}\0${st.size}\0${st.mtimeMs}`);
  }
  return parts.sort().join("\n");
}

/**
 * The compiled CLI's entry (dist/cli/main.js) when dist/ holds a build of the
 * current sources, else undefined (missing or stale).
 */
export function freshCompiledEntry(root) {
  const dist = join(root, "dist");
  let stamp;
  try {
    stamp = JSON.parse(readFileSync(join(dist, STAMP), "utf8"));
  } catch {
    return undefined;
  }
  if (stamp.fingerprint !== sourceFingerprint(root)) return undefined;
  return join(dist, "cli", "main.js");
}
