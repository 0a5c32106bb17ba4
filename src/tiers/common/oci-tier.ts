/**
 * The driver shared by the tiers that run an OCI runtime bundle (oci: runc;
 * gvisor: runsc). A tier supplies only what differs: the runtime binary and
 * its flags, what its bundle adds, and how it names itself; the rest (probe,
 * bundle, launcher, workspace image and pool, cgroup, teardown) is here once.
 */

import { chmodSync, chownSync, lchownSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Backend, Capabilities, Instance, InstanceSpec } from "../../core/backend.ts";
import { TierUnavailableError, type UnenforcedLimit, UnsupportedError } from "../../core/errors.ts";
import { tracedSync } from "../../core/trace.ts";
import type { TierName, TierStatus } from "../../core/types.ts";
import { hasEgress } from "../../network/policy.ts";
import { AgentInstance, type AgentInstanceParts, type Launcher } from "./agent-instance.ts";
import { cgroupMode, SandboxCgroup } from "./cgroups.ts";
import { egressGateHook, openEgressGate } from "./egress-gate.ts";
import { attachEgress, sandboxResolvConf } from "./egress-netns.ts";
import { agentBinary, isRoot } from "./host.ts";
import { sandboxHostFiles, sandboxHostname, withHostFiles } from "./host-identity.ts";
import { claimIdRange, idRangesUnavailable } from "./id-ranges.ts";
import { IDMAP_USERNS, IdStage, stagedInput } from "./id-stage.ts";
import { type OciBundleInput, writeOciBundle } from "./oci-bundle.ts";
import {
  agentDirIn,
  ROOTLESS_FLAGS,
  rootlessRuntimeMissing,
  rootlessRunUnder,
  selfIds,
} from "./oci-rootless.ts";
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
import {
  locate,
  type OciRuntimeCandidate,
  type ResolvedRuntime,
  readRuntimeRecord,
  runtimeForCheckpoint,
  writeRuntimeRecord,
} from "./oci-runtime-choice.ts";
import { rootlessDestroy, rootlessParts, rootlessRelease, rootlessUnenforced } from "./rootless-parts.ts";
import { destroyWorkspace, PoolUsers, releaseParts, saveWorkspace } from "./sandbox-parts.ts";
import { templateDigest } from "./templates.ts";
import { WorkspaceDir } from "./workspace-dir.ts";
import { WorkspaceImage } from "./workspace-image.ts";

/**
 * Each run of the container gets a host id range of its own (id-ranges.ts), and the sandbox's
 * paths are idmapped through a user namespace mapping 0..65535 to it (id-stage.ts), in one of two
 * ways:
 * - `join` (runc): the runtime runs as host root under `--idmap-stage` (it keeps host root for the
 *   cgroup limits), and the bundle has the container join that user namespace by path;
 * - `inside` (runsc): the runtime itself runs as root of that user namespace under `--idmap-exec`
 *   (its Sentry then runs as the range's `nobody`, its Gofer as the range's root), in a cgroup Kiln
 *   made and set the limits of; its state directory, the bundle and a checkpoint are staged too.
 */
function idmappedRun(
  mode: "join" | "inside",
  bundle: string,
  id: string,
  input: OciBundleInput,
  cgroup: SandboxCgroup,
  limits: InstanceSpec["limits"],
): PerRun {
  let ids: ReturnType<typeof claimIdRange>;
  return {
    start(paths) {
      ids?.release();
      ids = claimIdRange(id);
      if (!ids) throw new Error("no sandbox id range on this host");
      const stage = new IdStage();
      if (mode === "join") {
        writeOciBundle(bundle, {
          ...stagedInput(input, stage),
          userns: { path: IDMAP_USERNS, range: ids.range },
        });
        return { prefix: stage.command(input.agent, ids.range, "stay", []), paths };
      }
      const { cgroupsPath: _, ...rest } = input;
      writeOciBundle(bundle, stagedInput(rest, stage));
      cgroup.create({ ...limits, pids: input.pidsInside?.hostPids ?? limits.pids });
      // The runtime's state directory is the sandbox's own (see runtimeRootOf): its root owns it.
      const [root, ...rest2] = paths;
      chownTree(root!, ids.range.base);
      const staged = [root!, ...rest2.map(stage.stage)];
      return {
        prefix: [
          "sh",
          "-c",
          `${cgroup.joinScript()} && exec "$@"`,
          "sh",
          ...stage.command(input.agent, ids.range, "enter", []),
        ],
        paths: staged,
        // The limits are the cgroup's that Kiln made above (the runtime could not make one there).
        flags: ["--ignore-cgroups"],
      };
    },
    end() {
      ids?.release();
      ids = undefined;
    },
  };
}

/** A sandbox's own runtime state directory (of the build whose records are `name`), for a runtime that runs inside its user namespace. */
function runtimeRootOf(name: string, id: string): string {
  return join(RUNTIME_ROOTS, name, id);
}

/** Where those live: tmpfs (a reboot ends the containers they describe), reachable by every mapped root. */
const RUNTIME_ROOTS = "/run/kiln-runtime";

/** Makes `dir` (created if missing) and everything in it owned by `uid` (its gid the same). */
function chownTree(dir: string, uid: number): void {
  // The folders above it: traversable, not listable, by the mapped roots.
  mkdirSync(dirname(dir), { recursive: true });
  chmodSync(RUNTIME_ROOTS, 0o711);
  chmodSync(dirname(dir), 0o711);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const name of readdirSync(dir, { recursive: true }) as string[]) lchownSync(join(dir, name), uid, uid);
  chownSync(dir, uid, uid);
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
  /**
   * The runtime builds to try, best first: the probe uses the first whose trial container runs
   * (see oci-runtime-choice.ts). Default: `binary` on PATH, no extra flags.
   */
  runtimes?: readonly OciRuntimeCandidate[];
  /** Why `runtimes` is empty, when it is (a setting that names no build). */
  noRuntimes?: string;
  /** What the tier's bundle adds to the common one, for a sandbox's `pids` limit. */
  bundleExtra?: (pids: number) => Partial<Parameters<typeof writeOciBundle>[1]>;
  /** Time the probe's trial container may take, ms. */
  trialTimeoutMs: number;
  /** The runtime checkpoints and restores running containers (`checkpoint` / `restore`): pause keeps memory. */
  checkpoint?: boolean;
  /**
   * How Kiln's egress path is plugged into a sandbox's network namespace: `after-start` (the
   * container's namespace is the kernel's: runc), `before-start` (the runtime makes the namespace
   * and Kiln wires it from a createRuntime hook, before the runtime reads it: runsc, whose netstack
   * copies its interfaces once, when the sandbox starts or is restored; see egress-gate.ts);
   * absent: none.
   */
  egress?: "after-start" | "before-start";
  /** Global flags instead of `flags` for a sandbox with egress (runsc: `--network=sandbox`). */
  egressFlags?: readonly string[];
  /** A command line the runtime of a sandbox with egress is started under (see gvisor/backend.ts). */
  egressRunUnder?: readonly string[];
  /**
   * The container runs in a user namespace mapping its ids to a host range of its own (where the
   * host has ranges): how, see {@link idmappedRun}.
   */
  idmap?: "join" | "inside";
  /**
   * The runtime runs as an ordinary user too (runsc): Kiln run by one starts it as described in
   * oci-rootless.ts, with the limits rootless-parts.ts says hold, and no egress.
   */
  rootless?: boolean;
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
  /** Run by an ordinary user, with a runtime that runs as one (read once: a process does not change its uid). */
  private readonly rootless: boolean;
  private readonly pools = new PoolUsers();
  private readonly candidates: readonly OciRuntimeCandidate[];
  private installedBuilds?: Promise<ResolvedRuntime[]>;
  private choice?: Promise<{ runtime?: ResolvedRuntime; passedOver: string[] }>;

  constructor(config: OciTierConfig) {
    this.config = config;
    this.tier = config.tier;
    this.rootless = config.rootless === true && !isRoot();
    this.capabilities = {
      ...CAPABILITIES,
      pause: config.checkpoint ? "memory" : "files",
      // Without root, no egress: wiring a sandbox's network namespace to the host needs root.
      egress: config.egress !== undefined && !this.rootless,
    };
    this.candidates = config.runtimes ?? [
      { binary: config.binary, flags: [], label: "", stateName: config.binary },
    ];
  }

  /**
   * The build `rt` with Kiln's own state directory (and egress flags for such a sandbox): under the
   * data dir, or, for a runtime that runs inside the sandbox's user namespace, one of the
   * sandbox's own under /run/kiln-runtime (the runtime records its path, and both it and Kiln must reach it).
   * Each build keeps its records apart.
   */
  private runtime(
    spec: Pick<InstanceSpec, "dataDir" | "id">,
    rt: ResolvedRuntime,
    egress = false,
  ): OciRuntime {
    const c = this.config;
    const flags = egress && c.egressFlags ? c.egressFlags : c.flags;
    return {
      binary: rt.path,
      root:
        c.idmap === "inside" && !this.rootless
          ? runtimeRootOf(rt.stateName, spec.id)
          : join(spec.dataDir, rt.stateName),
      flags: [...flags, ...rt.flags, ...(this.rootless ? ROOTLESS_FLAGS : [])],
      ...(egress && c.egressRunUnder ? { runUnder: c.egressRunUnder } : {}),
    };
  }

  /** The candidate builds installed here, with their versions (looked up once). */
  private installed(): Promise<ResolvedRuntime[]> {
    this.installedBuilds ??= (async () => {
      const out: ResolvedRuntime[] = [];
      for (const c of this.candidates) {
        const path = locate(c);
        if (path) out.push({ ...c, path, version: await runtimeVersion(path) });
      }
      return out;
    })();
    return this.installedBuilds;
  }

  /** Runs a trial container with each installed build in turn; the first that runs is chosen. */
  private choose(): Promise<{ runtime?: ResolvedRuntime; passedOver: string[] }> {
    const c = this.config;
    const agent = agentBinary();
    const p = (async () => {
      const passedOver: string[] = [];
      for (const rt of await this.installed()) {
        const failed = await ociTrial(
          { binary: rt.path, flags: [...c.flags, ...rt.flags, ...(this.rootless ? ROOTLESS_FLAGS : [])] },
          agent,
          c.trialTimeoutMs,
          { ...(c.bundleExtra?.(64) ?? {}), ...(this.rootless ? { selfMap: selfIds() } : {}) },
        );
        if (!failed) return { runtime: rt, passedOver };
        passedOver.push(`${rt.version}${rt.label ? ` (${rt.label})` : ""} at ${rt.path}: ${failed}`);
      }
      return { passedOver };
    })();
    this.choice = p;
    p.catch(() => {
      if (this.choice === p) this.choice = undefined;
    });
    return p;
  }

  /**
   * The build new sandboxes run under (chosen by the last probe, or now).
   * @throws TierUnavailableError when no build runs here
   */
  private async chosen(): Promise<ResolvedRuntime> {
    const { runtime, passedOver } = await (this.choice ?? this.choose());
    if (!runtime) {
      throw new TierUnavailableError(
        this.tier,
        `${this.config.binary} cannot run containers here: ${passedOver.join("; ")}`,
      );
    }
    return runtime;
  }

  /** The build sandbox `spec` was started under (its record), or the chosen one for a sandbox without a record. */
  private async runtimeOf(spec: InstanceSpec): Promise<ResolvedRuntime> {
    const record = readRuntimeRecord(spec.stateDir);
    const found =
      record && (await this.installed()).find((r) => r.path === record.path && r.label === record.label);
    return found ?? this.chosen();
  }

  /** Deletes sandbox `spec`'s container with every installed build (each keeps its own records). */
  private async deleteContainer(spec: InstanceSpec): Promise<void> {
    let failure: unknown;
    for (const rt of await this.installed()) {
      await ociDelete(this.runtime(spec, rt), spec.id).catch((e: unknown) => {
        failure ??= e;
      });
    }
    if (failure) throw failure;
  }

  async probe(): Promise<TierStatus> {
    const c = this.config;
    const no = (reason: string): TierStatus => ({ tier: c.tier, available: false, reason });
    if (this.candidates.length === 0) return no(c.noRuntimes ?? `no ${c.binary} build is configured`);
    // Look again: a build may have been installed or removed since.
    this.installedBuilds = undefined;
    if ((await this.installed()).length === 0) {
      return no(`${c.displayName} is not installed (apt-get install ${c.binary})`);
    }
    if (!isRoot() && !c.rootless)
      return no(`needs root (${c.binary} containers, cgroup limits and the workspace image mount)`);
    const cg = cgroupMode();
    if (this.rootless) {
      const missing = rootlessRuntimeMissing();
      if (missing) return no(missing);
    } else {
      if (cg.mode === "none") return no(cg.reason);
      const img = WorkspaceImage.unavailableReason();
      if (img) return no(img);
    }
    try {
      agentBinary();
    } catch (e) {
      return no((e as Error).message);
    }
    const { runtime, passedOver } = await this.choose();
    if (!runtime) return no(`${c.binary} cannot run containers here: ${passedOver.join("; ")}`);
    if (this.rootless) return this.rootlessStatus(runtime, cg.mode, passedOver);
    const ids = c.idmap ? idRangesUnavailable() : undefined;
    const idDetail = c.idmap
      ? ids
        ? `sandbox root is host root: ${ids}`
        : "sandbox ids mapped to a host range of their own"
      : undefined;
    const detail = [
      runtime.version,
      runtime.label,
      `cgroup ${cg.mode}`,
      idDetail,
      ...passedOver.map((p) => `not used: ${p}`),
    ]
      .filter(Boolean)
      .join(", ");
    return { tier: c.tier, available: true, reason: detail };
  }

  /** The probe's answer as an ordinary user: whose uid the sandbox has, which limits hold. */
  private rootlessStatus(runtime: ResolvedRuntime, cgroups: string, passedOver: string[]): TierStatus {
    const unenforced = this.unenforcedLimits();
    const held = (["memoryBytes", "pids", "cpuCount", "diskBytes"] as const).filter(
      (l) => !unenforced.some((u) => u.limit === l),
    );
    const detail = [
      runtime.version,
      runtime.label,
      `cgroup ${cgroups}`,
      `ordinary user: the sandbox's processes are host uid ${selfIds().uid} (this user), no egress`,
      `limits held: ${held.length ? held.join(", ") : "none"}`,
      `not held: ${unenforced.map((u) => u.limit).join(", ")}`,
      ...passedOver.map((p) => `not used: ${p}`),
    ]
      .filter(Boolean)
      .join("; ");
    return { tier: this.tier, available: true, reason: detail, unenforcedLimits: unenforced };
  }

  /** None as root; as an ordinary user, the disk limit and those its cgroups cannot hold. */
  unenforcedLimits(): UnenforcedLimit[] {
    return this.rootless ? rootlessUnenforced() : [];
  }

  /** A sandbox run by an ordinary user: its own directories, cgroup and one-id user namespace. */
  private async startRootless(
    spec: InstanceSpec,
    fresh: boolean,
    signal?: AbortSignal,
    from?: { files?: string; checkpoint?: string },
  ): Promise<Instance> {
    const { rootfs, workspace, cgroup } = await rootlessParts(spec, fresh, signal, from?.files);
    const extra = this.config.bundleExtra?.(spec.limits.pids) ?? {};
    const agent = agentBinary();
    const input: OciBundleInput = {
      rootfs,
      workspace: workspace.mountPath,
      agent,
      agentDir: agentDirIn(join(spec.dataDir, "agent"), agent),
      selfMap: selfIds(),
      limits: spec.limits,
      ...extra,
      ...(spec.volumes ? { volumes: spec.volumes } : {}),
      hostname: sandboxHostname(spec.id),
      ...withHostFiles(sandboxHostFiles(spec, rootfs)),
    };
    const bundle = writeOciBundle(join(spec.stateDir, "oci-bundle"), input);
    // The runtime's host processes count in the pids cgroup (see the tier's bundleExtra).
    cgroup?.create({ ...spec.limits, pids: extra.pidsInside?.hostPids ?? spec.limits.pids });
    const rt = from?.checkpoint
      ? runtimeForCheckpoint(this.tier, from.checkpoint, await this.installed(), this.config.binary)
      : await this.chosen();
    writeRuntimeRecord(spec.stateDir, rt);
    const runtime = { ...this.runtime(spec, rt), runUnder: rootlessRunUnder(cgroup) };
    // No cgroup directories of the runtime's to remove: it makes none (--ignore-cgroups).
    const launcher = ociLauncher(runtime, bundle, spec.id, "", from?.checkpoint);
    return AgentInstance.start(
      {
        tier: this.tier,
        spec,
        launcher,
        workspace,
        cgroup,
        resumed: from?.checkpoint !== undefined,
      },
      signal,
    );
  }

  private async start(
    spec: InstanceSpec,
    fresh: boolean,
    signal?: AbortSignal,
    from?: { files?: string; checkpoint?: string },
  ): Promise<Instance> {
    if (this.rootless) return this.startRootless(spec, fresh, signal, from);
    const { rootfs, workspace, cgroup } = await this.pools.parts(spec, fresh, signal, from?.files);
    const egress = this.config.egress !== undefined && spec.network !== undefined && hasEgress(spec.network);
    // A restored sandbox runs under the build that took its checkpoint; a new one under the chosen build.
    const rt = from?.checkpoint
      ? runtimeForCheckpoint(this.tier, from.checkpoint, await this.installed(), this.config.binary)
      : await this.chosen();
    const runtime = this.runtime(spec, rt, egress);
    // The runtime makes the sandbox's network namespace; Kiln wires it before the runtime reads it.
    const gateDir =
      egress && this.config.egress === "before-start" ? join(runtime.root, "kiln-egress-gate") : undefined;
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
      ...(gateDir ? { createRuntimeHook: egressGateHook(gateDir) } : {}),
      ...(spec.volumes ? { volumes: spec.volumes } : {}),
      hostname: sandboxHostname(spec.id),
      ...withHostFiles(sandboxHostFiles(spec, rootfs)),
    };
    const bundle = join(spec.stateDir, "oci-bundle");
    const perRun = tracedSync("create.bundle", spec.id, () => {
      const run =
        this.config.idmap && !idRangesUnavailable()
          ? idmappedRun(this.config.idmap, bundle, spec.id, input, cgroup, spec.limits)
          : undefined;
      if (!run) writeOciBundle(bundle, input);
      return run;
    });
    writeRuntimeRecord(spec.stateDir, rt);
    const base = ociLauncher(runtime, bundle, spec.id, cgroup.relPath, from?.checkpoint, perRun);
    // Each run of the runtime (a restart after it died too) waits at the gate until its namespace is
    // wired, with the policy the sandbox has then.
    let wired: Promise<void> | undefined;
    const launcher: Launcher = !gateDir
      ? base
      : {
          ...base,
          start: async () => {
            const gate = openEgressGate(gateDir);
            wired = gate
              .pass(async (pid) => {
                const old = parts.network;
                parts.network = await attachEgress(this.tier, spec, pid, { subnet: true });
                old?.close();
              })
              .finally(() => gate.close());
            wired.catch(() => {});
            try {
              const child = await base.start();
              child.once("exit", () => gate.close());
              return child;
            } catch (e) {
              gate.close();
              throw e;
            }
          },
        };
    const parts: AgentInstanceParts = {
      tier: this.tier,
      spec,
      launcher,
      workspace,
      cgroup,
      resumed: from?.checkpoint !== undefined,
      fresh: fresh && from?.checkpoint === undefined,
      networkAtStartOnly: this.config.egress === "before-start",
    };
    try {
      return await AgentInstance.start(parts, signal);
    } catch (e) {
      // A wiring failure fails the hook, then the runtime: report the cause, not the runtime's exit.
      const why = await Promise.race([
        wired?.then(
          () => undefined,
          (w: unknown) => w,
        ),
        new Promise((r) => setTimeout(r, 100)),
      ]);
      parts.network?.close();
      throw why ?? e;
    }
  }

  createFrom(spec: InstanceSpec, dir: string, signal?: AbortSignal): Promise<Instance> {
    return this.start(spec, true, signal, { files: dir });
  }

  saveFiles(spec: InstanceSpec, dir: string): Promise<number> {
    if (this.rootless) return new WorkspaceDir(spec.stateDir).saveTo(WorkspaceDir.saved(dir));
    return saveWorkspace(spec, dir);
  }

  /** Checkpoints the running container (memory and processes) into `dir`, then stops the instance. */
  async suspend(spec: InstanceSpec, instance: Instance, dir: string): Promise<void> {
    if (!this.config.checkpoint) throw new UnsupportedError(`${this.config.binary} does not checkpoint here`);
    const rt = await this.runtimeOf(spec);
    await ociCheckpoint(this.runtime(spec, rt), spec.id, dir);
    writeRuntimeRecord(dir, rt);
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
    if (this.rootless) {
      // The cgroup and workspace go even when the runtime failed to delete its record (then it throws).
      let failed: unknown;
      await this.deleteContainer(spec).catch((e: unknown) => {
        failed = e;
      });
      await rootlessDestroy(spec);
      if (failed) throw failed;
      return;
    }
    const cgroup = new SandboxCgroup(spec.id);
    let failure: unknown;
    await this.deleteContainer(spec).catch((e: unknown) => {
      failure = e;
    });
    cgroup.destroy();
    removeCgroupDirs(cgroup.relPath);
    if (this.config.idmap === "inside" && !failure) {
      for (const rt of await this.installed()) {
        rmSync(runtimeRootOf(rt.stateName, spec.id), { recursive: true, force: true });
      }
    }
    await destroyWorkspace(spec);
    if (failure) throw failure;
  }

  /** Releases what a dead process's instance held: the container's record, its cgroups, the mount. */
  async recover(spec: InstanceSpec, _owner: string, alone: boolean): Promise<void> {
    if (!alone) return;
    await this.deleteContainer(spec).catch(() => {});
    if (this.rootless) return rootlessRelease(spec);
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
