/**
 * Path rules of the public API, the same on every tier. A path names a place
 * inside the sandbox's own filesystem: absolute, or relative to the sandbox's
 * working directory. A `..` segment or a NUL byte is rejected outright rather
 * than normalized away, so a caller never reaches a place it did not name.
 * Symlinks are resolved by the tier inside the sandbox's root, never on the host.
 */
import { posix } from "node:path";
import { InvalidArgumentError } from "./errors.ts";

/** The working directory and persistent part of every sandbox. */
export const WORKSPACE = "/workspace";

/** Longest path accepted, in bytes (Linux PATH_MAX). */
export const MAX_PATH_BYTES = 4096;

/**
 * Checks and normalizes a sandbox path.
 * @throws InvalidArgumentError (`invalid_argument`) for an empty path, a NUL byte, a `..` segment or an over-long path.
 */
export function sandboxPath(path: unknown, cwd: string = WORKSPACE): string {
  if (typeof path !== "string" || path.length === 0) {
    throw new InvalidArgumentError("path must be a non-empty string");
  }
  if (path.includes("\0")) throw new InvalidArgumentError("path contains a NUL byte");
  if (Buffer.byteLength(path) > MAX_PATH_BYTES) throw new InvalidArgumentError("path is too long");
  if (path.split("/").includes("..")) {
    throw new InvalidArgumentError(`path may not contain '..': ${path}`);
  }
  return posix.resolve(cwd, path);
}
