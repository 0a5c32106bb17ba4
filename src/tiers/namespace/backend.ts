/**
 * The `namespace` tier: Linux namespaces, a seccomp filter and cgroups,
 * through bubblewrap. Real binaries from a template, no network, no
 * capabilities; the in-sandbox agent serves commands and files. Run by an
 * ordinary user it makes the namespaces through unprivileged user namespaces,
 * with the limits `common/rootless-parts.ts` says hold.
 */
import { spawn, spawnSync } from "node:child_process";
import type { Backend, Capabilities, Instance, InstanceSpec } from "../../core/backend.ts";
import type { UnenforcedLimit } from "../../core/errors.ts";
import { tracedSync } from "../../core/trace.ts";
import type { TierStatus } from "../../core/types.ts";
import { AgentInstance, type Launcher } from "../common/agent-instance.ts";
import { cgroupMode, SandboxCgroup } from "../common/cgroups.ts";
import { childInOtherNetns, sandboxResolvConf } from "../common/egress-netns.ts";
import { agentBinary, isRoot, which } from "../common/host.ts";
import { sandboxHostFiles, sandboxHostname, withHostFiles } from "../common/host-identity.ts";
import { claimIdRange, idRangesUnavailable } from "../common/id-ranges.ts";
import { IdStage, stagedInput } from "../common/id-stage.ts";
import {
  rootlessDestroy,
  rootlessParts,
  rootlessRelease,
  rootlessUnenforced,
} from "../common/rootless-parts.ts";
import { destroyWorkspace, PoolUsers, releaseParts, saveWorkspace } from "../common/sandbox-parts.ts";
import { seccompBpf } from "../common/seccomp.ts";
import { templateDigest } from "../common/templates.ts";
import { WorkspaceDir } from "../common/workspace-dir.ts";
import { WorkspaceImage } from "../common/workspace-image.ts";
import { type BwrapInput, bwrapArgs, SECCOMP_FD } from "./bwrap-args.ts";

const CAPABILITIES: Capabilities = {
  realBinaries: true,
  interactiveStdin: true,
  pty: true,
  streamingOutput: true,
  processesSurviveRestart: false,
  warmable: true,
  egress: true,
  templates: true,
  pause: "files",
  inboundPorts: true,
  volumes: true,
};

/** The namespace tier's driver. */
export class NamespaceBackend implements Backend {
  readonly tier = "namespace" as const;
  /** Run by an ordinary user (read once: a process does not change its uid). */
  private readonly rootless = !isRoot();
  /** Without root, no egress: wiring a sandbox's network namespace to the host needs root. */
  readonly capabilities: Capabilities = this.rootless ? { ...CAPABILITIES, egress: false } : CAPABILITIES;
  private readonly pools = new PoolUsers();

  async probe(): Promise<TierStatus> {
    const no = (reason: string): TierStatus => ({ tier: "namespace", available: false, reason });
    const bwrap = which("bwrap");
    if (!bwrap) return no("bubblewrap is not installed (apt-get install bubblewrap)");
    const cg = cgroupMode();
    if (!this.rootless) {
      if (cg.mode === "none") return no(cg.reason);
      const img = WorkspaceImage.unavailableReason();
      if (img) return no(img);
    }
    try {
      agentBinary();
    } catch (e) {
      return no((e as Error).message);
    }
    const trial = spawnSync(bwrap, ["--unshare-all", "--unshare-user", "--ro-bind", "/", "/", "--", "true"], {
      encoding: "utf8",
      timeout: 10_000,
    });
    if (trial.status !== 0) return no(`bwrap cannot create namespaces here: ${(trial.stderr ?? "").trim()}`);
    const version = spawnSync(bwrap, ["--version"], { encoding: "utf8" }).stdout.trim();
    if (this.rootless) {
      const unenforced = this.unenforcedLimits();
      const uid = process.getuid?.() ?? -1;
      const held = (["memoryBytes", "pids", "cpuCount", "diskBytes"] as const).filter(
        (l) => !unenforced.some((u) => u.limit === l),
      );
      return {
        tier: "namespace",
        available: true,
        reason:
          `${version}, cgroup ${cg.mode}, ordinary user: sandbox root is host uid ${uid} (this user), no egress; ` +
          `limits held: ${held.length ? held.join(", ") : "none"}; not held: ${unenforced.map((u) => u.limit).join(", ")}`,
        unenforcedLimits: unenforced,
      };
    }
    const ids = idRangesUnavailable();
    return {
      tier: "namespace",
      available: true,
      reason: `${version}, cgroup ${cg.mode}, ${ids ? `sandbox root is host root: ${ids}` : "sandbox ids mapped to a host range of their own"}`,
    };
  }

  /** None as root; as an ordinary user, the disk limit and those its cgroups cannot hold. */
  unenforcedLimits(): UnenforcedLimit[] {
    return this.rootless ? rootlessUnenforced() : [];
  }

  private async start(
    spec: InstanceSpec,
    fresh: boolean,
    signal?: AbortSignal,
    from?: string,
  ): Promise<Instance> {
    const { rootfs, workspace, cgroup } = this.rootless
      ? await rootlessParts(spec, fresh, signal, from)
      : await this.pools.parts(spec, fresh, signal, from);
    if (cgroup) tracedSync("create.cgroup", spec.id, () => cgroup.create(spec.limits));
    const bwrap = which("bwrap")!;
    const resolvConf = sandboxResolvConf(spec, rootfs);
    const input: BwrapInput = {
      rootfs,
      workspace: workspace.mountPath,
      agent: agentBinary(),
      tmpBytes: Math.min(spec.limits.memoryBytes, spec.limits.diskBytes),
      ...(resolvConf ? { resolvConf } : {}),
      hostname: sandboxHostname(spec.id),
      ...withHostFiles(sandboxHostFiles(spec, rootfs)),
      ...(spec.volumes ? { volumes: spec.volumes } : {}),
    };
    let ids: ReturnType<typeof claimIdRange>;
    const rootless = this.rootless;
    const launcher: Launcher = {
      async start() {
        // The sandbox's root is a host id of a range of its own, never host root (where the host gives ranges);
        // run by an ordinary user, bwrap maps it to that user's uid.
        ids = rootless ? undefined : claimIdRange(spec.id);
        let command = [bwrap, ...bwrapArgs(input)];
        if (ids) {
          const stage = new IdStage();
          const staged = stagedInput(input, stage);
          command = stage.command(input.agent, ids.range, "enter", [bwrap, ...bwrapArgs(staged)]);
        }
        // The shell joins the cgroup before it becomes bwrap, so no process escapes the limits.
        const join = cgroup ? `${cgroup.joinScript()} && ` : "";
        const child = spawn("sh", ["-c", `${join}exec "$@"`, "sh", ...command], {
          stdio: ["pipe", "pipe", "pipe", "pipe"],
        });
        const fd3 = child.stdio[SECCOMP_FD] as import("node:net").Socket;
        // bwrap closes the pipe once it has read the program; that reset is expected.
        fd3.on("error", () => {});
        fd3.end(Buffer.from(seccompBpf()));
        return child;
      },
      async cleanup() {
        ids?.release();
        ids = undefined;
      },
      // bwrap's one child (the agent, PID 1 inside) is in the sandbox's namespaces.
      async sandboxPid(child) {
        return child.pid === undefined ? undefined : childInOtherNetns(child.pid);
      },
    };
    return AgentInstance.start({ tier: "namespace", spec, launcher, workspace, cgroup }, signal);
  }

  create(spec: InstanceSpec, signal?: AbortSignal): Promise<Instance> {
    return this.start(spec, true, signal);
  }

  open(spec: InstanceSpec, signal?: AbortSignal): Promise<Instance> {
    return this.start(spec, false, signal);
  }

  createFrom(spec: InstanceSpec, dir: string, signal?: AbortSignal): Promise<Instance> {
    return this.start(spec, true, signal, dir);
  }

  saveFiles(spec: InstanceSpec, dir: string): Promise<number> {
    if (this.rootless) return new WorkspaceDir(spec.stateDir).saveTo(WorkspaceDir.saved(dir));
    return saveWorkspace(spec, dir);
  }

  async close(): Promise<void> {
    await this.pools.drain();
  }

  templateDigest(dataDir: string, template: string): string | undefined {
    return templateDigest(dataDir, template);
  }

  /** Releases what a dead process's instance held (its runtime died with it: bwrap dies with its parent). */
  async recover(spec: InstanceSpec, _owner: string, alone: boolean): Promise<void> {
    if (alone) await (this.rootless ? rootlessRelease(spec) : releaseParts(spec));
  }

  async destroy(spec: InstanceSpec): Promise<void> {
    if (this.rootless) return rootlessDestroy(spec);
    new SandboxCgroup(spec.id).destroy();
    await destroyWorkspace(spec);
  }
}
