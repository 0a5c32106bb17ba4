/**
 * POSIX-style filesystem errors raised by the workspace store. They carry an
 * errno `code` (ENOENT, EEXIST, ...) and a Node-style message, which is what
 * just-bash's commands and the Python runtime expect; core maps them to
 * KilnError codes at the API boundary.
 */

/** The errno codes the store raises. */
export type Errno =
  | "ENOENT"
  | "EEXIST"
  | "ENOTDIR"
  | "EISDIR"
  | "ENOTEMPTY"
  | "ELOOP"
  | "ENOSPC"
  | "EFBIG"
  | "EINVAL"
  | "EPERM"
  | "EBUSY"
  | "EROFS";

const DESCRIPTIONS: Record<Errno, string> = {
  ENOENT: "no such file or directory",
  EEXIST: "file already exists",
  ENOTDIR: "not a directory",
  EISDIR: "illegal operation on a directory",
  ENOTEMPTY: "directory not empty",
  ELOOP: "too many symbolic links encountered",
  ENOSPC: "no space left on device",
  EFBIG: "file too large",
  EINVAL: "invalid argument",
  EPERM: "operation not permitted",
  EBUSY: "resource busy or locked",
  EROFS: "read-only file system",
};

/** Emscripten/Linux errno numbers, for the WASM runtimes. */
export const ERRNO_NUMBERS: Record<Errno, number> = {
  EPERM: 63,
  ENOENT: 44,
  EEXIST: 20,
  ENOTDIR: 54,
  EISDIR: 31,
  ENOTEMPTY: 55,
  ELOOP: 32,
  ENOSPC: 51,
  EFBIG: 22,
  EINVAL: 28,
  EBUSY: 10,
  EROFS: 69,
};

/** A filesystem error with an errno code. */
export class FsError extends Error {
  /** errno code. */
  readonly code: Errno;
  /** The path involved. */
  readonly path: string;
  constructor(code: Errno, syscall: string, path: string) {
    // These are control flow (just-bash probes paths by catching them); a stack trace would cost more than the lookup.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(`${code}: ${DESCRIPTIONS[code]}, ${syscall} '${path}'`);
    Error.stackTraceLimit = limit;
    this.name = "FsError";
    this.code = code;
    this.path = path;
  }
}
