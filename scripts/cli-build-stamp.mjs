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
  const parts = [];
  // A walk with file types, not readdirSync's `recursive` (which is several times slower):
  // this runs before every CLI command.
  const walk = (dir, rel) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, e.name);
      if (e.isDirectory()) walk(path, `${rel}${e.name}/`);
      else if (e.name.endsWith(".ts") && !e.name.endsWith(".test.ts")) {
        const st = statSync(path);
        parts.push(`${rel}${e.name}\0${st.size}\0${st.mtimeMs}`);
      }
    }
  };
  walk(join(root, "src"), "");
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
