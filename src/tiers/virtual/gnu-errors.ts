/** GNU's words for filesystem errors, for the virtual shell's messages. */

/** GNU's strerror text per errno code. */
export const GNU_ERRNO_TEXT: Record<string, string> = {
  ENOENT: "No such file or directory",
  ENOTDIR: "Not a directory",
  EISDIR: "Is a directory",
  EEXIST: "File exists",
  ENOTEMPTY: "Directory not empty",
  ELOOP: "Too many levels of symbolic links",
  ENOSPC: "No space left on device",
  EFBIG: "File too large",
  EINVAL: "Invalid argument",
  EPERM: "Operation not permitted",
  EACCES: "Permission denied",
  EBUSY: "Device or resource busy",
  EROFS: "Read-only file system",
};

/** The errno code of a thrown filesystem error, if any. */
export function errnoOf(e: unknown): string | undefined {
  const code = (e as { code?: unknown })?.code;
  if (typeof code === "string" && /^E[A-Z]+$/.test(code)) return code;
  return /^(E[A-Z]+):/.exec(String((e as Error)?.message))?.[1];
}

/** GNU's text for a thrown filesystem error. */
export function gnuText(e: unknown): string {
  const code = errnoOf(e);
  return (code && GNU_ERRNO_TEXT[code]) ?? String((e as Error)?.message ?? e);
}
