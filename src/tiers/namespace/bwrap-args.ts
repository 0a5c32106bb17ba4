/**
 * The bubblewrap command line of a namespace sandbox: every namespace
 * unshared (so no network), all capabilities dropped, the seccomp filter on
 * fd 3, a new session, death with its parent, the template read-only at `/`,
 * the workspace image at `/workspace`, a private `/tmp`, and the agent.
 */
import type { SandboxHostFiles } from "../common/host-identity.ts";
import { AGENT_DIR, AGENT_PATH } from "../common/templates.ts";

/** What the command line is built from. */
export interface BwrapInput {
  rootfs: string;
  workspace: string;
  agent: string;
  /** Size of the private /tmp, bytes (it counts against the memory limit too). */
  tmpBytes: number;
  /** A resolv.conf to show at /etc/resolv.conf (a sandbox with egress: Kiln answers its DNS). */
  resolvConf?: string;
  /** The sandbox's hostname (`host-identity.ts`). */
  hostname: string;
  /** Its own /etc/hostname and /etc/hosts, bound over the template's. */
  hostFiles?: SandboxHostFiles;
  /** Volumes: host directories bound (bwrap adds nosuid and nodev to every bind) at paths below /mnt. */
  volumes?: { hostPath: string; path: string }[];
}

/** The file descriptor the seccomp program is passed on. */
export const SECCOMP_FD = 3;

/** Arguments for `bwrap`. */
export function bwrapArgs(i: BwrapInput): string[] {
  return [
    // Inside the sandbox's own user namespace too (`idmapExec`), bwrap makes one of its own: it
    // empties the capability bounding set only on that path.
    "--unshare-all",
    "--unshare-user",
    "--uid",
    "0",
    "--gid",
    "0",
    "--hostname",
    i.hostname,
    "--die-with-parent",
    "--new-session",
    // The agent is PID 1 (it reaps orphans); bwrap's own command line, with host paths, stays outside.
    "--as-pid-1",
    "--cap-drop",
    "ALL",
    "--ro-bind",
    i.rootfs,
    "/",
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    "--size",
    String(i.tmpBytes),
    "--tmpfs",
    "/tmp",
    "--bind",
    i.workspace,
    "/workspace",
    ...(i.resolvConf ? ["--ro-bind", i.resolvConf, "/etc/resolv.conf"] : []),
    ...(i.hostFiles
      ? ["--ro-bind", i.hostFiles.hostname, "/etc/hostname", "--ro-bind", i.hostFiles.hosts, "/etc/hosts"]
      : []),
    ...volumeArgs(i.volumes ?? []),
    // The template is read-only: a small tmpfs gives the agent binary a place to be bound.
    "--size",
    String(1024 * 1024),
    "--tmpfs",
    AGENT_DIR,
    "--ro-bind",
    i.agent,
    AGENT_PATH,
    "--remount-ro",
    AGENT_DIR,
    "--seccomp",
    String(SECCOMP_FD),
    "--chdir",
    "/workspace",
    "--clearenv",
    "--setenv",
    "PATH",
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    AGENT_PATH,
  ];
}

/**
 * A small tmpfs at /mnt (the template stays read-only and untouched), the volumes bound into it,
 * then the tmpfs itself made read-only (not recursively: the volumes stay writable).
 */
function volumeArgs(volumes: { hostPath: string; path: string }[]): string[] {
  if (volumes.length === 0) return [];
  return [
    "--size",
    String(64 * 1024),
    "--tmpfs",
    "/mnt",
    ...volumes.flatMap((v) => ["--bind", v.hostPath, v.path]),
    "--remount-ro",
    "/mnt",
  ];
}
