/**
 * `sandbox.commands`: running commands on any tier. Timeouts, the output cap,
 * the one table of processes (running, and ended ones kept for
 * {@link ENDED_RETAIN_MS} so that a late `connect` still gets the result),
 * output held for a background command's first subscriber, stdin handling and
 * the audit log live here, once, on top of a tier's `Instance.spawn`. The
 * server, the terminal and the E2B API are views of this table.
 */
import type { AuditLog } from "./audit-log.ts";
import type { ExitStatus, Instance, SpawnedProcess } from "./backend.ts";
import { checkEnv } from "./env.ts";
import {
  AbortedError,
  InvalidArgumentError,
  type KilnError,
  LimitExceededError,
  type LimitName,
  NotFoundError,
  TimeoutError,
  throwIfAborted,
} from "./errors.ts";
import { checkTimeoutMs, type Limits, MAX_COMMAND_TIMEOUT_MS } from "./limits.ts";
import { sandboxPath } from "./paths.ts";
import { checkEnvSize } from "./sizes.ts";
import type { CommandResult } from "./types.ts";

/** Options of `commands.run`. */
export interface RunOptions {
  /** Working directory; default the sandbox's. */
  cwd?: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Bytes or text for stdin; stdin is closed after it. */
  stdin?: string | Uint8Array;
  /** Wall-time limit in ms; default the sandbox's `limits.timeoutMs`; 0 means none. */
  timeoutMs?: number;
  /** Called with each piece of stdout as text. */
  onStdout?: (data: string) => void;
  /** Called with each piece of stderr as text. */
  onStderr?: (data: string) => void;
  /** Return a handle at once instead of waiting. */
  background?: boolean;
  /** With `background`: keep stdin open for `sendStdin`. */
  openStdin?: boolean;
  /**
   * With `background`: run on a pseudo-terminal of this size (tiers whose
   * capabilities say `pty`), for shells and full-screen programs. stdin stays
   * open; all output arrives as stdout; it is streamed to the callbacks and
   * not kept (the handle's `stdout` stays empty, and `maxOutputBytes` does not
   * apply); the time limit is none unless `timeoutMs` sets one. `closeStdin`
   * types Ctrl-D; `kill` ends the whole session (the shell's jobs too).
   */
  pty?: { cols: number; rows: number };
  /** Cancels the command (it is killed). */
  signal?: AbortSignal;
  /** The caller's own facts about the command (a tag, the form it was asked in), shown by `list`. */
  labels?: Record<string, string>;
}

/** A command, as `commands.list` shows it. */
export interface ProcessInfo {
  pid: number;
  command: string;
  cwd: string;
  startedAtMs: number;
  /** Runs on a pseudo-terminal. */
  pty: boolean;
  /** The labels it was started with. */
  labels: Record<string, string>;
  /** Its exit code, once it ended (only in `list({ ended: true })`). */
  exitCode?: number;
}

/** How long an ended command stays in the table (for `connect` and its result), in ms: 10 minutes. */
export const ENDED_RETAIN_MS = 10 * 60_000;

/** Ended commands kept per sandbox at the most (the oldest is forgotten first): 64. */
export const ENDED_RETAIN_MAX = 64;

/** Output held for a background command's first subscriber (`wait({ held: true })`), at most, in characters: 1 MiB. */
export const HOLD_MAX_CHARS = 1024 * 1024;

/** Options of `CommandHandle.wait`. */
export interface WaitOptions {
  /** Called with stdout that arrives from now on. */
  onStdout?: (data: string) => void;
  /** Called with stderr that arrives from now on. */
  onStderr?: (data: string) => void;
  /**
   * First deliver the output held since the start (background commands started without callbacks,
   * up to {@link HOLD_MAX_CHARS}); only the first caller that asks gets it.
   */
  held?: boolean;
  /** Stops waiting (the command keeps running). */
  signal?: AbortSignal;
}

/** A command that has been started. */
export interface CommandHandle {
  /** Process id inside the sandbox. */
  readonly pid: number;
  /** Output so far. */
  readonly stdout: string;
  readonly stderr: string;
  /** Exit code once it ended, else undefined. */
  readonly exitCode: number | undefined;
  /** Waits for the end. @throws TimeoutError, LimitExceededError, AbortedError */
  wait(options?: WaitOptions): Promise<CommandResult>;
  /** Kills the command and its children. */
  kill(options?: { signal?: AbortSignal }): Promise<void>;
  /** Sends text or bytes to stdin (when started with `openStdin`). @throws InvalidArgumentError once it ended */
  sendStdin(data: string | Uint8Array, options?: { signal?: AbortSignal }): Promise<void>;
  /** Closes stdin. @throws InvalidArgumentError once it ended */
  closeStdin(options?: { signal?: AbortSignal }): Promise<void>;
  /** Sets the terminal's size (commands started with `pty`). @throws InvalidArgumentError */
  resize(cols: number, rows: number, options?: { signal?: AbortSignal }): Promise<void>;
}

/** Checks a terminal size: integers from 1 to 4096. */
function checkTermSize(cols: unknown, rows: unknown): { cols: number; rows: number } {
  for (const [k, v] of [
    ["cols", cols],
    ["rows", rows],
  ] as const) {
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > 4096) {
      throw new InvalidArgumentError(`pty ${k} must be an integer from 1 to 4096`);
    }
  }
  return { cols: cols as number, rows: rows as number };
}

const encoder = new TextEncoder();

/** How long after a kill a command is taken as ended even without an exit report, ms. */
const KILL_GRACE_MS = 5000;

/** A started command: collects output, enforces limits, records the end. */
class Running implements CommandHandle {
  readonly pid: number;
  readonly info: ProcessInfo;
  private readonly proc: SpawnedProcess;
  private out: Uint8Array[] = [];
  private err: Uint8Array[] = [];
  private outBytes = 0;
  private endReason: KilnError | undefined;
  private readonly listeners = new Set<{ o?: (s: string) => void; e?: (s: string) => void }>();
  private readonly outDecoder = new TextDecoder();
  private readonly errDecoder = new TextDecoder();
  private result: CommandResult | undefined;
  private killed = false;
  private forceExit: () => void = () => {};
  private graceTimer: NodeJS.Timeout | undefined;
  /** A terminal session: output is streamed, not kept or capped. */
  private readonly terminal: boolean;
  /** Output since the start, in order, until the first `wait({ held: true })` takes it. */
  private held: { kind: "out" | "err"; text: string }[] | undefined;
  private heldChars = 0;
  private heldFull = false;
  readonly done: Promise<CommandResult>;

  constructor(
    proc: SpawnedProcess,
    info: ProcessInfo,
    finish: (r: CommandResult, status: ExitStatus) => void,
    timeoutMs: number,
    options: { terminal: boolean; hold: boolean },
  ) {
    this.terminal = options.terminal;
    if (options.hold) this.held = [];
    this.proc = proc;
    this.pid = proc.pid;
    this.info = info;
    // A killed command settles even if its tier never reports the exit (a wedged runtime):
    // the caller is never left waiting on a process Kiln has given up on.
    const settled = new Promise<ExitStatus>((resolve) => {
      this.forceExit = () => resolve({ exitCode: 137 });
      proc.exited.then(resolve, () => resolve({ exitCode: 137 }));
    });
    const timer =
      timeoutMs > 0
        ? setTimeout(() => {
            this.endReason ??= new TimeoutError(`command timed out after ${timeoutMs} ms`, timeoutMs);
            this.killProcess();
          }, timeoutMs)
        : undefined;
    this.done = settled.then((status) => {
      clearTimeout(this.graceTimer);
      if (timer) clearTimeout(timer);
      if (status.limit && !this.endReason) {
        this.endReason = new LimitExceededError(
          status.limit.limit as LimitName,
          status.limit.value,
          status.limit.message,
        );
      }
      const r: CommandResult = {
        exitCode: status.exitCode,
        stdout: Buffer.concat(this.out).toString("utf8"),
        stderr: Buffer.concat(this.err).toString("utf8"),
        durationMs: Date.now() - info.startedAtMs,
      };
      const reason = this.endReason;
      if (reason instanceof TimeoutError) r.error = { code: "timeout", timeoutMs: reason.timeoutMs };
      else if (reason instanceof LimitExceededError) {
        r.error = {
          code: "limit_exceeded",
          limit: reason.limit,
          value: reason.value,
          message: reason.message,
        };
      } else if (reason || this.killed) r.error = { code: "killed" };
      this.result = r;
      finish(r, status);
      return r;
    });
  }

  /** Called by the tier with output; enforces the output cap. */
  push(kind: "out" | "err", chunk: Uint8Array, maxOutputBytes: number): void {
    if (this.result) return;
    let data = chunk;
    if (!this.terminal && this.outBytes + data.length > maxOutputBytes) {
      data = data.subarray(0, Math.max(0, maxOutputBytes - this.outBytes));
      if (!this.endReason) {
        this.endReason = new LimitExceededError(
          "maxOutputBytes",
          maxOutputBytes,
          `command output exceeded ${maxOutputBytes} bytes`,
        );
        this.killProcess();
      }
    }
    if (data.length === 0) return;
    this.outBytes += data.length;
    if (!this.terminal) (kind === "out" ? this.out : this.err).push(data);
    const text = (kind === "out" ? this.outDecoder : this.errDecoder).decode(data, { stream: true });
    if (text.length === 0) return;
    if (this.held && !this.heldFull) {
      // Past the cap nothing more is held, so what is held is always a prefix of the output.
      if (this.heldChars + text.length > HOLD_MAX_CHARS) this.heldFull = true;
      else {
        this.heldChars += text.length;
        this.held.push({ kind, text });
      }
    }
    for (const l of this.listeners) {
      if (kind === "out") l.o?.(text);
      else l.e?.(text);
    }
  }

  get stdout(): string {
    return Buffer.concat(this.out).toString("utf8");
  }
  get stderr(): string {
    return Buffer.concat(this.err).toString("utf8");
  }
  get exitCode(): number | undefined {
    return this.result?.exitCode;
  }

  /** Subscribes to output; returns the unsubscribe function. */
  listen(o?: (s: string) => void, e?: (s: string) => void): () => void {
    const l = { o, e };
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  async wait(options: WaitOptions = {}): Promise<CommandResult> {
    throwIfAborted(options.signal);
    if (options.held) {
      const held = this.held ?? [];
      this.held = undefined;
      for (const h of held) (h.kind === "out" ? options.onStdout : options.onStderr)?.(h.text);
    }
    const off = this.listen(options.onStdout, options.onStderr);
    try {
      const r = await abortable(this.done, options.signal);
      if (this.endReason) {
        this.endReason.result = r;
        throw this.endReason;
      }
      return r;
    } finally {
      off();
    }
  }

  /** Marks the command as ended by the caller (a kill or an abort). */
  markKilled(reason: KilnError): void {
    this.endReason ??= reason;
  }

  /** Kills the command; `wait()` then resolves with `error: { code: "killed" }` (not a throw). */
  async kill(options: { signal?: AbortSignal } = {}): Promise<void> {
    throwIfAborted(options.signal);
    if (this.result) return;
    this.killed = true;
    await this.killProcess();
  }

  /** Sends SIGKILL and arms the grace timer after which the command counts as ended anyway. */
  private killProcess(): Promise<void> {
    if (!this.graceTimer) {
      this.graceTimer = setTimeout(() => this.forceExit(), KILL_GRACE_MS);
      this.graceTimer.unref();
    }
    return this.proc.kill("SIGKILL").catch(() => {});
  }

  async sendStdin(data: string | Uint8Array, options: { signal?: AbortSignal } = {}): Promise<void> {
    throwIfAborted(options.signal);
    this.checkRunning();
    await this.proc.writeStdin(typeof data === "string" ? encoder.encode(data) : data);
  }

  async closeStdin(options: { signal?: AbortSignal } = {}): Promise<void> {
    throwIfAborted(options.signal);
    this.checkRunning();
    await this.proc.closeStdin();
  }

  private checkRunning(): void {
    if (this.result) throw new InvalidArgumentError(`command ${this.pid} has ended`);
  }

  async resize(cols: number, rows: number, options: { signal?: AbortSignal } = {}): Promise<void> {
    throwIfAborted(options.signal);
    const size = checkTermSize(cols, rows);
    if (!this.terminal || !this.proc.resize) {
      throw new InvalidArgumentError(`command ${this.pid} has no terminal (start it with pty)`);
    }
    if (this.result) return;
    await this.proc.resize(size.cols, size.rows);
  }
}

/** Resolves with `p`, or rejects with AbortedError when `signal` fires first. */
export function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new AbortedError(undefined, { cause: signal.reason }));
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** What `Commands` needs from its sandbox. */
export interface CommandsContext {
  instance: () => Promise<Instance>;
  defaults: () => { cwd: string; env: Record<string, string>; limits: Limits };
  audit: () => AuditLog;
  /** Told of every command started (the server's live events). */
  started?: (handle: CommandHandle, info: ProcessInfo) => void;
}

/** `sandbox.commands`. */
export class Commands {
  private readonly ctx: CommandsContext;
  /** Running commands, and ended ones for {@link ENDED_RETAIN_MS} (at most {@link ENDED_RETAIN_MAX}). */
  private readonly table = new Map<number, Running>();
  /** The ended commands still in the table, oldest first. */
  private readonly ended: Running[] = [];

  constructor(ctx: CommandsContext) {
    this.ctx = ctx;
  }

  /**
   * Runs a bash command line. In the foreground it resolves with the result
   * (any exit code); with `background: true` it resolves with a handle.
   * @throws TimeoutError (`timeout`), LimitExceededError (`limit_exceeded`, naming the limit),
   *   AbortedError (`aborted`), InvalidArgumentError, SandboxStoppedError. A thrown
   *   timeout or limit error carries the partial `result`.
   */
  run(command: string, options: RunOptions & { background: true }): Promise<CommandHandle>;
  run(command: string, options?: RunOptions & { background?: false }): Promise<CommandResult>;
  async run(command: string, options: RunOptions = {}): Promise<CommandResult | CommandHandle> {
    this.inflight++;
    try {
      return await this.runNow(command, options);
    } finally {
      this.inflight--;
    }
  }

  /** Calls of `run` under way (a background command's ends once it started). */
  private inflight = 0;

  /** True while a command started through this object runs or is being started (hibernation waits). */
  busy(): boolean {
    return this.inflight > 0 || [...this.table.values()].some((h) => h.exitCode === undefined);
  }

  private async runNow(command: string, options: RunOptions): Promise<CommandResult | CommandHandle> {
    throwIfAborted(options.signal);
    if (typeof command !== "string" || command.length === 0) {
      throw new InvalidArgumentError("command must be a non-empty string");
    }
    if (command.includes("\0")) throw new InvalidArgumentError("command contains a NUL byte");
    const d = this.ctx.defaults();
    const cwd = options.cwd === undefined ? d.cwd : sandboxPath(options.cwd, d.cwd);
    const env = { ...d.env, ...checkEnv(options.env) };
    checkEnvSize(env);
    checkEnv(env);
    const pty = options.pty === undefined ? undefined : checkTermSize(options.pty?.cols, options.pty?.rows);
    if (pty && !options.background) throw new InvalidArgumentError("pty needs background: true");
    if (pty && options.stdin !== undefined)
      throw new InvalidArgumentError("pty takes input by sendStdin, not stdin");
    const timeoutMs = checkTimeoutMs(
      "timeoutMs",
      options.timeoutMs ?? (pty ? 0 : d.limits.timeoutMs),
      MAX_COMMAND_TIMEOUT_MS,
    );
    const stdin = pty
      ? ("pipe" as const)
      : typeof options.stdin === "string"
        ? encoder.encode(options.stdin)
        : (options.stdin ?? (options.background && options.openStdin ? ("pipe" as const) : undefined));
    const instance = await this.ctx.instance();
    const startedAtMs = Date.now();
    const auditId = this.ctx.audit().start(command, cwd, startedAtMs);
    let handle: Running | undefined;
    const early: ["out" | "err", Uint8Array][] = [];
    const maxOut = d.limits.maxOutputBytes;
    let proc: SpawnedProcess;
    try {
      proc = await instance.spawn({
        command,
        cwd,
        env,
        stdin,
        ...(pty ? { pty } : {}),
        onStdout: (c) => (handle ? handle.push("out", c, maxOut) : early.push(["out", c])),
        onStderr: (c) => (handle ? handle.push("err", c, maxOut) : early.push(["err", c])),
      });
    } catch (e) {
      this.ctx.audit().finish(auditId, -1, Date.now() - startedAtMs, String((e as Error).message));
      throw e;
    }
    const info: ProcessInfo = {
      pid: proc.pid,
      command,
      cwd,
      startedAtMs,
      pty: pty !== undefined,
      labels: { ...(options.labels ?? {}) },
    };
    const h = new Running(
      proc,
      info,
      (r) => {
        this.ctx.audit().finish(auditId, r.exitCode, r.durationMs, r.error?.code);
        this.retain(h);
      },
      timeoutMs,
      {
        terminal: pty !== undefined,
        // Nobody listens yet: keep what comes until the first subscriber asks for it.
        hold: options.background === true && !options.onStdout && !options.onStderr,
      },
    );
    handle = h;
    h.listen(options.onStdout, options.onStderr);
    for (const [k, c] of early) h.push(k, c, maxOut);
    this.table.set(proc.pid, h);
    this.ctx.started?.(h, info);
    if (options.signal) {
      const onAbort = () => {
        h.markKilled(new AbortedError("command aborted"));
        void h.kill();
      };
      // An abort while the instance was looked up or the process spawned fired no listener yet.
      if (options.signal.aborted) onAbort();
      else {
        options.signal.addEventListener("abort", onAbort, { once: true });
        void h.done.finally(() => options.signal?.removeEventListener("abort", onAbort));
      }
    }
    if (options.background) return h;
    return h.wait();
  }

  /** Keeps an ended command for {@link ENDED_RETAIN_MS}, within {@link ENDED_RETAIN_MAX}. */
  private retain(h: Running): void {
    const forget = (e: Running) => {
      if (this.table.get(e.pid) === e) this.table.delete(e.pid);
      const i = this.ended.indexOf(e);
      if (i >= 0) this.ended.splice(i, 1);
    };
    this.ended.push(h);
    while (this.ended.length > ENDED_RETAIN_MAX) forget(this.ended[0]!);
    setTimeout(() => forget(h), ENDED_RETAIN_MS).unref();
  }

  /**
   * Commands running now, started through this process; with `ended`, also the ended ones still
   * kept (with their `exitCode`).
   */
  async list(options: { ended?: boolean; signal?: AbortSignal } = {}): Promise<ProcessInfo[]> {
    throwIfAborted(options.signal);
    const rows = options.ended ? [...this.table.values()] : this.runningNow();
    return rows.map((r) => ({
      ...r.info,
      labels: { ...r.info.labels },
      ...(r.exitCode !== undefined ? { exitCode: r.exitCode } : {}),
    }));
  }

  /**
   * A handle on a command, running or ended within {@link ENDED_RETAIN_MS} (its `wait` then gives the result).
   * @throws NotFoundError (`not_found`, resource `process`) when there is no such command.
   */
  async connect(pid: number, options: { signal?: AbortSignal } = {}): Promise<CommandHandle> {
    throwIfAborted(options.signal);
    const h = this.table.get(pid);
    if (!h) throw new NotFoundError(`no command with pid ${pid}`, { resource: "process" });
    return h;
  }

  /** Kills a running command; false when none had that pid. */
  async kill(pid: number, options: { signal?: AbortSignal } = {}): Promise<boolean> {
    throwIfAborted(options.signal);
    const h = this.table.get(pid);
    if (!h || h.exitCode !== undefined) return false;
    await h.kill();
    return true;
  }

  /** Kills everything still running (used when the sandbox closes). */
  async killAll(): Promise<void> {
    await Promise.all(this.runningNow().map((h) => h.kill().catch(() => {})));
  }

  private runningNow(): Running[] {
    return [...this.table.values()].filter((r) => r.exitCode === undefined);
  }
}
