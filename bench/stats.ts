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
