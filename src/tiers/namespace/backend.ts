/**
 * The `namespace` tier: Linux namespaces, a seccomp filter and cgroups,
 * through bubblewrap. Real binaries from a template, no network, no
 * capabilities; the in-sandbox agent serves commands and files.
 */
import { spawn, spawnSync } from "node:child_process";
import type { Backend, Capabilities, Instance, InstanceSpec } from "../../core/backend.ts";
import { tracedSync } from "../../core/trace.ts";
import type { TierStatus } from "../../core/types.ts";
import { AgentInstance, type Launcher } from "../common/agent-instance.ts";
import { cgroupMode, SandboxCgroup } from "../common/cgroups.ts";
import { childInOtherNetns, sandboxResolvConf } from "../common/egress-netns.ts";
import { agentBinary, isRoot, which } from "../common/host.ts";
import { sandboxHostFiles, sandboxHostname, withHostFiles } from "../common/host-identity.ts";
import { claimIdRange, idRangesUnavailable } from "../common/id-ranges.ts";
import { IdStage } from "../common/id-stage.ts";
import { destroyWorkspace, PoolUsers, releaseParts, saveWorkspace } from "../common/sandbox-parts.ts";
import { seccompBpf } from "../common/seccomp.ts";
import { templateDigest } from "../common/templates.ts";
import { WorkspaceImage } from "../common/workspace-image.ts";
import { type BwrapInput, bwrapArgs, SECCOMP_FD, stagedInput } from "./bwrap-args.ts";

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
  readonly capabilities = CAPABILITIES;
  private readonly pools = new PoolUsers();

  async probe(): Promise<TierStatus> {
    const no = (reason: string): TierStatus => ({ tier: "namespace", available: false, reason });
    const bwrap = which("bwrap");
    if (!bwrap) return no("bubblewrap is not installed (apt-get install bubblewrap)");
    if (!isRoot()) return no("needs root (cgroup limits and the workspace image mount)");
    const cg = cgroupMode();
    if (cg.mode === "none") return no(cg.reason);
    const img = WorkspaceImage.unavailableReason();
    if (img) return no(img);
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
    const ids = idRangesUnavailable();
    return {
      tier: "namespace",
      available: true,
      reason: `${version}, cgroup ${cg.mode}, ${ids ? `sandbox root is host root: ${ids}` : "sandbox ids mapped to a host range of their own"}`,
    };
  }

  private async start(
    spec: InstanceSpec,
    fresh: boolean,
    signal?: AbortSignal,
    from?: string,
  ): Promise<Instance> {
    const { rootfs, workspace, cgroup } = await this.pools.parts(spec, fresh, signal, from);
    tracedSync("create.cgroup", spec.id, () => cgroup.create(spec.limits));
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
    const launcher: Launcher = {
      async start() {
        // The sandbox's root is a host id of a range of its own, never host root (where the host gives ranges).
        ids = claimIdRange(spec.id);
        let command = [bwrap, ...bwrapArgs(input)];
        if (ids) {
          const stage = new IdStage();
          const staged = stagedInput(input, stage);
          command = stage.command(input.agent, ids.range, "enter", [bwrap, ...bwrapArgs(staged)]);
        }
        // The shell joins the cgroup before it becomes bwrap, so no process escapes the limits.
        const child = spawn("sh", ["-c", `${cgroup.joinScript()} && exec "$@"`, "sh", ...command], {
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
    if (alone) await releaseParts(spec);
  }

  async destroy(spec: InstanceSpec): Promise<void> {
    new SandboxCgroup(spec.id).destroy();
    await destroyWorkspace(spec);
  }
}
