// Whether the compiled CLI in dist/ was built from the source tree as it is now.
// Plain JavaScript with no dependencies: bin/kiln.mjs runs it before it knows which
// code to load, and scripts/build-cli.mjs writes the stamp it checks.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

/** The stamp's file name inside dist/. */
export const STAMP = ".kiln-build.json";

/**
 * Whether a file of src/ is a runtime asset the build copies into dist/ as it
 * is (a `.py` the code loads beside itself): not TypeScript, not a test, not
 * a byte-code cache or a hidden file.
 */
export function isAsset(name) {
  return (
    !name.endsWith(".ts") &&
    !name.startsWith(".") &&
    !name.endsWith(".pyc") &&
    !/[._-]test\.[a-z]+$/.test(name)
  );
}

/** Calls `fn(relativePath, absolutePath)` for every file the build reads: non-test `.ts` files and assets. */
export function walkBuildInputs(root, fn) {
  // A walk with file types, not readdirSync's `recursive` (which is several times slower):
  // this runs before every CLI command.
  const walk = (dir, rel) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, e.name);
      if (e.isDirectory()) {
        if (e.name !== "__pycache__") walk(path, `${rel}${e.name}/`);
      } else if (e.name.endsWith(".ts") ? !e.name.endsWith(".test.ts") : isAsset(e.name)) {
        fn(`${rel}${e.name}`, path);
      }
    }
  };
  walk(join(root, "src"), "");
}

/**
 * A fingerprint of the sources the build compiles and the assets it copies:
 * every non-test `.ts` file under src/ and every asset ({@link isAsset}), with
 * its size and modification time. Any edit, checkout, added or removed file
 * changes it.
 */
export function sourceFingerprint(root) {
  const parts = [];
  walkBuildInputs(root, (rel, path) => {
    const st = statSync(path);
    parts.push(`${rel}\0${st.size}\0${st.mtimeMs}`);
  });
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
