/**
 * The `gvisor` tier: an OCI container run by runsc, gVisor's runtime. The
 * sandbox's syscalls are served by gVisor's user-space kernel (the Sentry),
 * not the host kernel; files reach it through the Gofer. The bundle is the
 * same as the oci tier's. Platform: ptrace (see docs/tiers/gvisor.md).
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

/**
 * runsc's global flags: no network at all (only loopback inside), the ptrace
 * platform (works without KVM), and the bundle's seccomp policy enforced by
 * the Sentry for the sandbox's processes (runsc ignores it without
 * `--oci-seccomp`).
 */
export const RUNSC_FLAGS: readonly string[] = Object.freeze([
  "--network=none",
  "--platform=ptrace",
  "--oci-seccomp",
]);

/**
 * The host pids cgroup of a gVisor sandbox holds the Sentry's and Gofer's
 * threads and, on ptrace, stub threads for every guest thread (about 8 host
 * tasks per guest process, pooled after they end). The guest's own process
 * count is limited by RLIMIT_NPROC inside the Sentry; the host cap only keeps
 * a runaway sandbox from exhausting the host's pids.
 */
export function hostPidsCap(pids: number): number {
  return 128 + 16 * pids;
}

/** What a gVisor bundle has beyond the oci tier's. */
const BUNDLE_EXTRA = (pids: number) => ({
  pidsInside: { hostPids: hostPidsCap(pids) },
  // A seccomp rule on clone3 hangs this runsc's (20221219) processes at their first fork.
  seccompOmit: ["clone3"],
});

/** runsc with Kiln's own state directory. */
function runtime(dataDir: string): OciRuntime {
  return { binary: which("runsc") ?? "runsc", root: join(dataDir, "runsc"), flags: [...RUNSC_FLAGS] };
}

/** The gvisor tier's driver. */
export class GvisorBackend implements Backend {
  readonly tier = "gvisor" as const;
  readonly capabilities = CAPABILITIES;

  async probe(): Promise<TierStatus> {
    const no = (reason: string): TierStatus => ({ tier: "gvisor", available: false, reason });
    const runsc = which("runsc");
    if (!runsc) return no("runsc (gVisor) is not installed (apt-get install runsc)");
    if (!isRoot()) return no("needs root (runsc containers, cgroup limits and the workspace image mount)");
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
    const failed = await ociTrial(
      { binary: runsc, flags: [...RUNSC_FLAGS] },
      agent,
      30_000,
      BUNDLE_EXTRA(64),
    );
    if (failed) return no(`runsc cannot run sandboxes here: ${failed}`);
    return {
      tier: "gvisor",
      available: true,
      reason: `${await runtimeVersion(runsc)}, platform ptrace, cgroup ${cg.mode}`,
    };
  }

  private async start(spec: InstanceSpec, fresh: boolean, signal?: AbortSignal): Promise<Instance> {
    const rootfs = await templateRootfs(spec.dataDir, spec.template, signal);
    const workspace = new WorkspaceImage(spec.stateDir);
    if (fresh) await workspace.create(spec.limits.diskBytes);
    // runsc makes the cgroup and sets the limits on the whole sandbox (Sentry, Gofer and all).
    const cgroup = new SandboxCgroup(spec.id);
    cgroup.destroy();
    const bundle = writeOciBundle(join(spec.stateDir, "oci-bundle"), {
      rootfs,
      workspace: workspace.mountPath,
      agent: agentBinary(),
      limits: spec.limits,
      ...BUNDLE_EXTRA(spec.limits.pids),
      cgroupsPath: cgroup.relPath,
    });
    const launcher = ociLauncher(runtime(spec.dataDir), bundle, spec.id, cgroup.relPath);
    return AgentInstance.start({ tier: "gvisor", spec, launcher, workspace, cgroup }, signal);
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
