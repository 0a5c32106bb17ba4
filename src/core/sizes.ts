/**
 * Size limits of what a sandbox record and a command carry: metadata
 * (labels), environment variables, and label filters. Records are read on
 * every list, so an unbounded label would slow every key's list and bloat
 * the server; these limits keep each record small. Every check throws
 * `invalid_argument` (400 over HTTP), naming the limit.
 */
import { InvalidArgumentError } from "./errors.ts";

/** The size limits, in UTF-8 bytes and entries. */
export const SIZE_LIMITS = Object.freeze({
  /** Most metadata entries of a sandbox: 64. */
  metadataEntries: 64,
  /** Longest metadata key: 256 bytes. */
  metadataKeyBytes: 256,
  /** Longest metadata value: 4,096 bytes. */
  metadataValueBytes: 4096,
  /** All of a sandbox's metadata, keys and values: 16 KiB. */
  metadataBytes: 16 * 1024,
  /** Most environment variables (a sandbox's, or a command's with the sandbox's): 1,024. */
  envEntries: 1024,
  /** Longest environment variable name: 1,024 bytes. */
  envKeyBytes: 1024,
  /** Longest environment value: 128 KiB (Linux's limit on one string of a new program, MAX_ARG_STRLEN). */
  envValueBytes: 128 * 1024,
  /** All environment variables, names and values: 256 KiB. */
  envBytes: 256 * 1024,
});

function bytes(s: string): number {
  return Buffer.byteLength(s, "utf8");
}

function checkPairs(
  pairs: Record<string, unknown> | undefined,
  what: string,
  max: { entries: number; keyBytes: number; valueBytes: number; totalBytes: number },
): void {
  if (pairs === undefined || pairs === null) return;
  if (typeof pairs !== "object") throw new InvalidArgumentError(`${what} must be an object`);
  const entries = Object.entries(pairs);
  if (entries.length > max.entries) {
    throw new InvalidArgumentError(`${what} has ${entries.length} entries; at most ${max.entries}`);
  }
  let total = 0;
  for (const [k, v] of entries) {
    if (typeof v !== "string") throw new InvalidArgumentError(`${what} ${k.slice(0, 64)} must be a string`);
    const kb = bytes(k);
    const vb = bytes(v);
    if (kb > max.keyBytes) {
      throw new InvalidArgumentError(`a ${what} key is ${kb} bytes; at most ${max.keyBytes}`);
    }
    if (vb > max.valueBytes) {
      throw new InvalidArgumentError(`${what} ${k.slice(0, 64)} is ${vb} bytes; at most ${max.valueBytes}`);
    }
    total += kb + vb;
  }
  if (total > max.totalBytes) {
    throw new InvalidArgumentError(`${what} is ${total} bytes in all; at most ${max.totalBytes}`);
  }
}

/** Checks a sandbox's metadata (or a label filter) against {@link SIZE_LIMITS}. @throws InvalidArgumentError */
export function checkMetadataSize(metadata: Record<string, unknown> | undefined, what = "metadata"): void {
  checkPairs(metadata, what, {
    entries: SIZE_LIMITS.metadataEntries,
    keyBytes: SIZE_LIMITS.metadataKeyBytes,
    valueBytes: SIZE_LIMITS.metadataValueBytes,
    totalBytes: SIZE_LIMITS.metadataBytes,
  });
}

/** Checks environment variables against {@link SIZE_LIMITS}. @throws InvalidArgumentError */
export function checkEnvSize(env: Record<string, unknown> | undefined): void {
  checkPairs(env, "env", {
    entries: SIZE_LIMITS.envEntries,
    keyBytes: SIZE_LIMITS.envKeyBytes,
    valueBytes: SIZE_LIMITS.envValueBytes,
    totalBytes: SIZE_LIMITS.envBytes,
  });
}
