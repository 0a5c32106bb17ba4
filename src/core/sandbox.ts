/**
 * A sandbox: one workspace on one tier, with `commands`, `files`, code
 * execution, an audit log and a lifetime. Obtained from `kiln.create` or
 * `kiln.connect`; the same object on every tier.
 */

import type { NetworkOptions, NetworkSettings } from "../network/policy.ts";
import { AuditLog } from "./audit-log.ts";
import type { CloseOptions, Instance, InstanceStats } from "./backend.ts";
import { CodeContexts } from "./code-contexts.ts";
import { type CommandHandle, Commands, type ProcessInfo } from "./commands.ts";
import { checkEnv } from "./env.ts";
import { InvalidArgumentError, SandboxStoppedError, throwIfAborted, UnsupportedError } from "./errors.ts";
import type { CellCallbacks, Execution } from "./execution.ts";
import { Files } from "./files.ts";
import { checkTimeoutMs, MAX_COMMAND_TIMEOUT_MS } from "./limits.ts";
import { sandboxPath } from "./paths.ts";
import { type PortPolicy, Ports } from "./ports.ts";
import type { AuditEntry, NetworkAuditEntry, SandboxInfo, SnapshotInfo, TierName } from "./types.ts";

/** Options of `sandbox.runCode`. */
export interface RunCodeOptions extends CellCallbacks {
  /**
   * Language: `python` (default), `js` (`javascript`) or `bash`; picks the default context of
   * that language, or the language of a context this call creates. Unknown: `invalid_argument`.
   */
  language?: string;
  /** Context id: state persists per context. Default the language's default context; a new id creates one. */
  context?: string;
  /** Working directory of a context this call creates (and of every cell on the virtual tier). */
  cwd?: string;
  /** Extra environment variables for this cell. */
  env?: Record<string, string>;
  /** Wall-time limit in ms; default the sandbox's `limits.timeoutMs`. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** What a Sandbox needs from the Kiln that made it. */
export interface SandboxHost {
  record(id: string): SandboxInfo;
  setLifetime(id: string, lifetimeMs: number): void;
  setPorts(id: string, ports: PortPolicy): void;
  setNetwork(id: string, network: NetworkOptions, signal?: AbortSignal): Promise<NetworkSettings>;
  kill(id: string, signal?: AbortSignal): Promise<void>;
  move(id: string, tier: TierName, signal?: AbortSignal, allowUnenforcedLimits?: boolean): Promise<void>;
  snapshot(id: string, options: SnapshotOptions): Promise<SnapshotInfo>;
  fork(id: string, count: number, signal?: AbortSignal): Promise<Sandbox[]>;
  pause(id: string, signal?: AbortSignal, keepMemory?: boolean): Promise<void>;
  resume(id: string, signal?: AbortSignal): Promise<void>;
  /** A call on the sandbox (its idle time starts again). */
  touch(id: string): void;
  /** Told of every command started in the sandbox. */
  commandStarted(id: string, handle: CommandHandle, info: ProcessInfo): void;
}

/** Options of `sandbox.snapshot`. */
export interface SnapshotOptions {
  /** A name to find it by (1 to 128 characters); default none. */
  name?: string;
  signal?: AbortSignal;
}

/** `sandbox.network`: the sandbox's egress policy (docs/network.md), changeable while it runs. */
export interface SandboxNetwork {
  /** The policy in force. @throws NotFoundError */
  get(options?: { signal?: AbortSignal }): Promise<NetworkSettings>;
  /**
   * Replaces the policy (the whole of it, as `network` at create) for every new
   * connection, request and DNS question on every tier; connections already
   * open stay. Recorded in the network audit log (kind `policy`).
   * @throws InvalidArgumentError (bad rules: nothing changes), UnsupportedError (a tier without
   *   egress; a gVisor sandbox started without egress), NotFoundError
   */
  update(network: NetworkOptions, options?: { signal?: AbortSignal }): Promise<NetworkSettings>;
}

/** A live sandbox. */
export class Sandbox {
  /** Sandbox id. */
  readonly id: string;
  /** Running commands. */
  readonly commands: Commands;
  /** The sandbox's files. */
  readonly files: Files;
  /** Its inbound ports: the policy, and connections to servers running inside. */
  readonly ports: Ports;
  /** Its egress policy, changeable while it runs. */
  readonly network: SandboxNetwork;
  private readonly host: SandboxHost;
  private auditLog: AuditLog | undefined;
  private readonly databasePath: string;
  private instancePromise: Promise<Instance> | undefined;
  private closed = false;

  /** @internal Made by Kiln. */
  constructor(id: string, host: SandboxHost, databasePath: string, instance: () => Promise<Instance>) {
    this.id = id;
    this.host = host;
    this.databasePath = databasePath;
    const getInstance = () => {
      if (this.closed) return Promise.reject(new SandboxStoppedError(id));
      host.touch(id);
      this.instancePromise ??= instance().then((i) => {
        this.liveInstance = i;
        // Starting (or resuming) took time: the idle clock starts again from its end.
        host.touch(id);
        return i;
      });
      this.instancePromise.catch(() => {
        this.instancePromise = undefined;
      });
      return this.instancePromise;
    };
    this.instance = getInstance;
    const defaults = () => {
      const r = this.host.record(id);
      return { cwd: r.cwd, env: r.env, limits: r.limits };
    };
    this.commands = new Commands({
      instance: getInstance,
      defaults,
      audit: () => this.audit(),
      started: (handle, info) => host.commandStarted(id, handle, info),
    });
    this.files = new Files({ ops: async () => (await getInstance()).files, defaults });
    this.ports = new Ports({
      id,
      record: () => this.host.record(id),
      setPolicy: (p) => this.host.setPorts(id, p),
      touch: () => host.touch(id),
      audit: (entry) => {
        if (!this.closed) this.audit().network(entry);
      },
      instance: getInstance,
    });
    this.codeContexts = new CodeContexts({ instance: getInstance, defaults });
    this.network = {
      get: async (options = {}) => {
        throwIfAborted(options.signal);
        return this.host.record(id).network;
      },
      update: async (network, options = {}) => {
        throwIfAborted(options.signal);
        const atMs = Date.now();
        const settings = await this.host.setNetwork(id, network, options.signal);
        if (!this.closed)
          this.audit().network({
            kind: "policy",
            atMs,
            allowed: true,
            rule: describeNetwork(settings),
            bytesUp: 0,
            bytesDown: 0,
            durationMs: Date.now() - atMs,
          });
        return settings;
      },
    };
  }

  /**
   * An address on this machine (`127.0.0.1:NNNNN`) that reaches `port` inside the sandbox
   * (see `ports.getHost`). @throws UnsupportedError on a tier without inbound ports
   */
  getHost(port: number): Promise<string> {
    return this.ports.getHost(port);
  }

  /**
   * The sandbox's code contexts: `create({ language, cwd })`, `list()`, `restart(id)`, `remove(id)`.
   * Each is an interpreter whose state persists between `runCode` cells.
   */
  readonly codeContexts: CodeContexts;

  /** The audit log, opened on first use (after the tier has made the database), through the tier's handle when it has one. */
  private audit(): AuditLog {
    this.auditLog ??= new AuditLog(this.liveInstance?.database ?? this.databasePath);
    return this.auditLog;
  }

  /** The instance once started (set when its promise resolves). */
  private liveInstance: Instance | undefined;

  /** @internal The live instance (started on first use). */
  readonly instance: () => Promise<Instance>;

  /** The sandbox's record. @throws NotFoundError when it was killed */
  async info(options: { signal?: AbortSignal } = {}): Promise<SandboxInfo> {
    throwIfAborted(options.signal);
    return this.host.record(this.id);
  }

  /**
   * Sets the sandbox's lifetime to `lifetimeMs` from now (0: no expiry).
   * @throws NotFoundError, InvalidArgumentError, LimitExceededError (`lifetimeMs`, past the maximum)
   */
  async setLifetime(lifetimeMs: number, options: { signal?: AbortSignal } = {}): Promise<void> {
    throwIfAborted(options.signal);
    this.host.setLifetime(this.id, lifetimeMs);
  }

  /** @deprecated The old name of {@link setLifetime}. */
  async setTimeout(lifetimeMs: number, options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.setLifetime(lifetimeMs, options);
  }

  /** Kills the sandbox: stops its processes and deletes its workspace. */
  async kill(options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.host.kill(this.id, options.signal);
  }

  /**
   * Moves the workspace to another tier, keeping files, modes, symlinks and mtimes;
   * `allowUnenforcedLimits` as at create. @throws UnenforcedLimitsError (a tier lacking a limit here)
   */
  async move(
    tier: TierName,
    options: { signal?: AbortSignal; allowUnenforcedLimits?: boolean } = {},
  ): Promise<void> {
    await this.host.move(this.id, tier, options.signal, options.allowUnenforcedLimits);
  }

  /**
   * Saves the sandbox's files as a snapshot, consistent while it runs;
   * `kiln.create({ snapshot: id })` starts new sandboxes from it.
   * @throws NotFoundError, InvalidArgumentError (name)
   */
  async snapshot(options: SnapshotOptions = {}): Promise<SnapshotInfo> {
    return this.host.snapshot(this.id, options);
  }

  /**
   * Writes an AgentFS file of the sandbox to the host path `dest`: its `/workspace` at the
   * file's root (as AgentFS's own tools show an agent's files), with the key-value store and
   * the audit log. On the virtual tier it is one consistent copy taken while commands run; on
   * the real tiers, the files as a tar of `/workspace` reads them. `dest` is replaced only
   * when complete. @throws UnsupportedError when the tier cannot, SandboxStoppedError
   */
  async exportAgentFs(dest: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    throwIfAborted(options.signal);
    if (typeof dest !== "string" || dest.length === 0 || dest.includes("\0")) {
      throw new InvalidArgumentError("exportAgentFs needs a host path");
    }
    const instance = await this.instance();
    if (!instance.exportAgentFs) throw new UnsupportedError("this tier cannot export an AgentFS file");
    await instance.exportAgentFs(dest);
  }

  /**
   * `count` new sandboxes (1 to 64) that start from this one's files as they
   * are now, each with its own id; their writes are their own.
   * @throws InvalidArgumentError, LimitExceededError (the key's quota: then none is made)
   */
  async fork(count = 1, options: { signal?: AbortSignal } = {}): Promise<Sandbox[]> {
    return this.host.fork(this.id, count, options.signal);
  }

  /**
   * Stops the sandbox keeping its state on disk: its files, and its memory and
   * running processes where the tier's `pause` capability is `memory` (unless
   * `keepMemory` is false). Any
   * later call on it (or `resume`) starts it again. Idempotent.
   */
  async pause(options: { keepMemory?: boolean; signal?: AbortSignal } = {}): Promise<void> {
    await this.host.pause(this.id, options.signal, options.keepMemory);
  }

  /** Starts a paused sandbox again (a no-op when it runs). */
  async resume(options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.host.resume(this.id, options.signal);
  }

  /** Whether the sandbox is still alive. */
  async isRunning(options: { signal?: AbortSignal } = {}): Promise<boolean> {
    throwIfAborted(options.signal);
    try {
      return this.host.record(this.id).state === "running" && !this.closed;
    } catch {
      return false;
    }
  }

  /** The audit log: the newest `limit` commands, oldest first. */
  async logs(options: { limit?: number; signal?: AbortSignal } = {}): Promise<AuditEntry[]> {
    throwIfAborted(options.signal);
    return this.audit().list(options.limit ?? 1000);
  }

  /** The network audit log: the newest `limit` connections, requests and DNS queries, oldest first. */
  async networkLogs(options: { limit?: number; signal?: AbortSignal } = {}): Promise<NetworkAuditEntry[]> {
    throwIfAborted(options.signal);
    return this.audit().listNetwork(options.limit ?? 1000);
  }

  /** Current resource use. */
  async stats(options: { signal?: AbortSignal } = {}): Promise<InstanceStats> {
    throwIfAborted(options.signal);
    return (await this.instance()).stats();
  }

  /**
   * Runs a cell in a code context (a warm interpreter whose state persists between cells) and
   * returns its results, printed output and error, as Jupyter does.
   * @throws InvalidArgumentError (`invalid_argument`: bad code, language, context, cwd, env or
   *   timeoutMs), NotFoundError (no interpreter for the language in this sandbox), UnsupportedError,
   *   CellTimeoutError (`timeout`, with the partial execution), AbortedError
   */
  async runCode(code: string, options: RunCodeOptions = {}): Promise<Execution> {
    throwIfAborted(options.signal);
    if (typeof code !== "string") throw new InvalidArgumentError("code must be a string");
    const rec = this.host.record(this.id);
    const { cwd, env, timeoutMs, ...rest } = options;
    return this.codeContexts.run(code, {
      ...rest,
      cwd: cwd === undefined ? rec.cwd : sandboxPath(cwd, rec.cwd),
      env: checkEnv(env),
      timeoutMs: checkTimeoutMs("timeoutMs", timeoutMs ?? rec.limits.timeoutMs, MAX_COMMAND_TIMEOUT_MS),
    });
  }

  /** @internal Replaces the instance (after a move). */
  swapInstance(next: Promise<Instance>): void {
    // Kernels ran in the old instance; contexts start afresh on the new one.
    void this.codeContexts.closeAll();
    // The audit log may hold the old instance's database handle: reopen it on next use.
    this.auditLog?.close();
    this.auditLog = undefined;
    this.liveInstance = undefined;
    this.instancePromise = next.then((i) => {
      this.liveInstance = i;
      return i;
    });
  }

  /**
   * @internal Detaches the instance (for pause) and returns it, still running:
   * the next call opens the sandbox again. Unless `keepProcesses`, the
   * commands started through this object are killed first.
   */
  async release(keepProcesses: boolean): Promise<Instance | undefined> {
    const inst = this.instancePromise;
    if (!inst) return undefined;
    // At once, so that a call arriving from here on opens the sandbox afresh (after the pause).
    this.instancePromise = undefined;
    this.liveInstance = undefined;
    if (!keepProcesses) await this.commands.killAll();
    this.auditLog?.close();
    this.auditLog = undefined;
    return inst.catch(() => undefined);
  }

  /** @internal Whether an instance has been started. */
  get started(): Promise<Instance> | undefined {
    return this.instancePromise;
  }

  /** Detaches from the sandbox without killing it: background commands end, files stay. */
  async close(): Promise<void> {
    await this.closeInstance({});
  }

  /** @internal Closes it for a kill: its state is deleted next (see {@link Instance.close}). */
  async closeDiscarding(): Promise<void> {
    await this.closeInstance({ discard: true });
  }

  private async closeInstance(options: CloseOptions): Promise<void> {
    if (this.closed) return;
    await this.commands.killAll();
    await this.ports.closeAll();
    await this.codeContexts.closeAll();
    this.closed = true;
    const inst = this.instancePromise;
    this.instancePromise = undefined;
    this.auditLog?.close();
    this.auditLog = undefined;
    if (inst) await (await inst.catch(() => undefined))?.close(options);
  }
}

/** A policy in one line, for the audit log: `egress none; allow a, b; deny c`. */
function describeNetwork(n: NetworkSettings): string {
  const parts = [`egress ${n.egress}`];
  if (n.allow.length) parts.push(`allow ${n.allow.join(", ")}`);
  if (n.deny.length) parts.push(`deny ${n.deny.join(", ")}`);
  return parts.join("; ").slice(0, 4096);
}
