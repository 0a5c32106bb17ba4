/** Environment variables as callers give them to Kiln. */
import { InvalidArgumentError } from "./errors.ts";

/** What an environment variable's name must look like: a shell identifier. */
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Checks environment variables (names are shell identifiers, so never empty
 * and never with `=` or NUL; values are strings without NUL) and returns a copy.
 * @throws InvalidArgumentError (`invalid_argument`) naming the first bad variable
 */
export function checkEnv(env: unknown): Record<string, string> {
  if (env === undefined) return {};
  if (typeof env !== "object" || env === null || Array.isArray(env))
    throw new InvalidArgumentError("env must be an object of strings");
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (!NAME.test(k))
      throw new InvalidArgumentError(`invalid environment variable name: ${JSON.stringify(k)}`);
    if (typeof v !== "string" || v.includes("\0"))
      throw new InvalidArgumentError(`environment variable ${k} must be a string without NUL bytes`);
    out[k] = v;
  }
  return out;
}
