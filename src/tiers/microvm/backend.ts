/**
 * The `microvm` tier: a whole Linux guest per sandbox on QEMU. Debian's
 * cloud kernel boots straight into Kiln's initramfs, which mounts the
 * template's rootfs image read-only and the sandbox's workspace image (the
 * same ext4 image the other real tiers use) read-write, and becomes the same
 * agent, spoken to over virtio-serial on QEMU's stdio. No host directory is
 * shared into the guest; QEMU runs with its seccomp sandbox, as root of a user
 * namespace mapped to the sandbox's own range of host ids (qemu-ids.ts; host
 * root under KVM or where the host has no ranges), in the sandbox's
 * host cgroup (guest RAM plus QEMU's own overhead; CPU), in a network
 * namespace of its own that holds nothing but, for a sandbox with egress, the
 * tap device of the guest's network card: Kiln's egress path bridges it to
 * its private namespace (src/tiers/common/egress-netns.ts), so the guest holds
 * the sandbox's address and its only way out is that path.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, posix } from "node:path";
import type { Duplex } from "node:stream";
import type { Backend, Capabilities, Instance, InstanceSpec } from "../../core/backend.ts";
import { KilnError } from "../../core/errors.ts";
import type { TierStatus } from "../../core/types.ts";
import { hasEgress } from "../../network/policy.ts";
import { AgentInstance, type Launcher } from "../common/agent-instance.ts";
import { cgroupMode, SandboxCgroup } from "../common/cgroups.ts";
import { GATEWAY, SANDBOX_ADDRESS } from "../common/egress-netns.ts";
import { agentBinary, isRoot, run, which } from "../common/host.ts";
import { sandboxHostname } from "../common/host-identity.ts";
import { claimIdRange } from "../common/id-ranges.ts";
import {
  destroyWorkspace,
  PoolUsers,
  savedImage,
  saveWorkspace,
  TEMPORARY,
} from "../common/sandbox-parts.ts";
import { templateDigest } from "../common/templates.ts";
import { WorkspaceImage } from "../common/workspace-image.ts";
import { poolFor } from "../common/workspace-pool.ts";
import { chooseAccel, hostTscKhz } from "./accel.ts";
import {
  type BootState,
  beginBootState,
  bootStateKey,
  builderId,
  dropBootState,
  findBootState,
} from "./boot-state.ts";
import { guestBoot, microvmCacheDir, rootfsImage } from "./guest.ts";
import { GUEST_LIMITS } from "./guest-limits.ts";
import { type GuestNetwork, hasNetworkCard, qemuArgs, TCG_TB_MIB, withBootFiles } from "./qemu-args.ts";
import { mappedQemu, qemuIdsUnavailable } from "./qemu-ids.ts";
import { Qmp } from "./qmp.ts";
import {
  finishIncoming,
  INCOMING_FD,
  letOrphanEnd,
  recoverySocket,
  saveVmState,
  socketDir,
  VM_ARGS_FILE,
  VM_STATE_FILE,
} from "./vm-state.ts";

const CAPABILITIES: Capabilities = {
  realBinaries: true,
  interactiveStdin: true,
  pty: true,
  streamingOutput: true,
  processesSurviveRestart: false,
  warmable: true,
  egress: true,
  templates: true,
  pause: "memory",
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
 * A file in the state directory, written just before a restored guest runs on and removed when a
 * new state is saved: while it exists, the workspace image may hold writes the saved state does not
 * know of (a resume that failed after the guest ran), and restoring that state would corrupt the
 * guest's filesystem. Such a resume boots the guest afresh instead.
 */
const CONTINUED_MARKER = "vm-continued";

/** The guest's network card, given to a sandbox that has egress when it boots (and to its boot state). */
const GUEST_NETWORK: GuestNetwork = { tap: "tap0", address: SANDBOX_ADDRESS, gateway: GATEWAY };

/** The fd QEMU speaks QMP on (0-2 stdio, 3 the console). */
const QMP_FD = 4;

/** How long the guest may take to write its disk out before a pause or a copy, ms (TCG, a loaded host). */
const SYNC_TIMEOUT_MS = 60_000;

/** How long saving or loading a VM's state may take, ms (TCG, a loaded host: seconds per hundred MiB). */
const STATE_TIMEOUT_MS = 120_000;

/**
 * Whether creates may restore a saved boot state (boot-state.ts); `KILN_MICROVM_BOOT_STATE=off`
 * makes every create boot cold (the benchmark's cold numbers), read at each create.
 */
function bootStatesOn(): boolean {
  return process.env.KILN_MICROVM_BOOT_STATE !== "off";
}

/** How a create starts its VM. */
interface StartOptions {
  /** May restore (or, when there is none yet, have built) a saved boot state; default true. */
  bootState?: boolean;
  /** Boots the guest with a network card even without egress (the boot state of sandboxes with egress); default false. */
  card?: boolean;
}

/** A running VM of this process: its QEMU, the QMP connection to it, and its command line. */
interface LiveVm {
  child: ChildProcess;
  qmp: Qmp;
  args: string[];
  /** The state directory's socket folder as QEMU sees it, when staged (QEMU runs as the sandbox's ids). */
  socketDir?: string;
}

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
  private readonly live = new Map<string, AgentInstance>();
  /** The QEMU of each running instance, by sandbox id (suspend saves it). */
  private readonly vms = new Map<string, LiveVm>();
  /** Boot states being built in the background, by key. */
  private readonly building = new Map<string, Promise<void>>();
  /** Set when the driver closes: no build starts after it. */
  private closing = false;

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
    const ids = qemuIdsUnavailable(accel.accel);
    return {
      tier: "microvm",
      available: true,
      ...(accel.accel === "tcg" ? { emulated: true } : {}),
      reason: `${version.replace(/^QEMU emulator /, "QEMU ")}, accel ${accel.accel} (${accel.reason}), guest kernel ${boot.version}, cgroup ${cg.mode}, ${ids ? `QEMU runs as host root: ${ids}` : "QEMU runs as host ids of a range of the sandbox's own"}`,
    };
  }

  private async start(
    spec: InstanceSpec,
    fresh: boolean,
    signal?: AbortSignal,
    from?: string,
    saved?: string,
    opts: StartOptions = {},
  ): Promise<Instance> {
    const empty = fresh && from === undefined;
    // A saved image (a snapshot, a fork) is copied, never mounted on the host: a guest wrote it.
    const { rootfs, cgroup } = await this.pools.parts(spec, false, signal);
    const qemu = which(QEMU);
    if (!qemu) throw new Error("QEMU is not installed");
    const cache = microvmCacheDir(spec.dataDir);
    const [boot, image] = await Promise.all([guestBoot(cache, agentBinary()), rootfsImage(cache, rootfs)]);
    const accel = await chooseAccel(qemu, boot, cache);
    const workspace = new GuestWorkspace(spec.stateDir);
    const l = spec.limits;
    const vcpus = Math.max(1, Math.ceil(l.cpuCount));
    const tscKhz = hostTscKhz();
    const machine = {
      accel: accel.accel,
      cpu: accel.cpu,
      kernel: boot.kernel,
      initramfs: boot.initramfs,
      rootfsImage: image,
      memoryBytes: l.memoryBytes,
      vcpus,
      ...(tscKhz ? { tscKhz } : {}),
    };
    const egress = spec.network !== undefined && hasEgress(spec.network);
    // A guest with egress has a network card from its boot: QEMU restores a state only into the same devices.
    const card = egress || opts.card === true ? { network: GUEST_NETWORK } : {};
    // A new, empty sandbox starts from the saved boot state of its machine (its card included) when there is one.
    const stateKey =
      empty && opts.bootState !== false && bootStatesOn()
        ? bootStateKey({ ...machine, ...card }, l.diskBytes, qemu)
        : undefined;
    let restore: BootState | undefined = stateKey === undefined ? undefined : findBootState(cache, stateKey);
    if (restore) {
      // A state removed meanwhile (another process found it outdated or broken) is no reason to fail.
      await workspace.createFrom(restore.workspace).catch(async () => {
        restore = undefined;
        await workspace.destroy();
      });
    }
    if (from !== undefined) await workspace.createFrom(savedImage(from));
    else if (empty && !restore)
      await new WorkspaceImage(spec.stateDir).create(l.diskBytes, poolFor(spec.dataDir));
    // The guest's RAM is the sandbox's memory limit; the host cgroup holds QEMU to it plus QEMU's own needs.
    cgroup.create({
      ...l,
      memoryBytes: l.memoryBytes + QEMU_OVERHEAD_BYTES,
      pids: QEMU_HOST_PIDS + 4 * vcpus,
    });
    // A saved VM is loaded into a QEMU with its very command line (the same devices, RAM and CPU model).
    let incoming = saved === undefined ? restore?.vmState : join(saved, VM_STATE_FILE);
    if (saved !== undefined && existsSync(join(spec.stateDir, CONTINUED_MARKER))) incoming = undefined;
    let savedArgs =
      incoming === undefined || saved === undefined
        ? undefined
        : withBootFiles(
            (JSON.parse(readFileSync(join(saved!, VM_ARGS_FILE), "utf8")) as { args: string[] }).args,
            boot,
            existsSync,
          );
    // A guest saved without a network card cannot be given one: given egress while paused, it boots afresh.
    if (savedArgs !== undefined && egress && !hasNetworkCard(savedArgs)) {
      savedArgs = undefined;
      incoming = undefined;
    }
    const args =
      savedArgs ??
      qemuArgs({
        ...machine,
        workspaceImage: workspace.imagePath,
        pids: l.pids,
        name: spec.id,
        hostname: sandboxHostname(spec.id),
        ...card,
        qmpFd: QMP_FD,
        ...(recoverySocket(spec.stateDir) ? { qmpSocket: recoverySocket(spec.stateDir) } : {}),
      });
    const nic = hasNetworkCard(args);
    const buildOpts = { card: "network" in card };
    const vms = this.vms;
    const stateDir = spec.stateDir;
    // QEMU runs as the sandbox's range of host ids where it can (qemu-ids.ts), decided per host.
    const mapIds = qemuIdsUnavailable(accel.accel) === undefined;
    let ids: ReturnType<typeof claimIdRange>;
    const launcher: Launcher = {
      async start() {
        // Only the first start loads the saved state; a relaunch after QEMU died boots afresh.
        const load = incoming;
        incoming = undefined;
        // QEMU gets a network namespace of its own (its process id stays the same through every exec):
        // the host's interfaces are never in its reach, and its tap device goes when it ends.
        const argv = load === undefined ? args : [...args, "-incoming", `fd:${INCOMING_FD}`];
        const tail = ["unshare", "--net", "--", qemu, ...argv];
        let command = tail;
        let qemuSockets: string | undefined;
        mkdirSync(socketDir(stateDir), { recursive: true, mode: 0o700 });
        ids?.release();
        ids = mapIds ? claimIdRange(spec.id) : undefined;
        const claim = ids;
        if (claim) {
          const m = mappedQemu(agentBinary(), claim.range, socketDir(stateDir), tail, 4);
          command = m.command;
          qemuSockets = m.socketDir;
        }
        let fd: number | undefined;
        let child: ChildProcess;
        try {
          fd = load === undefined ? undefined : openSync(load, "r");
          // The shell joins the cgroup (as host root) before it becomes QEMU, so QEMU's every thread
          // is held by the limits. fd 3 carries the guest's console; it joins QEMU's stderr on the
          // host side. fd 4 is QMP.
          child = spawn("sh", ["-c", `${cgroup.joinScript()} && exec "$@"`, "sh", ...command], {
            stdio: ["pipe", "pipe", "pipe", "pipe", "pipe", fd ?? "ignore"],
          });
        } catch (e) {
          claim?.release();
          throw e;
        } finally {
          if (fd !== undefined) closeSync(fd);
        }
        // The range is free again once QEMU is gone (it starts no process of its own).
        child.once("exit", () => claim?.release());
        child.once("error", () => claim?.release());
        const console = child.stdio[3] as import("node:net").Socket | null;
        console?.on("data", (d: Buffer) => child.stderr?.emit("data", d));
        console?.on("error", () => {});
        try {
          const qmp = await Qmp.open(child.stdio[4] as Duplex);
          vms.set(spec.id, { child, qmp, args, ...(qemuSockets ? { socketDir: qemuSockets } : {}) });
          if (load !== undefined) {
            await finishIncoming(qmp, child, STATE_TIMEOUT_MS);
            writeFileSync(join(stateDir, CONTINUED_MARKER), "");
          }
        } catch (e) {
          child.kill("SIGKILL");
          throw e;
        }
        return child;
      },
      async cleanup() {
        ids?.release();
        ids = undefined;
      },
      // QEMU's own namespace holds the tap of the guest's card; without a card there is nothing to wire.
      sandboxPid: async (child) => (nic ? child.pid : undefined),
    };
    let inst: AgentInstance;
    try {
      inst = await AgentInstance.start(
        {
          tier: "microvm",
          spec,
          launcher,
          workspace,
          cgroup,
          connectTimeoutMs: BOOT_TIMEOUT_MS,
          closeTimeoutMs: SHUTDOWN_TIMEOUT_MS,
          guestLimits: GUEST_LIMITS,
          resumed: (saved !== undefined && savedArgs !== undefined) || restore !== undefined,
          guestClock: true,
          // A guest booted without a network card is given no network until it boots again.
          networkAtStartOnly: !nic,
          networkWiring: { tap: GUEST_NETWORK.tap },
          // A guest restored from a boot state shared by other sandboxes is made this one's own.
          ...(restore
            ? {
                afterRestore: (agent) => agent.adopt(sandboxHostname(spec.id), l.pids, randomBytes(64)),
              }
            : {}),
        },
        signal,
      );
    } catch (e) {
      if (!restore || stateKey === undefined || signal?.aborted) throw e;
      // The cache never fails a create: the state that did not load is dropped (and built again), and the guest boots cold.
      dropBootState(cache, stateKey);
      cgroup.destroy();
      await new WorkspaceImage(spec.stateDir).destroy();
      const cold = await this.start(spec, fresh, signal, from, saved, { bootState: false });
      this.buildBootState(spec, cache, stateKey, [boot.kernel, boot.initramfs, image], buildOpts);
      return cold;
    }
    if (stateKey !== undefined && !restore)
      this.buildBootState(spec, cache, stateKey, [boot.kernel, boot.initramfs, image], buildOpts);
    await sweepAfterCrash(spec, inst);
    this.live.set(spec.id, inst);
    const close = inst.close.bind(inst);
    inst.close = async () => {
      if (this.live.get(spec.id) === inst) {
        this.live.delete(spec.id);
        this.vms.get(spec.id)?.qmp.close();
        this.vms.delete(spec.id);
      }
      await close();
    };
    return inst;
  }

  /**
   * Builds the boot state `key` in the background, unless it is being built: a VM like `spec`'s
   * (its template and machine limits, and a network card for sandboxes with egress) boots, idles,
   * and is saved with its empty workspace image.
   * A build that fails leaves nothing; the next cold create of the same machine tries again.
   */
  private buildBootState(
    spec: InstanceSpec,
    cache: string,
    key: string,
    uses: string[],
    opts: { card: boolean },
  ): void {
    if (this.building.has(key) || this.closing) return;
    const run = async () => {
      const build = beginBootState(cache, key, uses);
      mkdirSync(build.dir, { recursive: true, mode: 0o700 });
      const id = builderId(key);
      const { network: _n, volumes: _v, buildTemplate: _b, ...rest } = spec;
      const builder: InstanceSpec = { ...rest, id, stateDir: build.dir, env: {} };
      let bootId = "";
      try {
        const inst = await this.start(builder, true, undefined, undefined, undefined, {
          bootState: false,
          card: opts.card,
        });
        try {
          // The kernel makes its boot id at the first read: made now, it is the same in every
          // sandbox restored from this state (the sign that a sandbox was restored, not booted).
          bootId = (await this.runInGuest(id, "exec cat /proc/sys/kernel/random/boot_id")).trim();
          await this.suspend(builder, inst, build.dir);
        } catch (e) {
          await inst.close().catch(() => {});
          throw e;
        }
        build.commit(new WorkspaceImage(build.dir).imagePath, bootId);
      } catch {
        build.discard();
      } finally {
        new SandboxCgroup(id).destroy();
      }
    };
    const p = run().finally(() => this.building.delete(key));
    this.building.set(key, p);
  }

  /**
   * Waits for the boot states being built in the background (tests and benchmarks wait for the
   * fast path this way; a create never does).
   */
  async bootStatesBuilt(): Promise<void> {
    while (this.building.size > 0) await Promise.allSettled([...this.building.values()]);
  }

  /**
   * Has a running guest write its workspace's dirty data to the image (syncfs), so that a copy of
   * the image taken now holds every write that completed before.
   */
  private async syncGuest(id: string): Promise<void> {
    await this.runInGuest(id, "exec sync -f /workspace", SYNC_TIMEOUT_MS);
  }

  /**
   * Runs `command` in a running guest of this process; resolves with its standard output.
   * @throws KilnError `internal` when it has not ended within `timeoutMs` (it is killed)
   */
  private async runInGuest(id: string, command: string, timeoutMs = SYNC_TIMEOUT_MS): Promise<string> {
    const inst = this.live.get(id);
    if (!inst) return "";
    const out: Buffer[] = [];
    const proc = await inst.spawn({
      command,
      cwd: "/",
      env: {},
      stdin: undefined,
      onStdout: (c) => out.push(Buffer.from(c)),
      onStderr: () => {},
    });
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<"late">((r) => (timer = setTimeout(() => r("late"), timeoutMs)));
    try {
      if ((await Promise.race([proc.exited, late])) === "late") {
        await proc.kill().catch(() => {});
        throw new KilnError("internal", `the guest did not finish \`${command}\` within ${timeoutMs} ms`);
      }
    } finally {
      clearTimeout(timer);
    }
    return Buffer.concat(out).toString("utf8");
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

  /**
   * Saves the running VM (memory, processes, devices) into `dir` and ends it; its workspace image
   * stays in the state directory, written out by QEMU. When saving fails the guest runs on.
   * @throws KilnError `internal` (no VM of this process runs the sandbox; QEMU's migration failed)
   */
  async suspend(spec: InstanceSpec, instance: Instance, dir: string): Promise<void> {
    const vm = this.vms.get(spec.id);
    if (!vm || this.live.get(spec.id) !== instance)
      throw new KilnError("internal", `no VM of this process runs sandbox ${spec.id}`);
    // The guest writes its disk out first: should Kiln die before the pause is recorded, the next
    // Kiln boots the guest afresh on its workspace image, and must find every write there. This
    // round trip also means the agent has read every byte sent to it before: none is left in QEMU.
    await this.syncGuest(spec.id);
    const live = this.live.get(spec.id);
    await live?.holdOutput();
    try {
      await saveVmState(vm.qmp, spec.stateDir, join(dir, VM_STATE_FILE), STATE_TIMEOUT_MS, vm.socketDir);
      writeFileSync(join(dir, VM_ARGS_FILE), JSON.stringify({ args: vm.args }));
    } catch (e) {
      await vm.qmp.execute("cont").catch(() => {});
      throw new KilnError("internal", `cannot save the VM: ${(e as Error).message}`, { cause: e });
    }
    // The guest stays stopped from here: QEMU ends without it seeing its input close.
    const gone = new Promise((r) => vm.child.once("exit", r));
    await vm.qmp.execute("quit").catch(() => {});
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([gone, new Promise((r) => (timer = setTimeout(r, 5000)))]);
    clearTimeout(timer);
    // A QEMU that outlived the pause would be let run by the next Kiln's recovery.
    if (vm.child.exitCode === null && vm.child.signalCode === null) vm.child.kill("SIGKILL");
    rmSync(join(spec.stateDir, CONTINUED_MARKER), { force: true });
    await instance.close();
  }

  /**
   * Starts the VM saved in `dir` again: its processes run on. When a resume of this state already
   * let the guest run and then failed, the guest boots afresh on its workspace instead (restoring
   * the state over a disk it wrote since would corrupt its filesystem).
   */
  resume(spec: InstanceSpec, dir: string, signal?: AbortSignal): Promise<Instance> {
    return this.start(spec, false, signal, undefined, dir);
  }

  async saveFiles(spec: InstanceSpec, dir: string): Promise<number> {
    await this.syncGuest(spec.id);
    return saveWorkspace(spec, dir);
  }

  /**
   * Closes the driver once the boot states under way are saved (a few seconds of one VM's boot
   * at most): a short-lived process, `kiln run` say, would otherwise never leave one behind, and
   * every one of its creates would boot cold.
   */
  async close(): Promise<void> {
    this.closing = true;
    await this.bootStatesBuilt();
    await this.pools.drain();
  }

  templateDigest(dataDir: string, template: string): string | undefined {
    return templateDigest(dataDir, template);
  }

  /**
   * Releases what a dead process's instance held: its QEMU, let end by itself first (see
   * letOrphanEnd: the guest writes its disk out), then its cgroup (destroying it ends QEMU, should
   * QEMU still run). The temporary files of writes it left unfinished are removed by the guest at
   * the next start (the host never mounts an image a guest wrote).
   */
  async recover(spec: InstanceSpec, _owner: string, alone: boolean): Promise<void> {
    if (!alone) return;
    await letOrphanEnd(spec.stateDir, join(spec.stateDir, CONTINUED_MARKER), SHUTDOWN_TIMEOUT_MS);
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
