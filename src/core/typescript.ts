/**
 * TypeScript cells become JavaScript on the host, before they reach the
 * sandbox's Node: Node's own type stripping (`node:module`'s
 * `stripTypeScriptTypes`, the same code Node runs `.ts` files with). Types are
 * erased in place, so line and column numbers in a traceback are the cell's
 * own; a cell that needs code generated (`enum`, `namespace`, parameter
 * properties) is transformed instead.
 */
import { stripTypeScriptTypes } from "node:module";

/** A cell that is not valid TypeScript: the message, as Node's parser gives it. */
export class TypeScriptSyntaxError extends Error {
  override readonly name = "SyntaxError";
}

/**
 * The JavaScript of a TypeScript cell.
 * @throws TypeScriptSyntaxError when the cell does not parse
 */
export function typeScriptToJs(code: string): string {
  try {
    return quietly(() => stripTypeScriptTypes(code, { mode: "strip" }));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX") throw syntaxError(e);
  }
  try {
    return quietly(() => stripTypeScriptTypes(code, { mode: "transform" }));
  } catch (e) {
    throw syntaxError(e);
  }
}

function syntaxError(e: unknown): Error {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === "ERR_INVALID_TYPESCRIPT_SYNTAX" || code === "ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX")
    return new TypeScriptSyntaxError((e as Error).message);
  return e as Error;
}

/** Runs `f` without the once-per-process ExperimentalWarning Node prints for type stripping. */
function quietly<T>(f: () => T): T {
  const emit = process.emitWarning;
  process.emitWarning = ((w: string | Error, ...rest: unknown[]) => {
    const text = typeof w === "string" ? w : w.message;
    if (/stripTypeScriptTypes/.test(text)) return;
    (emit as (...a: unknown[]) => void).call(process, w, ...rest);
  }) as typeof process.emitWarning;
  try {
    return f();
  } finally {
    process.emitWarning = emit;
  }
}
