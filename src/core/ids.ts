/** Sandbox ids: `sb_` and 20 characters of [a-z0-9], random. */
import { randomBytes } from "node:crypto";
import { InvalidArgumentError } from "./errors.ts";

const ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";
const ID_PATTERN = /^sb_[a-z0-9]{20}$/;

/** A new random sandbox id. */
export function newSandboxId(): string {
  const bytes = randomBytes(20);
  let s = "sb_";
  for (const b of bytes) s += ALPHABET[b % ALPHABET.length];
  return s;
}

/**
 * Checks the shape of a sandbox id (it is used in file paths).
 * @throws InvalidArgumentError (`invalid_argument`)
 */
export function checkSandboxId(id: unknown): string {
  if (typeof id !== "string" || !ID_PATTERN.test(id)) {
    throw new InvalidArgumentError(`not a sandbox id: ${JSON.stringify(id)}`);
  }
  return id;
}
