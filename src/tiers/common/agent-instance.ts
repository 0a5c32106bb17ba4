/**
 * An Instance whose processes and files are served by the in-sandbox agent,
 * whatever runtime holds it (bwrap, runc, runsc, QEMU). A tier supplies only a
 * {@link Launcher}; this file connects to the agent over the runtime's stdio,
 * maps limits the kernel enforced (OOM kill, pids, a full workspace) to Kiln's
 * limit names, and tears everything down in one place.
 */
import type { ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import type { Duplex } from "node:stream";
import type {
  ExitStatus,
  Instance,
  InstanceSpec,
  InstanceStats,
  SpawnedProcess,
  SpawnRequest,
} from "../../core/backend.ts";
import { SandboxStoppedError, TierUnavailableError, UnsupportedError } from "../../core/errors.ts";
import { traced } from "../../core/trace.ts";
import type { TierName } from "../../core/types.ts";
import { hasEgress, type NetworkSettings } from "../../network/policy.ts";
import { AgentClient } from "../../protocol/agent-client.ts";
import { kilnErrorFromAgent } from "../../protocol/agent-errors.ts";
import { agentFsFromTree } from "../../workspace/agentfs-exchange.ts";
import { AgentFiles } from "./agent-files.ts";
import type { SandboxCgroup } from "./cgroups.ts";
import { type AttachOptions, attachEgress, type EgressAttachment } from "./egress-netns.ts";
import type { WorkspaceImage } from "./workspace-image.ts";

/** Starts a tier's runtime with the agent as its entry point. */
export interface Launcher {
  /** Starts the runtime; the child's stdin/stdout must be the agent's. */
  start(): Promise<ChildProcess>;
  /** Removes runtime state left after the child has gone (container records). Idempotent. */
  cleanup(): Promise<void>;
  /**
   * A host process id inside the sandbox's network namespace, once the agent
   * answered (for the egress path); absent when the tier gives no egress.
   */
  sandboxPid?(child: ChildProcess): Promise<number | undefined>;
}

/** Limit counters of a guest kernel (a VM's), read through its agent. */
export interface GuestCounters {
  /** OOM kills since the guest booted. */
  oomKills: number;
  /** Forks refused by the sandbox's process limit since the guest booted. */
  pidsMax: number;
}

/**
 * How to read the limits a guest kernel enforces (the microvm tier: memory is
 * the guest's RAM, processes are counted by a cgroup inside the guest), where
 * the host's cgroup of the runtime cannot see them.
 */
export interface GuestLimitReader {
  /** The guest's counters now. */
  counters(agent: AgentClient): Promise<GuestCounters>;
  /** Bytes used and still free in the guest's /workspace, or undefined when unknown. */
  workspaceSpace(agent: AgentClient): Promise<{ usedBytes: number; freeBytes: number } | undefined>;
}

/**
 * A sandbox's /workspace on the host: a loop-mounted image (`WorkspaceImage`), or a plain
 * directory where Kiln cannot mount one (free and used bytes then unknown: no disk limit).
 */
export type Workspace = Pick<WorkspaceImage, "mountPath" | "mount" | "unmount" | "freeBytes" | "usedBytes">;

/** What an AgentInstance is made of. */
export interface AgentInstanceParts {
  tier: TierName;
  spec: InstanceSpec;
  launcher: Launcher;
  workspace: Workspace;
  cgroup: SandboxCgroup | undefined;
  /** How long to wait for the agent's HELLO; default 30 s (gVisor on ptrace is slow to start). */
  connectTimeoutMs?: number;
  /** The egress path, when the tier wired it before the runtime started (gVisor). */
  network?: EgressAttachment;
  /**
   * The runtime reads its network once, at start (gVisor's netstack): a sandbox started
   * without egress cannot be given it while it runs.
   */
  networkAtStartOnly?: boolean;
  /** How the egress path, wired after the runtime started, joins the sandbox's namespace (a VM's tap); default a plain link. */
  networkWiring?: AttachOptions;
  /**
   * The launcher's first start restores a checkpoint: the agent is already
   * running (it greeted an earlier host), so it is pinged instead of awaited.
   */
  resumed?: boolean;
  /**
   * The sandbox is new (its id never ran): its first launch skips the launcher's cleanup of an
   * earlier run (an OCI runtime's `delete` of a stale container, one process start); later
   * launches, after the runtime died, still clean up. Default false.
   */
  fresh?: boolean;
  /** How long the runtime may take to end by itself once its agent's input is closed, ms; default 1000. */
  closeTimeoutMs?: number;
  /**
   * The sandbox keeps a wall clock of its own (a VM's), which stands still while its state is saved:
   * a restored one is set to the host's clock before anything runs in it.
   */
  guestClock?: boolean;
  /**
   * Runs once after the first launch restored the runtime (`resumed`), once its clock is set and
   * before anything else runs in it; a failure fails the start.
   */
  afterRestore?: (agent: AgentClient) => Promise<void>;
  /** The guest kernel's limit counters, for a tier whose sandbox has its own kernel (see {@link GuestLimitReader}). */
  guestLimits?: GuestLimitReader;
}

const STDERR_KEEP = 8192;

/** Environment every command starts with; the sandbox's and the command's own variables override it. */
export const DEFAULT_ENV: Readonly<Record<string, string>> = Object.freeze({
  PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  HOME: "/root",
  LANG: "C.UTF-8",
  TERM: "xterm-256color",
});

/** A live sandbox whose agent runs inside a runtime process. */
export class AgentInstance implements Instance {
  readonly files: AgentFiles;
  private readonly parts: AgentInstanceParts;
  private child!: ChildProcess;
  private client!: AgentClient;
  private stderrTail = "";
  private closed = false;
  private dead = false;
  /**
   * The highest OOM-kill count of the cgroup seen so far. Sampled while commands run, because a
   * runtime that dies of OOM (gVisor's kernel) deletes its cgroup, counter included, before its
   * stdio closes and Kiln learns of the death.
   */
  private oomKillsSeen = 0;
  private running = 0;
  private sampler: NodeJS.Timeout | undefined;

  /** Highest count of memory-limit hits seen (see {@link oomKillsSeen}). */
  private limitHitsSeen = 0;

  /** When memory use was last sampled at 90% or more of the limit (ms since the epoch). */
  private nearLimitAtMs = 0;

  private sampleOom(): number {
    const cg = this.parts.cgroup;
    if (!cg) return 0;
    this.oomKillsSeen = Math.max(this.oomKillsSeen, cg.oomKills());
    this.limitHitsSeen = Math.max(this.limitHitsSeen, cg.memoryLimitHits());
    if ((cg.memoryBytes() ?? 0) >= this.parts.spec.limits.memoryBytes * 0.9) this.nearLimitAtMs = Date.now();
    return this.oomKillsSeen;
  }
  private relaunching: Promise<void> | undefined;

  /** The guest's counters as last read (see {@link GuestLimitReader}). */
  private guestSeen: GuestCounters = { oomKills: 0, pidsMax: 0 };

  private constructor(parts: AgentInstanceParts) {
    this.parts = parts;
    this.files = new AgentFiles(() => this.agent());
  }

  /**
   * Mounts the workspace, starts the runtime and connects to the agent.
   * @throws TierUnavailableError with the runtime's own message when it fails to start
   */
  static async start(parts: AgentInstanceParts, signal?: AbortSignal): Promise<AgentInstance> {
    const inst = new AgentInstance(parts);
    try {
      await inst.launch(signal);
    } catch (e) {
      await inst.close().catch(() => {});
      throw e;
    }
    return inst;
  }

  /** Starts the runtime and connects to its agent (again, after the runtime died). */
  private async launch(signal?: AbortSignal): Promise<void> {
    const parts = this.parts;
    if (parts.fresh) parts.fresh = false;
    else await parts.launcher.cleanup().catch(() => {});
    const id = parts.spec.id;
    await traced("create.mount", id, () => parts.workspace.mount());
    this.stderrTail = "";
    const child = await traced("runtime.spawn", id, () => parts.launcher.start());
    this.child = child;
    child.stderr?.on("data", (d: Buffer) => {
      this.stderrTail = (this.stderrTail + d.toString("utf8")).slice(-STDERR_KEEP);
    });
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    const resumed = parts.resumed === true;
    // Only the first launch restores; a relaunch after the runtime died starts afresh.
    parts.resumed = false;
    try {
      const { stdout, stdin } = child;
      if (!stdout || !stdin) throw new Error("runtime started without stdio pipes");
      this.client = await traced("agent.handshake", id, () =>
        Promise.race([
          (resumed ? AgentClient.reconnect : AgentClient.connect)(stdout, stdin, {
            timeoutMs: parts.connectTimeoutMs ?? 30_000,
            ...(signal ? { signal } : {}),
          }),
          exited.then(() => {
            throw new Error("the runtime exited before the agent started");
          }),
        ]),
      );
    } catch (e) {
      await new Promise((r) => setTimeout(r, 50));
      const detail = this.stderrTail.trim().split("\n").slice(-3).join(" | ");
      child.kill("SIGKILL");
      throw new TierUnavailableError(
        parts.tier,
        `sandbox did not start: ${(e as Error).message}${detail ? `: ${detail}` : ""}`,
        { cause: e },
      );
    }
    // An agent restored before it learnt `clock` keeps its stale clock (ENOSYS): not worth failing the resume for.
    if (resumed && parts.guestClock) await this.client.setClock(Date.now()).catch(() => {});
    if (resumed && parts.afterRestore) {
      try {
        await parts.afterRestore(this.client);
      } catch (e) {
        child.kill("SIGKILL");
        throw new TierUnavailableError(
          parts.tier,
          `the restored sandbox did not start: ${(e as Error).message}`,
          {
            cause: e,
          },
        );
      }
    }
    await this.attachNetwork(child);
    await this.writeNetworkFiles();
    if (parts.guestLimits) {
      this.guestSeen = await parts.guestLimits
        .counters(this.client)
        .catch(() => ({ oomKills: 0, pidsMax: 0 }));
    }
    // The runtime can die under the sandbox (gVisor's kernel OOM-killed, say): the next command relaunches it.
    const client = this.client;
    void client.closed.then(() => {
      this.sampleOom();
      if (!this.closed && this.client === client) this.dead = true;
    });
    this.dead = false;
  }

  /** The sandbox's egress path, when its policy has egress. */
  private network: EgressAttachment | undefined;

  private async attachNetwork(child: ChildProcess): Promise<void> {
    if (this.parts.network) {
      this.network = this.parts.network;
      return;
    }
    this.network?.close();
    this.network = undefined;
    const { spec, tier, launcher } = this.parts;
    if (!spec.network || !hasEgress(spec.network)) return;
    const pid = await launcher.sandboxPid?.(child);
    if (pid === undefined) {
      child.kill("SIGKILL");
      throw new TierUnavailableError(tier, "cannot find the sandbox's network namespace");
    }
    try {
      this.network = await attachEgress(tier, spec, pid, this.parts.networkWiring);
    } catch (e) {
      child.kill("SIGKILL");
      throw e;
    }
  }

  /**
   * Replaces the network policy for new connections. A sandbox started
   * without egress is wired now, unless its runtime reads its network only at
   * start. @throws UnsupportedError (that case), TierUnavailableError (the wiring failed)
   */
  async updateNetwork(settings: NetworkSettings): Promise<void> {
    // One update at a time: two must not both wire a sandbox that had no network.
    const run = this.networkUpdates.then(() => this.applyNetwork(settings));
    this.networkUpdates = run.catch(() => {});
    return run;
  }

  private networkUpdates: Promise<void> = Promise.resolve();

  private async applyNetwork(settings: NetworkSettings): Promise<void> {
    const { spec, tier, launcher } = this.parts;
    const network = this.network ?? this.parts.network;
    if (network) {
      await network.update(settings);
      spec.network = settings;
      await this.writeNetworkFiles();
      return;
    }
    if (!hasEgress(settings)) {
      spec.network = settings;
      return;
    }
    if (this.parts.networkAtStartOnly)
      throw new UnsupportedError(
        `the ${tier} tier reads a sandbox's network when it starts: this sandbox started without egress; create it with a network policy, or pause it without memory and resume it`,
        { tier },
      );
    await this.agent();
    const pid = await launcher.sandboxPid?.(this.child);
    if (pid === undefined)
      throw new TierUnavailableError(tier, "cannot find the sandbox's network namespace");
    this.network = await attachEgress(tier, { ...spec, network: settings }, pid, this.parts.networkWiring);
    spec.network = settings;
    await this.writeNetworkFiles();
  }

  /** Puts the files the egress path asks for (the CA of intercepted TLS) into the sandbox. */
  private async writeNetworkFiles(): Promise<void> {
    const network = this.network ?? this.parts.network;
    for (const f of network?.files ?? []) {
      await this.files.mkdir(f.path.slice(0, f.path.lastIndexOf("/")));
      await this.files.write(f.path, new Blob([f.content]).stream(), 16 * 1024 * 1024);
    }
  }

  /** The live agent, relaunching the runtime first when it died. */
  private async agent(): Promise<AgentClient> {
    if (this.closed) throw new SandboxStoppedError(this.parts.spec.id);
    if (this.dead) {
      this.relaunching ??= (async () => {
        if (this.child && this.child.exitCode === null) this.child.kill("SIGKILL");
        await this.launch();
      })().finally(() => {
        this.relaunching = undefined;
      });
      await this.relaunching;
    }
    return this.client;
  }

  async spawn(req: SpawnRequest): Promise<SpawnedProcess> {
    const agent = await this.agent();
    const before = this.counters();
    const guestBefore = this.guestSeen;
    let proc: SpawnedProcess;
    try {
      proc = await agent.spawn({ ...req, env: { ...DEFAULT_ENV, ...this.network?.env, ...req.env } });
    } catch (e) {
      throw this.agentError(e);
    }
    if (this.running++ === 0 && this.parts.cgroup) {
      this.sampler = setInterval(() => this.sampleOom(), 50);
      this.sampler.unref();
    }
    const done = () => {
      if (--this.running === 0) clearInterval(this.sampler);
    };
    const exited = proc.exited.finally(done).then(
      (s) =>
        this.parts.guestLimits
          ? this.attributeGuestLimit(s, guestBefore, agent)
          : this.attributeLimit(s, before),
      (e: unknown): ExitStatus => {
        // The agent went away: the sandbox was stopped, or its runtime died (the next command relaunches it).
        // A runtime that died while its memory was at the limit died of it (the OOM kill itself can
        // vanish with the cgroup: runsc removes its cgroup before its stdio closes).
        const cg = this.parts.cgroup;
        const diedOfMemory =
          this.sampleOom() > before.oomKills ||
          this.limitHitsSeen > before.limitHits ||
          this.nearLimitAtMs >= before.atMs;
        if (cg && diedOfMemory) {
          const l = this.parts.spec.limits;
          const message =
            "out of memory: the sandbox's memory limit was reached and the sandbox was restarted";
          req.onStderr(Buffer.from(`kiln: ${message}\n`));
          return { exitCode: 137, limit: { limit: "memoryBytes", value: l.memoryBytes, message } };
        }
        req.onStderr(Buffer.from(`kiln: sandbox stopped: ${(e as Error).message}\n`));
        return { exitCode: 137 };
      },
    );
    return {
      pid: proc.pid,
      exited,
      writeStdin: (d) => proc.writeStdin(d),
      closeStdin: () => proc.closeStdin(),
      kill: (sig) => proc.kill(sig),
      ...(proc.resize
        ? {
            resize: async (cols: number, rows: number) => {
              try {
                await proc.resize!(cols, rows);
              } catch (e) {
                throw this.agentError(e);
              }
            },
          }
        : {}),
    };
  }

  /**
   * Before the runtime saves the sandbox while it runs (a VM's migration): every frame the agent
   * wrote so far has arrived, and it writes none until Kiln's next frame to it (see the agent's
   * `hold`), so that no frame is cut in two by the save. An agent without `hold` is let be.
   */
  async holdOutput(): Promise<void> {
    const agent = await this.agent();
    await agent.hold().catch(() => {});
  }

  /** An agent call's failure as a Kiln error (one mapping: protocol/agent-errors.ts). */
  private agentError(e: unknown): unknown {
    return kilnErrorFromAgent(e, { sandboxId: this.parts.spec.id, limits: this.parts.spec.limits });
  }

  private counters(): { oomKills: number; limitHits: number; pidsMax: number; atMs: number } {
    return {
      oomKills: this.sampleOom(),
      limitHits: this.limitHitsSeen,
      pidsMax: this.pidsMaxEvents(),
      atMs: Date.now(),
    };
  }

  private pidsMaxEvents(): number {
    const cg = this.parts.cgroup;
    if (!cg) return 0;
    for (const d of cg.dirs()) {
      try {
        const txt = readFileSync(`${d}/pids.events`, "utf8");
        const m = /max (\d+)/.exec(txt);
        if (m) return Number(m[1]);
      } catch {
        // Not this controller's directory.
      }
    }
    return 0;
  }

  /** Names the limit the kernel enforced while the command ran, if any. */
  private attributeLimit(
    s: ExitStatus,
    before: { oomKills: number; limitHits: number; pidsMax: number; atMs: number },
  ): ExitStatus {
    if (s.exitCode === 0 || s.limit) return s;
    const l = this.parts.spec.limits;
    const cg = this.parts.cgroup;
    if (cg && this.sampleOom() > before.oomKills) {
      return {
        ...s,
        limit: {
          limit: "memoryBytes",
          value: l.memoryBytes,
          message: "out of memory: the sandbox's memory limit was reached",
        },
      };
    }
    if (cg && this.pidsMaxEvents() > before.pidsMax) {
      return { ...s, limit: { limit: "pids", value: l.pids, message: "process limit reached: fork failed" } };
    }
    // ext4 keeps some of the image for itself, so "full" is judged by what is left, not by what is used.
    const free = this.parts.workspace.freeBytes();
    if (free !== undefined && free < Math.max(1024 * 1024, l.diskBytes * 0.02)) {
      return { ...s, limit: { limit: "diskBytes", value: l.diskBytes, message: "workspace is full" } };
    }
    return s;
  }

  /**
   * Names the limit the guest kernel enforced while the command ran, if any. The counters before
   * are the ones last read: they are read again only when a command fails, which is when it matters.
   */
  private async attributeGuestLimit(
    s: ExitStatus,
    before: GuestCounters,
    agent: AgentClient,
  ): Promise<ExitStatus> {
    const reader = this.parts.guestLimits;
    if (s.exitCode === 0 || s.limit || !reader) return s;
    const l = this.parts.spec.limits;
    // A guest still at its process limit has no thread for the agent to read them with: try again
    // while its processes end (a fork bomb's sleeps), for up to 30 s (an emulated guest on a busy
    // host takes well over 10 s to end a bomb's 5-second sleeps).
    let now: GuestCounters | undefined;
    for (let i = 0; i < 60 && !now; i++) {
      now = await reader.counters(agent).catch(() => undefined);
      if (!now && !this.closed) await new Promise((r) => setTimeout(r, 500));
    }
    if (now) {
      this.guestSeen = {
        oomKills: Math.max(now.oomKills, this.guestSeen.oomKills),
        pidsMax: Math.max(now.pidsMax, this.guestSeen.pidsMax),
      };
      if (now.oomKills > before.oomKills) {
        return {
          ...s,
          limit: {
            limit: "memoryBytes",
            value: l.memoryBytes,
            message: "out of memory: the sandbox's memory limit was reached",
          },
        };
      }
      if (now.pidsMax > before.pidsMax) {
        return {
          ...s,
          limit: { limit: "pids", value: l.pids, message: "process limit reached: fork failed" },
        };
      }
    }
    const free = (await reader.workspaceSpace(agent).catch(() => undefined))?.freeBytes;
    if (free !== undefined && free < Math.max(1024 * 1024, l.diskBytes * 0.02)) {
      return { ...s, limit: { limit: "diskBytes", value: l.diskBytes, message: "workspace is full" } };
    }
    return s;
  }

  async connectPort(port: number): Promise<Duplex> {
    const agent = await this.agent();
    try {
      return await agent.connectPort(port);
    } catch (e) {
      throw kilnErrorFromAgent(e, { sandboxId: this.parts.spec.id, port, limits: this.parts.spec.limits });
    }
  }

  /** An AgentFS file of a tar of /workspace (read while commands may run) and the sandbox's audit log. */
  async exportAgentFs(dest: string): Promise<void> {
    if (this.closed) throw new SandboxStoppedError(this.parts.spec.id);
    await agentFsFromTree(this.parts.spec.databasePath, await this.files.exportTar("/workspace"), dest);
  }

  async stats(): Promise<InstanceStats> {
    const out: InstanceStats = {};
    const mem = this.parts.cgroup?.memoryBytes();
    if (mem !== undefined) out.memoryBytes = mem;
    const cpu = this.parts.cgroup?.cpuMs();
    if (cpu !== undefined) out.cpuMs = cpu;
    const guest = this.parts.guestLimits;
    const disk = guest
      ? this.closed || this.dead
        ? undefined
        : (await guest.workspaceSpace(this.client).catch(() => undefined))?.usedBytes
      : this.parts.workspace.usedBytes();
    if (disk !== undefined) out.diskBytes = disk;
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.client?.close(this.parts.closeTimeoutMs ?? 1000).catch(() => {});
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) {
      const gone = new Promise((r) => this.child.once("exit", r));
      this.child.kill("SIGKILL");
      await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
    }
    (this.network ?? this.parts.network)?.close();
    this.parts.cgroup?.destroy();
    await this.parts.launcher.cleanup().catch(() => {});
    await this.parts.workspace.unmount().catch(() => {});
  }
}
