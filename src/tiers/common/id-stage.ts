/**
 * The agent binary's id-mapping launchers (agent/src/idmap.rs), as command
 * lines: a user namespace mapping a sandbox's ids 0..count to its host range
 * (id-ranges.ts), a private mount namespace, and each host path the sandbox
 * binds (template, workspace, agent, files, volumes) mounted idmapped through
 * that namespace at {@link IDMAP_STAGE}/<n>, so that files stored as uid 0
 * are uid 0 inside and images need no chown.
 *
 * - `enter` (`--idmap-exec`): the program runs as root of that user namespace
 *   (bubblewrap, which makes the sandbox's other namespaces under it);
 * - `stay` (`--idmap-stage`): the program runs as host root, the user
 *   namespace bound at {@link IDMAP_USERNS} (an OCI runtime, which joins it
 *   for the container by path and keeps host root for cgroups).
 */
import type { IdRange } from "./id-ranges.ts";

/** Where the sources are mounted, in the launcher's private mount namespace. */
export const IDMAP_STAGE = "/run/kiln-stage";
/** Where `stay` binds the sandbox's user namespace. */
export const IDMAP_USERNS = `${IDMAP_STAGE}/user`;

/** Collects host paths to stage: `stage(p)` returns where `p` will be, in order. */
export class IdStage {
  readonly sources: string[] = [];

  stage = (hostPath: string): string => `${IDMAP_STAGE}/${this.sources.push(hostPath) - 1}`;

  /**
   * The command line that runs `command` with the sources staged (see the module comment);
   * `devices`: host character devices the program opens by path that the host keeps to host root,
   * each replaced, for the program only, by a node of its own owned by the range's root.
   */
  command(
    agent: string,
    range: IdRange,
    mode: "enter" | "stay",
    command: readonly string[],
    devices: readonly string[] = [],
  ): string[] {
    return [
      agent,
      mode === "enter" ? "--idmap-exec" : "--idmap-stage",
      ...devices.flatMap((d) => ["--device", d]),
      String(range.base),
      String(range.count),
      IDMAP_STAGE,
      ...this.sources,
      "--",
      ...command,
    ];
  }
}

/** The host paths a sandbox's runtime binds: what {@link stagedInput} replaces. */
export interface BoundPaths {
  rootfs: string;
  workspace: string;
  agent: string;
  resolvConf?: string | undefined;
  hostFiles?: { hostname: string; hosts: string } | undefined;
  volumes?: { hostPath: string; path: string }[] | undefined;
}

/**
 * The same input with every host path it binds (template, workspace, agent, files, volumes)
 * replaced by where the id-mapping launcher mounts it, idmapped, staged in that order.
 */
export function stagedInput<T extends BoundPaths>(i: T, s: IdStage): T {
  return {
    ...i,
    rootfs: s.stage(i.rootfs),
    workspace: s.stage(i.workspace),
    agent: s.stage(i.agent),
    ...(i.resolvConf ? { resolvConf: s.stage(i.resolvConf) } : {}),
    ...(i.hostFiles
      ? { hostFiles: { hostname: s.stage(i.hostFiles.hostname), hosts: s.stage(i.hostFiles.hosts) } }
      : {}),
    ...(i.volumes ? { volumes: i.volumes.map((v) => ({ ...v, hostPath: s.stage(v.hostPath) })) } : {}),
  };
}
