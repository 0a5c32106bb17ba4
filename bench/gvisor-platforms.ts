/**
 * gVisor's platforms side by side: one sandbox on each runsc build that runs here (systrap,
 * ptrace), in one process, measured alternately so that both see the same machine: a warm exec
 * through Kiln, a fork + exec inside the sandbox, and a plain syscall.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kiln, type Sandbox } from "../src/index.ts";
import { step } from "./progress.ts";
import { quantile } from "./stats.ts";

const PLATFORMS = ["systrap", "ptrace"] as const;
type Platform = (typeof PLATFORMS)[number];

/** A Kiln whose gvisor backend runs only `platform`'s build (the variable is read when the backend is made). */
async function openOn(platform: Platform, dataDir: string): Promise<Kiln> {
  const before = process.env.KILN_GVISOR_PLATFORM;
  process.env.KILN_GVISOR_PLATFORM = platform;
  try {
    const kiln = await Kiln.open({ dataDir });
    await kiln.backend("gvisor");
    return kiln;
  } finally {
    if (before === undefined) delete process.env.KILN_GVISOR_PLATFORM;
    else process.env.KILN_GVISOR_PLATFORM = before;
  }
}

async function timed(sb: Sandbox, cmd: string): Promise<number> {
  const t = performance.now();
  const r = await sb.commands.run(cmd);
  if (r.exitCode !== 0) throw new Error(`${cmd}: exit ${r.exitCode}: ${r.stderr}`);
  return performance.now() - t;
}

/** The comparison as a markdown table, or undefined (with a progress line) when one platform does not run here. */
export async function benchGvisorPlatforms(): Promise<string | undefined> {
  const dataDir = mkdtempSync(join(tmpdir(), "kiln-bench-platforms-"));
  const kilns: Kiln[] = [];
  try {
    const sandboxes = new Map<Platform, Sandbox>();
    const versions = new Map<Platform, string>();
    for (const platform of PLATFORMS) {
      const kiln = await openOn(platform, dataDir);
      kilns.push(kiln);
      const s = (await kiln.doctor()).find((x) => x.tier === "gvisor");
      if (!s?.available) {
        step(`gvisor on ${platform} does not run here: ${s?.reason}`);
        return undefined;
      }
      versions.set(platform, s.reason.split(",")[0]!.replace("runsc version ", ""));
      sandboxes.set(platform, await kiln.create({ tier: "gvisor" }));
    }
    const each = async (n: number, cmd: string, per = 1) => {
      const out = new Map<Platform, number[]>(PLATFORMS.map((p) => [p, []]));
      for (let i = 0; i < n; i++) {
        for (const p of PLATFORMS) out.get(p)!.push((await timed(sandboxes.get(p)!, cmd)) / per);
      }
      return out;
    };
    step("warm exec, alternating");
    await each(5, "echo hi");
    const warm = await each(60, "echo hi");
    step("fork + exec in the sandbox, alternating");
    const fork = await each(3, "for i in $(seq 100); do /bin/true; done", 100);
    step("plain syscalls, alternating");
    // `dd bs=1` of 20,000 bytes: a read and a write per byte, 40,000 syscalls.
    const sys = await each(3, "dd if=/dev/zero of=/dev/null bs=1 count=20000 2>/dev/null", 40);
    const cell = (m: Map<Platform, number[]>, p: Platform, unit: string) =>
      `${quantile(m.get(p)!, 0.5).toFixed(1)} ${unit}`;
    const row = (what: string, m: Map<Platform, number[]>, unit: string) =>
      `| ${what} | ${PLATFORMS.map((p) => cell(m, p, unit)).join(" | ")} | ${(
        quantile(m.get("systrap")!, 0.5) / quantile(m.get("ptrace")!, 0.5)
      ).toFixed(2)}x |`;
    const table = [
      "### gvisor: systrap beside ptrace, alternating in one process",
      "",
      `| p50 | systrap (${versions.get("systrap")}) | ptrace (${versions.get("ptrace")}) | systrap / ptrace |`,
      "|---|---|---|---|",
      row("warm exec (`echo hi`) through Kiln, 60 each", warm, "ms"),
      row("fork + exec of `/bin/true` in the sandbox, 3 × 100", fork, "ms"),
      row("one syscall (`dd bs=1`), 3 × 40,000", sys, "µs"),
    ].join("\n");
    for (const sb of sandboxes.values()) await sb.kill();
    return table;
  } finally {
    for (const k of kilns) await k.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
