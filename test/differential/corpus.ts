/**
 * The differential corpus: scripts the project writes itself, in
 * `corpus/<area>.sh`. Each case starts with a line `## name`; the lines up
 * to the next such line are its script, run by `bash -c` in a fresh, empty
 * directory of its own.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** One script of the corpus. */
export interface CorpusCase {
  /** `<area>: <name>`, unique. */
  id: string;
  script: string;
}

const DIR = join(import.meta.dirname, "corpus");

/** Every case, in file and then line order. */
export function loadCorpus(): CorpusCase[] {
  const cases: CorpusCase[] = [];
  for (const file of readdirSync(DIR)
    .filter((f) => f.endsWith(".sh"))
    .sort()) {
    const area = file.slice(0, -3);
    let current: { name: string; lines: string[] } | undefined;
    const flush = () => {
      if (current) cases.push({ id: `${area}: ${current.name}`, script: current.lines.join("\n").trim() });
    };
    for (const line of readFileSync(join(DIR, file), "utf8").split("\n")) {
      if (line.startsWith("## ")) {
        flush();
        current = { name: line.slice(3).trim(), lines: [] };
      } else current?.lines.push(line);
    }
    flush();
  }
  const ids = new Set<string>();
  for (const c of cases) {
    if (ids.has(c.id)) throw new Error(`differential corpus: two cases named ${c.id}`);
    ids.add(c.id);
  }
  return cases;
}
