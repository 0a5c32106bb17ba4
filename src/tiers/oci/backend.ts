/**
 * The `oci` tier: an OCI container run by runc. The same isolation primitives
 * as the namespace tier (namespaces, seccomp, cgroups, no capabilities), set
 * up by the reference container runtime from a runtime bundle; the agent is
 * the container's process and serves commands and files over runc's stdio.
 */
import { join } from "node:path";
import type { Backend, Capabilities, Instance, InstanceSpec } from "../../core/backend.ts";
import type { TierStatus } from "../../core/types.ts";
import { AgentInstance } from "../common/agent-instance.ts";
import { cgroupMode, SandboxCgroup } from "../common/cgroups.ts";
import { agentBinary, isRoot, which } from "../common/host.ts";
import {
  type OciRuntime,
  ociDelete,
  ociLauncher,
  ociTrial,
  removeCgroupDirs,
  runtimeVersion,
  writeOciBundle,
} from "../common/oci-bundle.ts";
import { templateRootfs } from "../common/templates.ts";
import { WorkspaceImage } from "../common/workspace-image.ts";

const CAPABILITIES: Capabilities = {
  realBinaries: true,
  interactiveStdin: true,
  streamingOutput: true,
  processesSurviveRestart: false,
};

/** runc with Kiln's own state directory. */
function runtime(dataDir: string): OciRuntime {
  return { binary: which("runc") ?? "runc", root: join(dataDir, "runc"), flags: [] };
}

/** The oci tier's driver. */
export class OciBackend implements Backend {
  readonly tier = "oci" as const;
  readonly capabilities = CAPABILITIES;

  async probe(): Promise<TierStatus> {
    const no = (reason: string): TierStatus => ({ tier: "oci", available: false, reason });
    const runc = which("runc");
    if (!runc) return no("runc is not installed (apt-get install runc)");
    if (!isRoot()) return no("needs root (runc containers, cgroup limits and the workspace image mount)");
    const cg = cgroupMode();
    if (cg.mode === "none") return no(cg.reason);
    const img = WorkspaceImage.unavailableReason();
    if (img) return no(img);
    let agent: string;
    try {
      agent = agentBinary();
    } catch (e) {
      return no((e as Error).message);
    }
    const failed = await ociTrial({ binary: runc, flags: [] }, agent, 15_000);
    if (failed) return no(`runc cannot run containers here: ${failed}`);
    return { tier: "oci", available: true, reason: `${await runtimeVersion(runc)}, cgroup ${cg.mode}` };
  }

  private async start(spec: InstanceSpec, fresh: boolean, signal?: AbortSignal): Promise<Instance> {
    const rootfs = await templateRootfs(spec.dataDir, spec.template, signal);
    const workspace = new WorkspaceImage(spec.stateDir);
    if (fresh) await workspace.create(spec.limits.diskBytes);
    // runc makes the cgroup and sets the limits itself; Kiln reads usage and OOM kills from it.
    const cgroup = new SandboxCgroup(spec.id);
    cgroup.destroy();
    const bundle = writeOciBundle(join(spec.stateDir, "oci-bundle"), {
      rootfs,
      workspace: workspace.mountPath,
      agent: agentBinary(),
      limits: spec.limits,
      cgroupsPath: cgroup.relPath,
    });
    const launcher = ociLauncher(runtime(spec.dataDir), bundle, spec.id, cgroup.relPath);
    return AgentInstance.start({ tier: "oci", spec, launcher, workspace, cgroup }, signal);
  }

  create(spec: InstanceSpec, signal?: AbortSignal): Promise<Instance> {
    return this.start(spec, true, signal);
  }

  open(spec: InstanceSpec, signal?: AbortSignal): Promise<Instance> {
    return this.start(spec, false, signal);
  }

  async destroy(spec: InstanceSpec): Promise<void> {
    const cgroup = new SandboxCgroup(spec.id);
    let failure: unknown;
    await ociDelete(runtime(spec.dataDir), spec.id).catch((e: unknown) => {
      failure = e;
    });
    cgroup.destroy();
    removeCgroupDirs(cgroup.relPath);
    await new WorkspaceImage(spec.stateDir).destroy();
    if (failure) throw failure;
  }
}
