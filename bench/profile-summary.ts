/**
 * A V8 CPU profile (`node --cpu-prof`) summarised as text: the functions
 * with the most self time, the files and packages they live in, and the
 * functions with the most total (self + callees) time.
 *
 *   node bench/profile-summary.ts FILE.cpuprofile [--top 25]
 */
import { readFileSync } from "node:fs";

/** One node of a profile's call tree: a function at a call site, with its callees. */
export interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
  hitCount?: number;
}

/** A V8 CPU profile, as `Profiler.stop` returns it. */
export interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** Where a frame lives: `pkg:name` for node_modules, the project path otherwise. */
export function where(url: string): string {
  if (!url) return "(native)";
  const nm = url.lastIndexOf("node_modules/");
  if (nm >= 0) {
    const rest = url.slice(nm + "node_modules/".length).split("/");
    return `pkg:${rest[0]!.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  if (url.startsWith("node:")) return url;
  const m = /\/(src|bench|agent)\/(.*)$/.exec(url);
  return m ? `${m[1]}/${m[2]}` : url;
}

/** The summary as markdown-ish text. */
export function summarise(profile: Profile, top = 25): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // Self time per node from the sample stream (timeDeltas[i] is the time before sample i).
  const selfUs = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = profile.timeDeltas[i + 1] ?? 0;
    selfUs.set(profile.samples[i]!, (selfUs.get(profile.samples[i]!) ?? 0) + dt);
  }
  const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const key = (n: ProfileNode) =>
    `${n.callFrame.functionName || "(anonymous)"} ${where(n.callFrame.url)}${n.callFrame.url ? `:${n.callFrame.lineNumber + 1}` : ""}`;
  const self = new Map<string, number>();
  const files = new Map<string, number>();
  const inclusive = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!;
    self.set(key(n), (self.get(key(n)) ?? 0) + us);
    const w = where(n.callFrame.url);
    files.set(w, (files.get(w) ?? 0) + us);
    // Each distinct function on the stack gets the sample once (recursion counted once).
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const k = key(byId.get(cur)!);
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + us);
    }
  }
  const pct = (us: number) => `${((100 * us) / total).toFixed(1).padStart(5)}%`;
  const ms = (us: number) => `${(us / 1000).toFixed(0).padStart(6)} ms`;
  const list = (m: Map<string, number>, n: number) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, us]) => `${pct(us)} ${ms(us)}  ${k}`);
  return [
    `profile: ${(total / 1000).toFixed(0)} ms sampled over ${((profile.endTime - profile.startTime) / 1000).toFixed(0)} ms wall`,
    "",
    "self time by function:",
    ...list(self, top),
    "",
    "self time by file / package:",
    ...list(files, top),
    "",
    "total time (self + callees) by function:",
    ...list(inclusive, top),
  ].join("\n");
}

if (import.meta.main) {
  const file = process.argv[2];
  if (!file) throw new Error("usage: node bench/profile-summary.ts FILE.cpuprofile [--top N]");
  const i = process.argv.indexOf("--top");
  const top = i >= 0 ? Number(process.argv[i + 1]) : 25;
  process.stdout.write(`${summarise(JSON.parse(readFileSync(file, "utf8")) as Profile, top)}\n`);
}
