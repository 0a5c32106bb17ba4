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

/** The name of the template for code cells (E2B's `code-interpreter-v1` maps to it). */
export const CODE_INTERPRETER_TEMPLATE = "code-interpreter";

/**
 * The packages of the `code-interpreter` template: the default template's,
 * plus Debian's numpy, pandas, matplotlib, scipy and IPython (whose display
 * classes the Python kernel understands). About 1.4 GB; kiln builds it only
 * when asked (`kiln template build code-interpreter`).
 */
export const CODE_INTERPRETER_PACKAGES: readonly string[] = [
  ...DEFAULT_PACKAGES,
  "python3-numpy",
  "python3-pandas",
  "python3-matplotlib",
  "python3-scipy",
  "python3-ipython",
];

/** The packages a template of this name gets when the build names none. */
export function packagesFor(name: string): readonly string[] {
  if (name === DEFAULT_TEMPLATE) return DEFAULT_PACKAGES;
  if (name === CODE_INTERPRETER_TEMPLATE) return CODE_INTERPRETER_PACKAGES;
  return [];
}
