/**
 * The driver shared by the tiers that run an OCI runtime bundle (oci: runc;
 * gvisor: runsc). A tier supplies only what differs: the runtime binary and
 * its flags, what its bundle adds, and how it names itself; the rest (probe,
 * bundle, launcher, workspace image and pool, cgroup, teardown) is here once.
 */

import { join } from "node:path";
import type { Backend, Capabilities, Instance, InstanceSpec } from "../../core/backend.ts";
import { UnsupportedError } from "../../core/errors.ts";
import type { TierName, TierStatus } from "../../core/types.ts";
import { hasEgress } from "../../network/policy.ts";
import { AgentInstance } from "./agent-instance.ts";
import { cgroupMode, SandboxCgroup } from "./cgroups.ts";
import {
  attachEgress,
  type EgressAttachment,
  type HeldNetns,
  holdNetns,
  sandboxResolvConf,
} from "./egress-netns.ts";
import { agentBinary, isRoot, which } from "./host.ts";
import { sandboxHostFiles, sandboxHostname, withHostFiles } from "./host-identity.ts";
import { claimIdRange, idRangesUnavailable } from "./id-ranges.ts";
import { IDMAP_USERNS, IdStage } from "./id-stage.ts";
import { type OciBundleInput, stagedOciInput, writeOciBundle } from "./oci-bundle.ts";
import {
  type OciRuntime,
  ociCheckpoint,
  ociDelete,
  ociLauncher,
  ociTrial,
  type PerRun,
  removeCgroupDirs,
  runtimeVersion,
} from "./oci-runtime.ts";
import { destroyWorkspace, PoolUsers, releaseParts, saveWorkspace } from "./sandbox-parts.ts";
import { templateDigest } from "./templates.ts";
import { WorkspaceImage } from "./workspace-image.ts";

/**
 * Each run of the container gets a host id range of its own (id-ranges.ts): the bundle, written
 * for it, has the container join a user namespace mapping 0..65535 to that range, and binds the
 * sandbox's paths idmapped through it; the runtime runs as host root under the agent binary's
 * `--idmap-stage` (id-stage.ts), which makes both.
 */
function idmappedRun(bundle: string, id: string, input: OciBundleInput): PerRun {
  let ids: ReturnType<typeof claimIdRange>;
  return {
    start() {
      ids?.release();
      ids = claimIdRange(id);
      if (!ids) throw new Error("no sandbox id range on this host");
      const stage = new IdStage();
      writeOciBundle(bundle, {
        ...stagedOciInput(input, stage),
        userns: { path: IDMAP_USERNS, range: ids.range },
      });
      return stage.command(input.agent, ids.range, "stay", []);
    },
    end() {
      ids?.release();
      ids = undefined;
    },
  };
}

/** What an OCI-runtime tier is made of. */
export interface OciTierConfig {
  tier: TierName;
  /** The runtime binary's name on PATH (and its Debian package). */
  binary: string;
  /** How the probe names the runtime when it is missing, e.g. `runsc (gVisor)`. */
  displayName: string;
  /** Global flags of every runtime call. */
  flags: readonly string[];
  /** What the tier's bundle adds to the common one, for a sandbox's `pids` limit. */
  bundleExtra?: (pids: number) => Partial<Parameters<typeof writeOciBundle>[1]>;
  /** Extra words in the ready reason, e.g. `platform ptrace`. */
  readyDetail?: string;
  /** Time the probe's trial container may take, ms. */
  trialTimeoutMs: number;
  /** The runtime checkpoints and restores running containers (`checkpoint` / `restore`): pause keeps memory. */
  checkpoint?: boolean;
  /**
   * How Kiln's egress path is plugged into a sandbox's network namespace: `after-start` (the
   * container's namespace is the kernel's: runc), `before-start` (a namespace made and wired first,
   * given to the runtime: runsc, whose netstack reads its interfaces once, at boot); absent: none.
   */
  egress?: "after-start" | "before-start";
  /** Global flags instead of `flags` for a sandbox with egress (runsc: `--network=sandbox`). */
  egressFlags?: readonly string[];
  /** A command line the runtime of a sandbox with egress is started under (see gvisor/backend.ts). */
  egressRunUnder?: readonly string[];
  /** The container runs in a user namespace mapping its ids to a host range of its own (where the host has ranges). */
  idmap?: boolean;
}

const CAPABILITIES: Omit<Capabilities, "pause"> = {
  realBinaries: true,
  interactiveStdin: true,
  pty: true,
  streamingOutput: true,
  processesSurviveRestart: false,
  warmable: true,
  egress: false,
  templates: true,
  inboundPorts: true,
  volumes: true,
};

/** The driver of one OCI-runtime tier. */
export class OciTierBackend implements Backend {
  readonly tier: TierName;
  readonly capabilities: Capabilities;
  private readonly config: OciTierConfig;
  private readonly pools = new PoolUsers();

  constructor(config: OciTierConfig) {
    this.config = config;
    this.tier = config.tier;
    this.capabilities = {
      ...CAPABILITIES,
      pause: config.checkpoint ? "memory" : "files",
      egress: config.egress !== undefined,
    };
  }

  /** The runtime with Kiln's own state directory under the data dir (and egress flags for such a sandbox). */
  private runtime(dataDir: string, egress = false): OciRuntime {
    const c = this.config;
    const flags = egress && c.egressFlags ? c.egressFlags : c.flags;
    return {
      binary: which(c.binary) ?? c.binary,
      root: join(dataDir, c.binary),
      flags: [...flags],
      ...(egress && c.egressRunUnder ? { runUnder: c.egressRunUnder } : {}),
    };
  }

  async probe(): Promise<TierStatus> {
    const c = this.config;
    const no = (reason: string): TierStatus => ({ tier: c.tier, available: false, reason });
    const binary = which(c.binary);
    if (!binary) return no(`${c.displayName} is not installed (apt-get install ${c.binary})`);
    if (!isRoot())
      return no(`needs root (${c.binary} containers, cgroup limits and the workspace image mount)`);
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
      { binary, flags: [...c.flags] },
      agent,
      c.trialTimeoutMs,
      ...(c.bundleExtra ? [c.bundleExtra(64)] : []),
    );
    if (failed) return no(`${c.binary} cannot run containers here: ${failed}`);
    const ids = c.idmap ? idRangesUnavailable() : undefined;
    const idDetail = c.idmap
      ? ids
        ? `sandbox root is host root: ${ids}`
        : "sandbox ids mapped to a host range of their own"
      : undefined;
    const detail = [await runtimeVersion(binary), c.readyDetail, `cgroup ${cg.mode}`, idDetail]
      .filter(Boolean)
      .join(", ");
    return { tier: c.tier, available: true, reason: detail };
  }

  private async start(
    spec: InstanceSpec,
    fresh: boolean,
    signal?: AbortSignal,
    from?: { files?: string; checkpoint?: string },
  ): Promise<Instance> {
    const { rootfs, workspace, cgroup } = await this.pools.parts(spec, fresh, signal, from?.files);
    const egress = this.config.egress !== undefined && spec.network !== undefined && hasEgress(spec.network);
    let held: HeldNetns | undefined;
    let network: EgressAttachment | undefined;
    if (egress && this.config.egress === "before-start") {
      held = await holdNetns();
      try {
        network = await attachEgress(this.tier, spec, held.pid, { subnet: true });
      } catch (e) {
        held.release();
        throw e;
      }
    }
    // The runtime makes the cgroup and sets the limits itself; Kiln reads usage and OOM kills from it.
    const input: OciBundleInput = {
      rootfs,
      workspace: workspace.mountPath,
      agent: agentBinary(),
      limits: spec.limits,
      ...(this.config.bundleExtra?.(spec.limits.pids) ?? {}),
      cgroupsPath: cgroup.relPath,
      // A tier that wires after start can give a running sandbox egress later: its DNS is Kiln's from the start.
      ...(egress || this.config.egress === "after-start"
        ? { resolvConf: sandboxResolvConf(spec, rootfs) }
        : {}),
      ...(held ? { netnsPath: `/proc/${held.pid}/ns/net` } : {}),
      ...(spec.volumes ? { volumes: spec.volumes } : {}),
      hostname: sandboxHostname(spec.id),
      ...withHostFiles(sandboxHostFiles(spec, rootfs)),
    };
    const bundle = join(spec.stateDir, "oci-bundle");
    const perRun =
      this.config.idmap && !idRangesUnavailable() ? idmappedRun(bundle, spec.id, input) : undefined;
    if (!perRun) writeOciBundle(bundle, input);
    const launcher = ociLauncher(
      this.runtime(spec.dataDir, egress),
      bundle,
      spec.id,
      cgroup.relPath,
      from?.checkpoint,
      perRun,
    );
    try {
      return await AgentInstance.start(
        {
          tier: this.tier,
          spec,
          launcher,
          workspace,
          cgroup,
          resumed: from?.checkpoint !== undefined,
          ...(network ? { network } : {}),
          networkAtStartOnly: this.config.egress === "before-start",
        },
        signal,
      );
    } finally {
      // The runtime holds the namespace now (or failed to start: then it goes).
      held?.release();
    }
  }

  createFrom(spec: InstanceSpec, dir: string, signal?: AbortSignal): Promise<Instance> {
    return this.start(spec, true, signal, { files: dir });
  }

  saveFiles(spec: InstanceSpec, dir: string): Promise<number> {
    return saveWorkspace(spec, dir);
  }

  /** Checkpoints the running container (memory and processes) into `dir`, then stops the instance. */
  async suspend(spec: InstanceSpec, instance: Instance, dir: string): Promise<void> {
    if (!this.config.checkpoint) throw new UnsupportedError(`${this.config.binary} does not checkpoint here`);
    await ociCheckpoint(this.runtime(spec.dataDir), spec.id, dir);
    await instance.close();
  }

  /** Restores the checkpoint in `dir`: the workspace is mounted again and the processes run on. */
  resume(spec: InstanceSpec, dir: string, signal?: AbortSignal): Promise<Instance> {
    return this.start(spec, false, signal, { checkpoint: dir });
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
    await ociDelete(this.runtime(spec.dataDir), spec.id).catch((e: unknown) => {
      failure = e;
    });
    cgroup.destroy();
    removeCgroupDirs(cgroup.relPath);
    await destroyWorkspace(spec);
    if (failure) throw failure;
  }

  /** Releases what a dead process's instance held: the container's record, its cgroups, the mount. */
  async recover(spec: InstanceSpec, _owner: string, alone: boolean): Promise<void> {
    if (!alone) return;
    await ociDelete(this.runtime(spec.dataDir), spec.id).catch(() => {});
    await releaseParts(spec);
    removeCgroupDirs(new SandboxCgroup(spec.id).relPath);
  }

  async close(): Promise<void> {
    await this.pools.drain();
  }

  templateDigest(dataDir: string, template: string): string | undefined {
    return templateDigest(dataDir, template);
  }
}
