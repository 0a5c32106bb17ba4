/**
 * The `microvm` tier: a whole Linux guest per sandbox on QEMU. Debian's
 * cloud kernel boots straight into Kiln's initramfs, which mounts the
 * template's rootfs image read-only and the sandbox's workspace image (the
 * same ext4 image the other real tiers use) read-write, and becomes the same
 * agent, spoken to over virtio-serial on QEMU's stdio. No host directory is
 * shared into the guest; QEMU runs with its seccomp sandbox in the sandbox's
 * host cgroup (guest RAM plus QEMU's own overhead; CPU).
 */
import { spawn } from "node:child_process";
import { existsSync, rmSync, writeFileSync } from "node:fs";
import { join, posix } from "node:path";
import type { Backend, Capabilities, Instance, InstanceSpec } from "../../core/backend.ts";
import type { TierStatus } from "../../core/types.ts";
import { AgentInstance, type Launcher } from "../common/agent-instance.ts";
import { cgroupMode, SandboxCgroup } from "../common/cgroups.ts";
import { agentBinary, isRoot, run, which } from "../common/host.ts";
import {
  destroyWorkspace,
  PoolUsers,
  savedImage,
  saveWorkspace,
  TEMPORARY,
} from "../common/sandbox-parts.ts";
import { templateDigest } from "../common/templates.ts";
import { WorkspaceImage } from "../common/workspace-image.ts";
import { chooseAccel, hostTscKhz } from "./accel.ts";
import { guestBoot, microvmCacheDir, rootfsImage } from "./guest.ts";
import { GUEST_LIMITS } from "./guest-limits.ts";
import { qemuArgs, TCG_TB_MIB } from "./qemu-args.ts";

const CAPABILITIES: Capabilities = {
  realBinaries: true,
  interactiveStdin: true,
  pty: true,
  streamingOutput: true,
  processesSurviveRestart: false,
  warmable: true,
  egress: false,
  templates: true,
  pause: "files",
  inboundPorts: true,
};

/** The QEMU binary's name on PATH (Debian's qemu-system-x86). */
const QEMU = "qemu-system-x86_64";

/** QEMU's own memory beside the guest's RAM, bytes: its code, the devices, and (TCG) the translation cache. */
export const QEMU_OVERHEAD_BYTES = (96 + TCG_TB_MIB) * 1024 * 1024;

/** Host threads QEMU may use: a few per vCPU, the I/O threads, and the sandbox's limit does not count here (the guest's processes are not host tasks). */
export const QEMU_HOST_PIDS = 64;

/** How long the guest may take from QEMU's start to the agent's greeting, ms (a TCG boot is about 2 s when idle). */
const BOOT_TIMEOUT_MS = 90_000;

/**
 * The workspace image of a guest: the guest mounts it, so the host must not
 * have it mounted at the same time (one ext4 mounted twice is corrupted).
 * Kiln's parts that mount it on the host (a new image, the warm pool) hand it
 * over mounted; `mount` here unmounts it from the host instead.
 */
class GuestWorkspace extends WorkspaceImage {
  override async mount(): Promise<void> {
    await this.unmount();
  }
  override usedBytes(): number | undefined {
    return undefined;
  }
  override freeBytes(): number | undefined {
    return undefined;
  }
}

/** How long a guest may take to end its processes, write its disks out and power off, ms. */
const SHUTDOWN_TIMEOUT_MS = 15_000;

/** A file in the state directory: the guest must remove the temporary files of unfinished writes. */
const SWEEP_MARKER = "sweep-workspace";

/**
 * After the Kiln process that ran a sandbox died: removes, through the new
 * guest's agent, the temporary entries of the writes and imports it left
 * unfinished (every one is stale: no other process runs the sandbox).
 */
async function sweepAfterCrash(spec: InstanceSpec, inst: Instance): Promise<void> {
  const marker = join(spec.stateDir, SWEEP_MARKER);
  if (!existsSync(marker)) return;
  const entries = await inst.files.list("/workspace", 1_000_000);
  for (const e of entries) {
    if (TEMPORARY.test(posix.basename(e.path))) await inst.files.remove(e.path).catch(() => {});
  }
  rmSync(marker, { force: true });
}

/** The microvm tier's driver. */
export class MicrovmBackend implements Backend {
  readonly tier = "microvm" as const;
  readonly capabilities = CAPABILITIES;
  private readonly pools = new PoolUsers();
  /** The running instances of this process, by sandbox id (saveFiles asks their guest to write its disk out). */
  private readonly live = new Map<string, Instance>();

  async probe(): Promise<TierStatus> {
    const no = (reason: string): TierStatus => ({ tier: "microvm", available: false, reason });
    const qemu = which(QEMU);
    if (!qemu) return no(`QEMU is not installed (apt-get install qemu-system-x86)`);
    if (!isRoot()) return no("needs root (cgroup limits and the workspace images)");
    const cg = cgroupMode();
    if (cg.mode === "none") return no(cg.reason);
    const img = WorkspaceImage.unavailableReason();
    if (img) return no(img);
    if (!which("busybox"))
      return no("a static busybox is needed for the guest's init (apt-get install busybox-static)");
    let boot: Awaited<ReturnType<typeof guestBoot>>;
    try {
      boot = await guestBoot(microvmCacheDir(undefined), agentBinary());
    } catch (e) {
      return no(`cannot build the guest kernel and initramfs: ${(e as Error).message}`);
    }
    const accel = await chooseAccel(qemu, boot, microvmCacheDir(undefined));
    const version =
      (await run(qemu, ["--version"]).catch(() => ({ stdout: "" }))).stdout.split("\n")[0] ?? "QEMU";
    return {
      tier: "microvm",
      available: true,
      ...(accel.accel === "tcg" ? { emulated: true } : {}),
      reason: `${version.replace(/^QEMU emulator /, "QEMU ")}, accel ${accel.accel} (${accel.reason}), guest kernel ${boot.version}, cgroup ${cg.mode}`,
    };
  }

  private async start(
    spec: InstanceSpec,
    fresh: boolean,
    signal?: AbortSignal,
    from?: string,
  ): Promise<Instance> {
    // A saved image (a snapshot, a fork) is copied, never mounted on the host: a guest wrote it.
    const { rootfs, cgroup } = await this.pools.parts(spec, fresh && from === undefined, signal);
    const qemu = which(QEMU);
    if (!qemu) throw new Error("QEMU is not installed");
    const cache = microvmCacheDir(spec.dataDir);
    const [boot, image] = await Promise.all([guestBoot(cache, agentBinary()), rootfsImage(cache, rootfs)]);
    const accel = await chooseAccel(qemu, boot, cache);
    const workspace = new GuestWorkspace(spec.stateDir);
    if (from !== undefined) await workspace.createFrom(savedImage(from));
    const l = spec.limits;
    const vcpus = Math.max(1, Math.ceil(l.cpuCount));
    // The guest's RAM is the sandbox's memory limit; the host cgroup holds QEMU to it plus QEMU's own needs.
    cgroup.create({
      ...l,
      memoryBytes: l.memoryBytes + QEMU_OVERHEAD_BYTES,
      pids: QEMU_HOST_PIDS + 4 * vcpus,
    });
    const tscKhz = hostTscKhz();
    const args = qemuArgs({
      accel: accel.accel,
      cpu: accel.cpu,
      kernel: boot.kernel,
      initramfs: boot.initramfs,
      rootfsImage: image,
      workspaceImage: workspace.imagePath,
      memoryBytes: l.memoryBytes,
      vcpus,
      pids: l.pids,
      ...(tscKhz ? { tscKhz } : {}),
      name: spec.id,
    });
    const launcher: Launcher = {
      async start() {
        // The shell joins the cgroup before it becomes QEMU, so QEMU's every thread is held by the limits.
        // fd 3 carries the guest's console; it joins QEMU's stderr on the host side.
        const child = spawn("sh", ["-c", `${cgroup.joinScript()} && exec "$@"`, "sh", qemu, ...args], {
          stdio: ["pipe", "pipe", "pipe", "pipe"],
        });
        const console = child.stdio[3] as import("node:net").Socket | null;
        console?.on("data", (d: Buffer) => child.stderr?.emit("data", d));
        console?.on("error", () => {});
        return child;
      },
      async cleanup() {},
    };
    const inst = await AgentInstance.start(
      {
        tier: "microvm",
        spec,
        launcher,
        workspace,
        cgroup,
        connectTimeoutMs: BOOT_TIMEOUT_MS,
        closeTimeoutMs: SHUTDOWN_TIMEOUT_MS,
        guestLimits: GUEST_LIMITS,
      },
      signal,
    );
    await sweepAfterCrash(spec, inst);
    this.live.set(spec.id, inst);
    const close = inst.close.bind(inst);
    inst.close = async () => {
      if (this.live.get(spec.id) === inst) this.live.delete(spec.id);
      await close();
    };
    return inst;
  }

  /**
   * Has a running guest write its workspace's dirty data to the image (syncfs), so that a copy of
   * the image taken now holds every write that completed before.
   */
  private async syncGuest(id: string): Promise<void> {
    const inst = this.live.get(id);
    if (!inst) return;
    const proc = await inst.spawn({
      command: "exec sync -f /workspace",
      cwd: "/",
      env: {},
      stdin: undefined,
      onStdout: () => {},
      onStderr: () => {},
    });
    await proc.exited;
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

  async saveFiles(spec: InstanceSpec, dir: string): Promise<number> {
    await this.syncGuest(spec.id);
    return saveWorkspace(spec, dir);
  }

  async close(): Promise<void> {
    await this.pools.drain();
  }

  templateDigest(dataDir: string, template: string): string | undefined {
    return templateDigest(dataDir, template);
  }

  /**
   * Releases what a dead process's instance held: its cgroup (destroying it ends QEMU, should
   * QEMU still run). The temporary files of writes it left unfinished are removed by the guest at
   * the next start (the host never mounts an image a guest wrote).
   */
  async recover(spec: InstanceSpec, _owner: string, alone: boolean): Promise<void> {
    if (!alone) return;
    new SandboxCgroup(spec.id).destroy();
    const workspace = new WorkspaceImage(spec.stateDir);
    await workspace.unmount();
    if (existsSync(workspace.imagePath)) writeFileSync(join(spec.stateDir, SWEEP_MARKER), "");
  }

  async destroy(spec: InstanceSpec): Promise<void> {
    new SandboxCgroup(spec.id).destroy();
    await destroyWorkspace(spec);
  }
}
