/**
 * The limits a microvm guest's own kernel enforces, read through the agent:
 * memory is the guest's RAM (its OOM killer counts kills in /proc/vmstat),
 * processes are held by the cgroup the guest's init made (`kiln`, its
 * pids.events counts refused forks), and disk is the workspace filesystem.
 */
import type { AgentClient } from "../../protocol/agent-client.ts";
import type { GuestCounters, GuestLimitReader } from "../common/agent-instance.ts";

async function readText(agent: AgentClient, path: string): Promise<string> {
  const chunks: Uint8Array[] = [];
  for await (const c of await agent.read(path)) chunks.push(c);
  return Buffer.concat(chunks).toString("utf8");
}

/** The value of `key` in a `key value` per line file, or 0. */
export function field(text: string, key: string): number {
  const m = new RegExp(`^${key} (\\d+)$`, "m").exec(text);
  return m ? Number(m[1]) : 0;
}

/** Reads a microvm guest's limit counters. */
export const GUEST_LIMITS: GuestLimitReader = {
  async counters(agent: AgentClient): Promise<GuestCounters> {
    const [vmstat, pids] = await Promise.all([
      readText(agent, "/proc/vmstat"),
      readText(agent, "/sys/fs/cgroup/kiln/pids.events"),
    ]);
    return { oomKills: field(vmstat, "oom_kill"), pidsMax: field(pids, "max") };
  },

  async workspaceSpace(agent: AgentClient): Promise<{ usedBytes: number; freeBytes: number } | undefined> {
    let out = "";
    const proc = await agent.spawn({
      command: "exec stat -f -c '%b %f %a %S' /workspace",
      cwd: "/",
      env: { PATH: "/usr/bin:/bin" },
      stdin: undefined,
      onStdout: (c) => {
        out += Buffer.from(c).toString("utf8");
      },
      onStderr: () => {},
    });
    const s = await proc.exited;
    const [blocks, free, avail, size] = out.trim().split(" ").map(Number);
    if (s.exitCode !== 0 || ![blocks, free, avail, size].every((n) => Number.isFinite(n))) return undefined;
    return { usedBytes: (blocks! - free!) * size!, freeBytes: avail! * size! };
  },
};
