/**
 * What every real-binary sandbox starts from, whatever its runtime: the
 * template's rootfs, the workspace image (taken from the warm pool when it is
 * new), and a clean cgroup path. Drivers add only their runtime.
 */
import type { InstanceSpec } from "../../core/backend.ts";
import { SandboxCgroup } from "./cgroups.ts";
import { templateRootfs } from "./templates.ts";
import { WorkspaceImage } from "./workspace-image.ts";
import { drainPool, poolFor, sweepStalePools } from "./workspace-pool.ts";

/** The parts of one sandbox. */
export interface SandboxParts {
  rootfs: string;
  workspace: WorkspaceImage;
  /** The sandbox's cgroup, emptied of anything a crashed run left (not yet created). */
  cgroup: SandboxCgroup;
}

/**
 * Unmounts and deletes a sandbox's workspace image; also sweeps the warm
 * workspace pools that killed processes left in its data directory.
 */
export async function destroyWorkspace(spec: InstanceSpec): Promise<void> {
  await new WorkspaceImage(spec.stateDir).destroy();
  await sweepStalePools(spec.dataDir);
}

/** The data directories a driver has used, so that it can drain their pools when it closes. */
export class PoolUsers {
  private readonly dataDirs = new Set<string>();

  /** Finds the template, makes (`fresh`) or finds the workspace, and clears the cgroup. */
  async parts(spec: InstanceSpec, fresh: boolean, signal?: AbortSignal): Promise<SandboxParts> {
    const rootfs = await templateRootfs(spec.dataDir, spec.template, signal);
    const workspace = new WorkspaceImage(spec.stateDir);
    this.dataDirs.add(spec.dataDir);
    await sweepStalePools(spec.dataDir);
    if (fresh) await workspace.create(spec.limits.diskBytes, poolFor(spec.dataDir));
    const cgroup = new SandboxCgroup(spec.id);
    cgroup.destroy();
    return { rootfs, workspace, cgroup };
  }

  /** Drains the warm pools of every data directory used. */
  async drain(): Promise<void> {
    for (const d of this.dataDirs) await drainPool(d);
  }
}
