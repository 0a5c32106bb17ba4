/**
 * What every real-binary sandbox starts from, whatever its runtime: the
 * template's rootfs, the workspace image (taken from the warm pool when it is
 * new), and a clean cgroup path. Drivers add only their runtime.
 */
import { readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { InstanceSpec } from "../../core/backend.ts";
import { traced, tracedSync } from "../../core/trace.ts";
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

/** Temporary names of unfinished writes (the agent's `.<name>.kiln-<pid>-<n>`) and tar imports (core's staging folders). */
export const TEMPORARY = /^(\..+\.kiln-\d+-\d+|\.kiln-import-\d+-\d+-[0-9a-f]+)$/;

/** Removes the temporary entries below `dir`, a directory of the host holding a sandbox's files; never follows a link. */
export async function sweepTemporary(dir: string): Promise<void> {
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = join(dir, e.name);
    if (TEMPORARY.test(e.name)) await rm(p, { recursive: true, force: true });
    else if (e.isDirectory()) await sweepTemporary(p);
  }
}

/**
 * After the Kiln process that ran a sandbox died without closing it: empties
 * and removes its cgroup, removes the temporary files of the writes and
 * imports it left unfinished (every one is stale: no other process runs the
 * sandbox), and unmounts the workspace. The image stays; `open` mounts it again.
 */
export async function releaseParts(spec: InstanceSpec): Promise<void> {
  new SandboxCgroup(spec.id).destroy();
  const workspace = new WorkspaceImage(spec.stateDir);
  await workspace.thaw();
  if (workspace.mounted()) await sweepTemporary(workspace.mountPath);
  await workspace.unmount();
}

/** The file of a saved workspace in a state directory. */
const SAVED_IMAGE = "workspace.img";

/** The saved workspace image in the state directory `dir` (written by {@link saveWorkspace}). */
export function savedImage(dir: string): string {
  return join(dir, SAVED_IMAGE);
}

/** Saves a sandbox's workspace image into `dir` (see {@link WorkspaceImage.saveTo}); returns its size on disk. */
export async function saveWorkspace(spec: InstanceSpec, dir: string): Promise<number> {
  const dest = join(dir, SAVED_IMAGE);
  await new WorkspaceImage(spec.stateDir).saveTo(dest);
  return (await stat(dest)).blocks * 512;
}

/** The data directories a driver has used, so that it can drain their pools when it closes. */
export class PoolUsers {
  private readonly dataDirs = new Set<string>();

  /**
   * Finds the template, makes (`fresh`: empty, or a copy of the image saved in
   * the state directory `from`) or finds the workspace, and clears the cgroup.
   */
  async parts(
    spec: InstanceSpec,
    fresh: boolean,
    signal?: AbortSignal,
    from?: string,
  ): Promise<SandboxParts> {
    const id = spec.id;
    const rootfs = await traced("create.template", id, () =>
      templateRootfs(spec.dataDir, spec.template, signal, spec.buildTemplate),
    );
    const workspace = new WorkspaceImage(spec.stateDir);
    this.dataDirs.add(spec.dataDir);
    await traced("create.sweep-pools", id, () => sweepStalePools(spec.dataDir));
    if (from !== undefined)
      await traced("create.workspace", id, () => workspace.createFrom(join(from, SAVED_IMAGE)));
    else if (fresh)
      await traced("create.workspace", id, () =>
        workspace.create(spec.limits.diskBytes, poolFor(spec.dataDir)),
      );
    const cgroup = new SandboxCgroup(id);
    tracedSync("create.cgroup-clear", id, () => cgroup.destroy());
    return { rootfs, workspace, cgroup };
  }

  /** Drains the warm pools of every data directory used. */
  async drain(): Promise<void> {
    for (const d of this.dataDirs) await drainPool(d);
  }
}
