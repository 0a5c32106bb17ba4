/**
 * A V8 CPU profile of this process while `fn` runs (node:inspector), summarised
 * as text by bench/profile-summary.ts. With KILN_BENCH_PROFILE_DIR set, the raw
 * profile is also written there as `<name>.cpuprofile`.
 */
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { join } from "node:path";
import { type Profile, summarise } from "./profile-summary.ts";

/** Runs `fn` under the profiler; returns what it returned, the profile and its summary. */
export async function profiled<T>(
  name: string,
  fn: () => Promise<T>,
): Promise<{ value: T; summary: string; profile: Profile }> {
  const inspector = new Session();
  inspector.connect();
  try {
    await inspector.post("Profiler.enable");
    // 1 ms between samples, V8's default: fine enough for steps of a few ms.
    await inspector.post("Profiler.setSamplingInterval", { interval: 1000 });
    await inspector.post("Profiler.start");
    const value = await fn();
    const { profile } = await inspector.post("Profiler.stop");
    const dir = process.env.KILN_BENCH_PROFILE_DIR;
    if (dir) writeFileSync(join(dir, `${name}.cpuprofile`), JSON.stringify(profile));
    const p = profile as unknown as Profile;
    return { value, summary: summarise(p, 30), profile: p };
  } finally {
    inspector.disconnect();
  }
}
