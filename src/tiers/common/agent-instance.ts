/**
 * An Instance whose processes and files are served by the in-sandbox agent,
 * whatever runtime holds it (bwrap, runc, runsc, QEMU). A tier supplies only a
 * {@link Launcher}; this file connects to the agent over the runtime's stdio,
 * maps limits the kernel enforced (OOM kill, pids, a full workspace) to Kiln's
 * limit names, and tears everything down in one place.
 */
import type { ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import type {
  ExitStatus,
  Instance,
  InstanceSpec,
  InstanceStats,
  SpawnedProcess,
  SpawnRequest,
} from "../../core/backend.ts";
import { SandboxStoppedError, TierUnavailableError } from "../../core/errors.ts";
import type { TierName } from "../../core/types.ts";
import { AgentClient, AgentError } from "../../protocol/agent-client.ts";
import { AgentFiles } from "./agent-files.ts";
import type { SandboxCgroup } from "./cgroups.ts";
import type { WorkspaceImage } from "./workspace-image.ts";

/** Starts a tier's runtime with the agent as its entry point. */
export interface Launcher {
  /** Starts the runtime; the child's stdin/stdout must be the agent's. */
  start(): Promise<ChildProcess>;
  /** Removes runtime state left after the child has gone (container records). Idempotent. */
  cleanup(): Promise<void>;
}

/** What an AgentInstance is made of. */
export interface AgentInstanceParts {
  tier: TierName;
  spec: InstanceSpec;
  launcher: Launcher;
  workspace: WorkspaceImage;
  cgroup: SandboxCgroup | undefined;
  /** How long to wait for the agent's HELLO; default 30 s (gVisor on ptrace is slow to start). */
  connectTimeoutMs?: number;
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

  private constructor(parts: AgentInstanceParts) {
    this.parts = parts;
    this.files = new AgentFiles(() => {
      if (this.closed) throw new SandboxStoppedError(this.parts.spec.id);
      return this.client;
    });
  }

  /**
   * Mounts the workspace, starts the runtime and connects to the agent.
   * @throws TierUnavailableError with the runtime's own message when it fails to start
   */
  static async start(parts: AgentInstanceParts, signal?: AbortSignal): Promise<AgentInstance> {
    const inst = new AgentInstance(parts);
    await parts.launcher.cleanup().catch(() => {});
    await parts.workspace.mount();
    inst.child = await parts.launcher.start();
    inst.child.stderr?.on("data", (d: Buffer) => {
      inst.stderrTail = (inst.stderrTail + d.toString("utf8")).slice(-STDERR_KEEP);
    });
    const exited = new Promise<void>((resolve) => inst.child.once("exit", () => resolve()));
    try {
      if (!inst.child.stdout || !inst.child.stdin) throw new Error("runtime started without stdio pipes");
      inst.client = await Promise.race([
        AgentClient.connect(inst.child.stdout, inst.child.stdin, {
          timeoutMs: parts.connectTimeoutMs ?? 30_000,
          ...(signal ? { signal } : {}),
        }),
        exited.then(() => {
          throw new Error("the runtime exited before the agent started");
        }),
      ]);
    } catch (e) {
      await new Promise((r) => setTimeout(r, 50));
      const detail = inst.stderrTail.trim().split("\n").slice(-3).join(" | ");
      await inst.close().catch(() => {});
      throw new TierUnavailableError(
        parts.tier,
        `sandbox did not start: ${(e as Error).message}${detail ? `: ${detail}` : ""}`,
        { cause: e },
      );
    }
    return inst;
  }

  async spawn(req: SpawnRequest): Promise<SpawnedProcess> {
    if (this.closed) throw new SandboxStoppedError(this.parts.spec.id);
    const before = this.counters();
    let proc: SpawnedProcess;
    try {
      proc = await this.client.spawn({ ...req, env: { ...DEFAULT_ENV, ...req.env } });
    } catch (e) {
      if (e instanceof AgentError && e.errno === "ECONNRESET") {
        throw new SandboxStoppedError(this.parts.spec.id, { cause: e });
      }
      throw e;
    }
    const exited = proc.exited.then(
      (s) => this.attributeLimit(s, before),
      (e: unknown): ExitStatus => {
        // The agent went away (the sandbox was stopped or died): report it like a kill.
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
    };
  }

  private counters(): { oom: boolean; pidsMax: number } {
    return { oom: this.parts.cgroup?.oomKilled() ?? false, pidsMax: this.pidsMaxEvents() };
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
  private attributeLimit(s: ExitStatus, before: { oom: boolean; pidsMax: number }): ExitStatus {
    if (s.exitCode === 0 || s.limit) return s;
    const l = this.parts.spec.limits;
    const cg = this.parts.cgroup;
    if (cg && !before.oom && cg.oomKilled()) {
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

  async stats(): Promise<InstanceStats> {
    const out: InstanceStats = {};
    const mem = this.parts.cgroup?.memoryBytes();
    if (mem !== undefined) out.memoryBytes = mem;
    const disk = this.parts.workspace.usedBytes();
    if (disk !== undefined) out.diskBytes = disk;
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.client?.close(1000).catch(() => {});
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) {
      const gone = new Promise((r) => this.child.once("exit", r));
      this.child.kill("SIGKILL");
      await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
    }
    this.parts.cgroup?.destroy();
    await this.parts.launcher.cleanup().catch(() => {});
    await this.parts.workspace.unmount().catch(() => {});
  }
}
