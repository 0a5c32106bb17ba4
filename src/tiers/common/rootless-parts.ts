/**
 * A real tier run by an ordinary user (namespace, gvisor): what it starts from and which
 * limits hold. Unprivileged user namespaces give the sandbox its namespaces
 * (its root is the user's own uid on the host); the memory, pids and CPU
 * limits hold only in a cgroup subtree an administrator delegated to the user
 * (`cgroupParent`); the workspace is a plain directory (`WorkspaceDir`), since
 * only root can mount the image that holds the disk limit.
 */
import type { InstanceSpec } from "../../core/backend.ts";
import type { UnenforcedLimit } from "../../core/errors.ts";
import { cgroupParent, SandboxCgroup } from "./cgroups.ts";
import { sweepTemporary } from "./sandbox-parts.ts";
import { templateRootfs } from "./templates.ts";
import { WorkspaceDir } from "./workspace-dir.ts";

/** Why the disk limit cannot hold for an ordinary user. */
const NO_DISK_LIMIT =
  "the workspace is a plain directory: an ordinary user cannot mount the ext4 image whose size is the disk limit";

/** The limits an ordinary user's sandboxes lack here, each with its reason. */
export function rootlessUnenforced(): UnenforcedLimit[] {
  const parent = cgroupParent();
  const cgroupLimits = ["memoryBytes", "pids", "cpuCount"] as const;
  return [
    ...(parent.path === undefined ? cgroupLimits.map((limit) => ({ limit, reason: parent.reason })) : []),
    { limit: "diskBytes", reason: NO_DISK_LIMIT },
  ];
}

/** The sandbox's cgroup in the user's delegated subtree, or undefined when it has none. */
export function rootlessCgroup(id: string): SandboxCgroup | undefined {
  return cgroupParent().path === undefined ? undefined : new SandboxCgroup(id);
}

/**
 * Finds the template and makes (`fresh`: empty, or a copy of the workspace saved in the state
 * directory `from`) or finds the workspace directory, and clears the cgroup, if any.
 */
export async function rootlessParts(
  spec: InstanceSpec,
  fresh: boolean,
  signal?: AbortSignal,
  from?: string,
): Promise<{ rootfs: string; workspace: WorkspaceDir; cgroup: SandboxCgroup | undefined }> {
  const rootfs = await templateRootfs(spec.dataDir, spec.template, signal, spec.buildTemplate);
  const workspace = new WorkspaceDir(spec.stateDir);
  if (from !== undefined) await workspace.createFrom(WorkspaceDir.saved(from));
  else if (fresh) await workspace.create();
  const cgroup = rootlessCgroup(spec.id);
  cgroup?.destroy();
  return { rootfs, workspace, cgroup };
}

/** After the Kiln process that ran the sandbox died: empties its cgroup and sweeps unfinished writes. */
export async function rootlessRelease(spec: InstanceSpec): Promise<void> {
  rootlessCgroup(spec.id)?.destroy();
  await sweepTemporary(new WorkspaceDir(spec.stateDir).mountPath);
}

/** Removes the sandbox's cgroup and workspace. */
export async function rootlessDestroy(spec: InstanceSpec): Promise<void> {
  rootlessCgroup(spec.id)?.destroy();
  await new WorkspaceDir(spec.stateDir).destroy();
}
