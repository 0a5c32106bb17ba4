/** Small statistics and table helpers for the benchmarks. */

/** The q-quantile (0..1) of `xs`. */
export function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1));
  return s[i]!;
}

/** Times `fn` `n` times after `warmup` untimed runs; returns the durations in ms. */
export async function timeIt(n: number, fn: (i: number) => Promise<unknown>, warmup = 3): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn(-1 - i);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn(i);
    out.push(performance.now() - t);
  }
  return out;
}

/**
 * Times `a` and `b` `n` times each, alternating (a, b, a, b, ...) after
 * `warmup` untimed rounds, so that both see the same machine: on a small,
 * noisy machine, timing one block after the other lets drift (GC, JIT,
 * neighbours) land on one side. Returns both lists of durations in ms.
 */
export async function timeInterleaved(
  n: number,
  a: () => Promise<unknown>,
  b: () => Promise<unknown>,
  warmup = 3,
): Promise<[number[], number[]]> {
  for (let i = 0; i < warmup; i++) {
    await a();
    await b();
  }
  const ta: number[] = [];
  const tb: number[] = [];
  for (let i = 0; i < n; i++) {
    let t = performance.now();
    await a();
    ta.push(performance.now() - t);
    t = performance.now();
    await b();
    tb.push(performance.now() - t);
  }
  return [ta, tb];
}

/** One row of a comparison table. */
export interface Row {
  metric: string;
  kiln: number;
  raw: number;
  unit: string;
  /** What the raw column measured. */
  rawLabel: string;
  note?: string;
}

const fmt = (x: number) =>
  Number.isNaN(x) ? "n/a" : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);

/** A ratio as `1.23x`, or for a large speed-up `0.0039x (258x faster)`. */
function ratio(x: number): string {
  return x >= 0.1 ? `${x.toFixed(2)}x` : `${x.toPrecision(2)}x (${Math.round(1 / x)}x faster)`;
}

/** Renders rows as a markdown table with the ratio Kiln / raw. */
export function markdownTable(title: string, rows: Row[]): string {
  const lines = [
    `### ${title}`,
    "",
    "| metric | Kiln | raw tool | raw measures | Kiln / raw |",
    "|---|---|---|---|---|",
    ...rows.map(
      (r) =>
        `| ${r.metric} | ${fmt(r.kiln)} ${r.unit} | ${fmt(r.raw)} ${r.unit} | ${r.rawLabel} | ${
          Number.isNaN(r.raw) || Number.isNaN(r.kiln) ? "n/a" : ratio(r.kiln / r.raw)
        }${r.note ? ` (${r.note})` : ""} |`,
    ),
  ];
  return lines.join("\n");
}
