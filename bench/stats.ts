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
export async function timeInterleaved<A>(
  n: number,
  a: () => Promise<A>,
  b: () => Promise<unknown>,
  warmup = 3,
  /** Run after each `a`, untimed, with what it returned (e.g. kill the sandbox it made). */
  afterA?: (x: A) => Promise<unknown>,
): Promise<[number[], number[]]> {
  for (let i = 0; i < warmup; i++) {
    const x = await a();
    await afterA?.(x);
    await b();
  }
  const ta: number[] = [];
  const tb: number[] = [];
  for (let i = 0; i < n; i++) {
    let t = performance.now();
    const x = await a();
    ta.push(performance.now() - t);
    await afterA?.(x);
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

/**
 * Kiln / raw of separate measurements (each a pair of medians): the run
 * whose ratio is the median, and the spread, as `1.10-1.31x over 3 runs`.
 */
export function ratioSpread(pairs: [number, number][]): { kiln: number; raw: number; text: string } {
  const sorted = [...pairs].sort((x, y) => x[0] / x[1] - y[0] / y[1]);
  const [kiln, raw] = sorted[sorted.length >> 1]!;
  const lo = sorted[0]!;
  const hi = sorted.at(-1)!;
  return {
    kiln,
    raw,
    text: `${(lo[0] / lo[1]).toFixed(2)}-${(hi[0] / hi[1]).toFixed(2)}x over ${pairs.length} runs`,
  };
}
