/**
 * A small live chart of one sandbox's resource use: CPU (percent of one
 * core, from the change of `cpuMs` between two samples) and memory (percent
 * of its limit), over the last samples the event stream brought. A figure
 * the tier does not measure is not drawn (the virtual tier measures disk only).
 */
import { useEffect, useRef, useState } from "preact/hooks";
import type { Stats } from "./api.ts";

/** Samples kept (one every few seconds from the event stream). */
const KEEP = 40;
const W = 240;
const H = 48;

interface Point {
  atMs: number;
  /** Percent of one core since the previous sample. */
  cpuPct: number | undefined;
  /** Percent of the memory limit. */
  memPct: number | undefined;
}

function line(points: Point[], pick: (p: Point) => number | undefined, max: number): string {
  const n = Math.max(points.length - 1, 1);
  return points
    .map((p, i) => [i, pick(p)] as const)
    .filter(([, v]) => v !== undefined)
    .map(([i, v]) => `${((i / n) * W).toFixed(1)},${(H - (Math.min(v!, max) / max) * H).toFixed(1)}`)
    .join(" ");
}

export function UsageChart({
  stats,
  memoryLimitBytes,
}: {
  stats: Stats | undefined;
  memoryLimitBytes: number;
}) {
  const [points, setPoints] = useState<Point[]>([]);
  const prev = useRef<{ stats: Stats; atMs: number } | undefined>(undefined);
  useEffect(() => {
    if (!stats) return;
    const atMs = performance.now();
    const before = prev.current;
    const cpuPct =
      before && stats.cpuMs !== undefined && before.stats.cpuMs !== undefined && atMs > before.atMs
        ? Math.max(0, ((stats.cpuMs - before.stats.cpuMs) / (atMs - before.atMs)) * 100)
        : undefined;
    const memPct = stats.memoryBytes === undefined ? undefined : (stats.memoryBytes / memoryLimitBytes) * 100;
    prev.current = { stats, atMs };
    setPoints((old) => [...old, { atMs, cpuPct, memPct }].slice(-KEEP));
  }, [stats, memoryLimitBytes]);
  const last = points.at(-1);
  const measured = points.some((p) => p.cpuPct !== undefined || p.memPct !== undefined);
  const cpuMax = Math.max(100, ...points.map((p) => p.cpuPct ?? 0));
  return (
    <figure
      class="usage"
      data-testid="usage-chart"
      data-samples={points.length}
      data-cpu-pct={last?.cpuPct === undefined ? "" : last.cpuPct.toFixed(1)}
      data-mem-pct={last?.memPct === undefined ? "" : last.memPct.toFixed(1)}
    >
      {measured ? (
        <svg viewBox={`0 0 ${W} ${H}`} width={W} height={H} role="img" aria-label="CPU and memory over time">
          <polyline class="usage-cpu" fill="none" points={line(points, (p) => p.cpuPct, cpuMax)} />
          <polyline class="usage-mem" fill="none" points={line(points, (p) => p.memPct, 100)} />
        </svg>
      ) : (
        <p class="muted">This tier does not measure CPU or memory.</p>
      )}
      <figcaption>
        <span class="usage-cpu-key">
          CPU {last?.cpuPct === undefined ? "n/a" : `${last.cpuPct.toFixed(0)}%`}
        </span>{" "}
        <span class="usage-mem-key">
          memory {last?.memPct === undefined ? "n/a" : `${last.memPct.toFixed(0)}%`}
        </span>
      </figcaption>
    </figure>
  );
}
