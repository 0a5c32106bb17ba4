/**
 * Per-sandbox cgroups for memory, pids and CPU, on cgroup v1 (one hierarchy
 * per controller) or v2 (one unified hierarchy). Every sandbox of a real tier
 * gets `<parent>/<id>` in each controller; its limits hold for the whole
 * process tree, and `destroy` kills whatever is left in it. The parent is
 * `kiln` when Kiln runs as root; as an ordinary user it is the subtree an
 * administrator delegated to that user once (`kiln-user-<uid>`, owned by the
 * user: `scripts/delegate-cgroups.sh`), and without one there is no cgroup.
 */
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  readFileSync,
  realpathSync,
  rmdirSync,
  writeFileSync,
} from "node:fs";
import { userInfo } from "node:os";
import { join } from "node:path";
import type { Limits } from "../../core/limits.ts";

const ROOT = "/sys/fs/cgroup";
const V1_CONTROLLERS = ["memory", "pids", "cpu"] as const;

/**
 * `cpuacct` on v1 when it is a hierarchy of its own (mounted apart from
 * `cpu`, as here); undefined when it is absent or co-mounted with `cpu`
 * (`cpu,cpuacct`, where `cpu`'s directory already has `cpuacct.usage`).
 */
function separateCpuacct(): string | undefined {
  const acct = join(ROOT, "cpuacct");
  try {
    if (!existsSync(join(acct, "cgroup.procs"))) return undefined;
    return realpathSync(acct) === realpathSync(join(ROOT, "cpu")) ? undefined : acct;
  } catch {
    return undefined;
  }
}

/** Which cgroup layout the host has, or why none is usable. */
export function cgroupMode(): { mode: "v1" | "v2" } | { mode: "none"; reason: string } {
  if (existsSync(join(ROOT, "cgroup.controllers"))) return { mode: "v2" };
  const missing = V1_CONTROLLERS.filter((c) => !existsSync(join(ROOT, c, "cgroup.procs")));
  if (missing.length === 0) return { mode: "v1" };
  return { mode: "none", reason: `no cgroup controllers mounted for: ${missing.join(", ")}` };
}

/** The subtree an administrator delegates to the ordinary user `uid`, in each hierarchy. */
export function delegatedName(uid: number): string {
  return `kiln-user-${uid}`;
}

function writable(path: string): boolean {
  try {
    accessSync(path, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** The hierarchies' directories of `rel` (one per controller on v1, with `cpuacct` when apart). */
function hierarchyDirs(mode: "v1" | "v2", rel: string): string[] {
  if (mode === "v2") return [join(ROOT, rel)];
  const acct = separateCpuacct();
  return [...V1_CONTROLLERS.map((c) => join(ROOT, c, rel)), ...(acct ? [join(acct, rel)] : [])];
}

/**
 * Where sandbox cgroups go, relative to each hierarchy's root: `/kiln` as root; as an ordinary
 * user, its delegated subtree, or why it has none (then no memory, pids or CPU limit can hold).
 */
export function cgroupParent(): { path: string } | { path: undefined; reason: string } {
  const m = cgroupMode();
  if (m.mode === "none") return { path: undefined, reason: m.reason };
  const uid = process.getuid?.() ?? 0;
  if (uid === 0) return { path: "/kiln" };
  const rel = `/${delegatedName(uid)}`;
  const user = `${userInfo().username} (uid ${uid})`;
  const setup = `an administrator runs scripts/delegate-cgroups.sh ${userInfo().username} once`;
  const missing = hierarchyDirs(m.mode, rel).filter(
    (d) => !writable(d) || !writable(join(d, "cgroup.procs")),
  );
  if (missing.length > 0)
    return {
      path: undefined,
      reason: `no cgroup delegated to ${user} on cgroup ${m.mode} (${missing.join(", ")} missing or not the user's): ${setup}`,
    };
  if (m.mode === "v2") {
    // v2 moves a process only between cgroups below one the mover may write: Kiln must run inside.
    const own = /^0::(.*)$/m.exec(readFileSync("/proc/self/cgroup", "utf8"))?.[1] ?? "";
    if (!own.startsWith(`${rel}/`))
      return {
        path: undefined,
        reason: `cgroup v2 lets ${user} move processes only within a subtree it runs in; Kiln runs in ${own}, not below ${rel}`,
      };
  }
  return { path: rel };
}

function write(path: string, value: string | number): void {
  writeFileSync(path, String(value));
}

function readNumber(path: string): number | undefined {
  try {
    return Number(readFileSync(path, "utf8").trim().split(/\s+/)[0]);
  } catch {
    return undefined;
  }
}

/** The cgroup of one sandbox. */
export class SandboxCgroup {
  /** Path relative to each hierarchy's root, e.g. `/kiln/sb_...`. */
  readonly relPath: string;
  private readonly mode: "v1" | "v2";

  /** @throws Error when there is no cgroup parent for this process ({@link cgroupParent}) */
  constructor(id: string) {
    const m = cgroupMode();
    if (m.mode === "none") throw new Error(m.reason);
    const parent = cgroupParent();
    if (parent.path === undefined) throw new Error(parent.reason);
    this.mode = m.mode;
    this.relPath = `${parent.path}/${id}`;
  }

  /** Directories of this cgroup (one per controller on v1). */
  dirs(): string[] {
    return hierarchyDirs(this.mode, this.relPath);
  }

  private dir(controller: (typeof V1_CONTROLLERS)[number]): string {
    return this.mode === "v2" ? join(ROOT, this.relPath) : join(ROOT, controller, this.relPath);
  }

  /** Creates the cgroup and sets the limits. */
  create(limits: Limits): void {
    if (this.mode === "v2") {
      const parent = join(ROOT, this.relPath, "..");
      mkdirSync(parent, { recursive: true });
      for (const d of [ROOT, parent]) {
        try {
          write(join(d, "cgroup.subtree_control"), "+memory +pids +cpu");
        } catch {
          // Already enabled, or delegated by the service manager (or the administrator).
        }
      }
    }
    for (const d of this.dirs()) mkdirSync(d, { recursive: true });
    const quotaUs = Math.round(limits.cpuCount * 100_000);
    if (this.mode === "v1") {
      write(join(this.dir("memory"), "memory.limit_in_bytes"), limits.memoryBytes);
      // Without swap accounting this file is absent; then swap is simply not counted.
      const memsw = join(this.dir("memory"), "memory.memsw.limit_in_bytes");
      if (existsSync(memsw)) write(memsw, limits.memoryBytes);
      write(join(this.dir("pids"), "pids.max"), limits.pids);
      write(join(this.dir("cpu"), "cpu.cfs_period_us"), 100_000);
      write(join(this.dir("cpu"), "cpu.cfs_quota_us"), quotaUs);
    } else {
      const d = this.dir("memory");
      write(join(d, "memory.max"), limits.memoryBytes);
      if (existsSync(join(d, "memory.swap.max"))) write(join(d, "memory.swap.max"), 0);
      write(join(d, "pids.max"), limits.pids);
      write(join(d, "cpu.max"), `${quotaUs} 100000`);
    }
  }

  /** Moves process `pid` into the cgroup. */
  add(pid: number): void {
    for (const d of this.dirs()) write(join(d, "cgroup.procs"), pid);
  }

  /** A shell snippet that moves the running shell into the cgroup (for `sh -c '...; exec runtime'`). */
  joinScript(): string {
    return this.dirs()
      .map((d) => `echo $$ > '${join(d, "cgroup.procs")}'`)
      .join(" && ");
  }

  /**
   * Memory in use, bytes: the cgroup's charge less its inactive file cache
   * (what `docker stats` shows), so pages read once and reclaimable first do
   * not count as the sandbox's memory.
   */
  memoryBytes(): number | undefined {
    const d = this.dir("memory");
    const usage = readNumber(join(d, this.mode === "v1" ? "memory.usage_in_bytes" : "memory.current"));
    if (usage === undefined) return undefined;
    let inactive = 0;
    try {
      const stat = readFileSync(join(d, "memory.stat"), "utf8");
      const key = this.mode === "v1" ? "total_inactive_file" : "inactive_file";
      inactive = Number(new RegExp(`^${key} (\\d+)$`, "m").exec(stat)?.[1] ?? 0);
    } catch {
      // no memory.stat: the whole charge
    }
    return Math.max(0, usage - inactive);
  }

  /**
   * CPU time used by every process the cgroup has held, ms: v1 `cpuacct.usage`
   * (in its own hierarchy when mounted apart from `cpu`), v2 `cpu.stat` `usage_usec`.
   */
  cpuMs(): number | undefined {
    if (this.mode === "v2") {
      try {
        const stat = readFileSync(join(ROOT, this.relPath, "cpu.stat"), "utf8");
        const us = /^usage_usec (\d+)$/m.exec(stat)?.[1];
        return us === undefined ? undefined : Number(us) / 1000;
      } catch {
        return undefined;
      }
    }
    const acct = separateCpuacct();
    const ns = readNumber(join(acct ?? join(ROOT, "cpu"), this.relPath, "cpuacct.usage"));
    return ns === undefined || Number.isNaN(ns) ? undefined : ns / 1e6;
  }

  /** How many processes the memory limit has killed (OOM) since the cgroup was made. */
  oomKills(): number {
    const file = this.mode === "v1" ? "memory.oom_control" : "memory.events";
    try {
      const txt = readFileSync(join(this.dir("memory"), file), "utf8");
      return Number(/oom_kill (\d+)/.exec(txt)?.[1] ?? 0);
    } catch {
      return 0;
    }
  }

  /** How many times memory use has hit the limit (v1 `memory.failcnt`, v2 `max` events). */
  memoryLimitHits(): number {
    if (this.mode === "v1") return readNumber(join(this.dir("memory"), "memory.failcnt")) ?? 0;
    try {
      const ev = readFileSync(join(this.dir("memory"), "memory.events"), "utf8");
      return Number(/^max (\d+)/m.exec(ev)?.[1] ?? 0);
    } catch {
      return 0;
    }
  }

  /** Number of processes in the cgroup. */
  pidCount(): number {
    return readNumber(join(this.dir("pids"), this.mode === "v1" ? "pids.current" : "pids.current")) ?? 0;
  }

  /** Kills every process in the cgroup and removes it. Idempotent. */
  destroy(): void {
    for (let attempt = 0; attempt < 50; attempt++) {
      let alive = 0;
      for (const d of this.dirs()) {
        let procs: string[] = [];
        try {
          procs = readFileSync(join(d, "cgroup.procs"), "utf8").split("\n").filter(Boolean);
        } catch {
          continue;
        }
        for (const p of procs) {
          alive++;
          try {
            process.kill(Number(p), "SIGKILL");
          } catch {
            // Already gone.
          }
        }
      }
      if (alive === 0) break;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
    // A cgroup whose last process has just exited can stay busy for a moment: retry briefly.
    for (const d of this.dirs()) {
      for (let attempt = 0; attempt < 100 && existsSync(d); attempt++) {
        try {
          rmdirSync(d);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== "EBUSY") break;
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
        }
      }
    }
  }
}
