/**
 * The OCI bundle of a sandbox: the runtime config (`config.json`: mounts, the
 * agent as the process, namespaces, cgroup limits, seccomp, masked paths)
 * built from the sandbox's template, workspace and limits, and written to a
 * directory. Pure configuration: running a runtime on it is oci-runtime.ts.
 */

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Limits } from "../../core/limits.ts";
import type { SandboxHostFiles } from "./host-identity.ts";
import type { IdRange } from "./id-ranges.ts";
import { ociSeccomp } from "./seccomp.ts";
import { AGENT_DIR, AGENT_PATH } from "./templates.ts";

/** What a bundle is built from. */
export interface OciBundleInput {
  /** The template's root filesystem (mounted read-only). */
  rootfs: string;
  /** Host path of the mounted workspace image. */
  workspace: string;
  /** Host path of the agent binary. */
  agent: string;
  /** The sandbox's limits. */
  limits: Pick<Limits, "memoryBytes" | "pids" | "cpuCount" | "diskBytes">;
  /**
   * For a runtime whose host processes are not the sandbox's processes
   * (gVisor: the Sentry's threads and the ptrace stubs count in the host pids
   * cgroup): the process limit is set as RLIMIT_NPROC inside, which the
   * runtime's kernel enforces, and the host pids cgroup gets `hostPids`.
   */
  pidsInside?: { hostPids: number };
  /** Syscalls whose rules are left out of the seccomp policy (a runtime that mishandles them). */
  seccompOmit?: string[];
  /** Cgroup path relative to each hierarchy's root (`/kiln/<id>`); omitted: no cgroup limits. */
  cgroupsPath?: string;
  /** The network namespace to join (a path), instead of a new, empty one. */
  netnsPath?: string | undefined;
  /** A resolv.conf to bind at /etc/resolv.conf (a sandbox with egress: Kiln answers its DNS). */
  resolvConf?: string | undefined;
  /** The container's hostname (`host-identity.ts`); default `kiln` (the runtime's trial container). */
  hostname?: string;
  /** Its own /etc/hostname and /etc/hosts, bound over the template's. */
  hostFiles?: SandboxHostFiles;
  /** Volumes: host directories bound nosuid, nodev at paths below /mnt. */
  volumes?: { hostPath: string; path: string }[] | undefined;
  /**
   * The user namespace the container joins (a path), whose ids 0..count are host ids
   * base..base+count: the sandbox's root is never host root. Absent: no user namespace.
   */
  userns?: { path: string; range: IdRange } | undefined;
  /**
   * A new user namespace whose only id, 0, is the host ids `uid` and `gid`: the runtime run by
   * that ordinary user (gVisor's runsc, no `--rootless`). Absent: no user namespace of its own.
   */
  selfMap?: { uid: number; gid: number } | undefined;
  /**
   * A host directory holding only the agent, bound read-only at /.kiln, instead of a tmpfs there
   * with the agent bound into it: a runtime run by an ordinary user cannot make that mount point.
   */
  agentDir?: string | undefined;
}

/** An OCI mount entry. */
export interface OciMount {
  destination: string;
  type: string;
  source: string;
  options?: string[];
}

/** The parts of an OCI runtime config that Kiln sets. */
export interface OciConfig {
  ociVersion: string;
  root: { path: string; readonly: boolean };
  process: {
    terminal: boolean;
    user: { uid: number; gid: number; additionalGids?: number[] };
    args: string[];
    env: string[];
    cwd: string;
    capabilities: Record<"bounding" | "effective" | "inheritable" | "permitted" | "ambient", string[]>;
    rlimits: { type: string; hard: number; soft: number }[];
    noNewPrivileges: boolean;
    oomScoreAdj?: number;
  };
  hostname: string;
  mounts: OciMount[];
  linux: {
    namespaces: { type: string; path?: string }[];
    uidMappings?: { containerID: number; hostID: number; size: number }[];
    gidMappings?: { containerID: number; hostID: number; size: number }[];
    resources: Record<string, unknown>;
    cgroupsPath?: string;
    seccomp: Record<string, unknown>;
    maskedPaths: string[];
    readonlyPaths: string[];
  };
}

/** The PATH every sandbox process starts with. */
export const SANDBOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** Open-files limit of sandbox processes (soft and hard), at most the host's own hard limit. */
export const NOFILE_LIMIT = 4096;

/** This process's hard RLIMIT_NOFILE: a runtime without CAP_SYS_RESOURCE cannot set more. */
function hostNofileHard(): number {
  try {
    const line = readFileSync("/proc/self/limits", "utf8")
      .split("\n")
      .find((l) => l.startsWith("Max open files"));
    const hard = line?.trim().split(/\s+/)[4];
    return hard && /^\d+$/.test(hard) ? Number(hard) : Number.POSITIVE_INFINITY;
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

/** Paths Docker hides (an empty file or directory is mounted over them). */
export const MASKED_PATHS: readonly string[] = Object.freeze([
  "/proc/asound",
  "/proc/acpi",
  "/proc/kcore",
  "/proc/keys",
  "/proc/latency_stats",
  "/proc/timer_list",
  "/proc/timer_stats",
  "/proc/sched_debug",
  "/proc/scsi",
  "/sys/firmware",
  "/sys/devices/virtual/powercap",
]);

/** Paths Docker makes read-only. */
export const READONLY_PATHS: readonly string[] = Object.freeze([
  "/proc/bus",
  "/proc/fs",
  "/proc/irq",
  "/proc/sys",
  "/proc/sysrq-trigger",
]);

const MIB = 1024 * 1024;
const CPU_PERIOD_US = 100_000;

/** Kiln's seccomp policy without the rules for `omit`. */
function seccompPolicy(omit: string[]): Record<string, unknown> {
  const policy = ociSeccomp();
  if (omit.length === 0) return policy;
  const rules = (policy.syscalls as { names: string[] }[])
    .map((r) => ({ ...r, names: r.names.filter((n) => !omit.includes(n)) }))
    .filter((r) => r.names.length > 0);
  return { ...policy, syscalls: rules };
}

/** Where the agent comes from: its own directory (`agentDir`), or a tmpfs with the agent bound into it. */
function agentMounts(i: OciBundleInput): OciMount[] {
  if (i.agentDir)
    return [
      {
        destination: AGENT_DIR,
        type: "bind",
        source: i.agentDir,
        options: ["bind", "ro", "nosuid", "nodev"],
      },
    ];
  // The template is read-only: a small tmpfs gives the agent binary a place to be bound.
  // Order matters: the tmpfs first, then the bind into it. Both runtimes create the
  // bind's mount point before the tmpfs turns read-only.
  return [
    {
      destination: AGENT_DIR,
      type: "tmpfs",
      source: "tmpfs",
      options: ["ro", "nosuid", "nodev", "noexec", "mode=755", "size=1m"],
    },
    { destination: AGENT_PATH, type: "bind", source: i.agent, options: ["bind", "ro", "nosuid", "nodev"] },
  ];
}

/** The user namespace and id maps of a bundle: joined by path (`userns`), a new one (`selfMap`), or none. */
function userNamespace(i: OciBundleInput): Pick<OciConfig["linux"], "uidMappings" | "gidMappings"> & {
  namespaces: { type: string; path?: string }[];
} {
  if (i.userns)
    return {
      namespaces: [{ type: "user", path: i.userns.path }],
      uidMappings: [{ containerID: 0, hostID: i.userns.range.base, size: i.userns.range.count }],
      gidMappings: [{ containerID: 0, hostID: i.userns.range.base, size: i.userns.range.count }],
    };
  if (i.selfMap)
    return {
      namespaces: [{ type: "user" }],
      uidMappings: [{ containerID: 0, hostID: i.selfMap.uid, size: 1 }],
      gidMappings: [{ containerID: 0, hostID: i.selfMap.gid, size: 1 }],
    };
  return { namespaces: [] };
}

/** The runtime config of one sandbox. */
export function ociConfig(i: OciBundleInput): OciConfig {
  const tmpBytes = Math.max(MIB, Math.min(i.limits.memoryBytes, i.limits.diskBytes));
  const mounts: OciMount[] = [
    { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
    {
      destination: "/dev",
      type: "tmpfs",
      source: "tmpfs",
      options: ["nosuid", "strictatime", "mode=755", "size=65536k"],
    },
    {
      destination: "/dev/pts",
      type: "devpts",
      source: "devpts",
      options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
    },
    {
      destination: "/dev/shm",
      type: "tmpfs",
      source: "shm",
      options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
    },
    { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
    { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
    {
      destination: "/tmp",
      type: "tmpfs",
      source: "tmpfs",
      options: ["nosuid", "nodev", "mode=1777", `size=${tmpBytes}`],
    },
    {
      destination: "/workspace",
      type: "bind",
      source: i.workspace,
      options: ["rbind", "rw", "nosuid", "nodev"],
    },
    ...agentMounts(i),
    // Volumes: a read-only tmpfs at /mnt (the template stays untouched), each volume bound into it.
    ...(i.volumes && i.volumes.length > 0
      ? [
          {
            destination: "/mnt",
            type: "tmpfs",
            source: "tmpfs",
            options: ["ro", "nosuid", "nodev", "noexec", "mode=755", "size=64k"],
          },
          ...i.volumes.map((v) => ({
            destination: v.path,
            type: "bind",
            source: v.hostPath,
            options: ["rbind", "rw", "nosuid", "nodev"],
          })),
        ]
      : []),
    ...(i.resolvConf
      ? [
          {
            destination: "/etc/resolv.conf",
            type: "bind",
            source: i.resolvConf,
            options: ["bind", "ro", "nosuid", "nodev"],
          },
        ]
      : []),
    ...(i.hostFiles
      ? (["hostname", "hosts"] as const).map((f) => ({
          destination: `/etc/${f}`,
          type: "bind",
          source: i.hostFiles![f],
          options: ["bind", "ro", "nosuid", "nodev"],
        }))
      : []),
  ];
  const cap: string[] = [];
  const { namespaces: userns, ...idMaps } = userNamespace(i);
  const nofile = Math.min(NOFILE_LIMIT, hostNofileHard());
  return {
    ociVersion: "1.0.2",
    root: { path: i.rootfs, readonly: true },
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: [AGENT_PATH],
      env: [`PATH=${SANDBOX_PATH}`],
      cwd: "/workspace",
      capabilities: { bounding: cap, effective: cap, inheritable: cap, permitted: cap, ambient: cap },
      rlimits: [
        { type: "RLIMIT_NOFILE", hard: nofile, soft: nofile },
        ...(i.pidsInside ? [{ type: "RLIMIT_NPROC", hard: i.limits.pids, soft: i.limits.pids }] : []),
      ],
      noNewPrivileges: true,
    },
    hostname: i.hostname ?? "kiln",
    mounts,
    linux: {
      // No `path` on any namespace: each one is new. A new network namespace has only `lo`.
      namespaces: [
        { type: "pid" },
        { type: "ipc" },
        { type: "uts" },
        { type: "mount" },
        i.netnsPath ? { type: "network", path: i.netnsPath } : { type: "network" },
        { type: "cgroup" },
        ...userns,
      ],
      ...idMaps,
      resources: {
        devices: [{ allow: false, access: "rwm" }],
        memory: { limit: i.limits.memoryBytes, swap: i.limits.memoryBytes },
        pids: { limit: i.pidsInside?.hostPids ?? i.limits.pids },
        cpu: { quota: Math.round(i.limits.cpuCount * CPU_PERIOD_US), period: CPU_PERIOD_US },
      },
      ...(i.cgroupsPath ? { cgroupsPath: i.cgroupsPath } : {}),
      seccomp: seccompPolicy(i.seccompOmit ?? []),
      maskedPaths: [...MASKED_PATHS],
      readonlyPaths: [...READONLY_PATHS],
    },
  };
}

/**
 * Writes the bundle (a directory holding `config.json`) and returns its path.
 * The root filesystem is referenced by absolute path, not copied.
 */
export function writeOciBundle(dir: string, i: OciBundleInput): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, "config.json"), `${JSON.stringify(ociConfig(i), null, 2)}\n`, { mode: 0o600 });
  return dir;
}
