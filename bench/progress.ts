/**
 * Progress on stderr while the bench runs (the report itself goes to stdout): a line when a
 * section starts, and an indented line for each step within it, with the time since the start.
 */
const started = performance.now();

function line(text: string): void {
  const s = ((performance.now() - started) / 1000).toFixed(0).padStart(4);
  process.stderr.write(`bench ${s}s: ${text}\n`);
}

/** A section starts. */
export function section(what: string): void {
  line(`${what}...`);
}

/** A step within the current section starts. */
export function step(what: string): void {
  line(`  ${what}`);
}
