/**
 * The default template's name and packages, in a module with no imports so
 * that the CLI can name them in its help without loading the template code.
 */

/** The name of the template sandboxes use when they name none. */
export const DEFAULT_TEMPLATE = "default";

/**
 * The packages of the `default` template: a shell, coreutils, Python, Node
 * (bookworm's nodejs is Node 18), git and curl with CA certificates, plus
 * procps (ps, kill), which tests and agents expect, and less/xz/tar-level
 * basics minbase already has.
 */
export const DEFAULT_PACKAGES: readonly string[] = [
  "bash",
  "coreutils",
  "python3",
  "nodejs",
  "git",
  "curl",
  "ca-certificates",
  "procps",
];
