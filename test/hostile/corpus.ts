/** The committed regression corpus of the fuzz tests: interesting and once-failing inputs, replayed every run. */
import { readFileSync } from "node:fs";
import { join } from "node:path";

/** Parses `test/hostile/corpus/<name>`. */
export function loadCorpus(name: string): unknown {
  return JSON.parse(readFileSync(join(import.meta.dirname, "corpus", name), "utf8"));
}
