/** `sandbox.commands` over HTTP: streamed foreground runs, background handles. */
import type { CommandHandle, ProcessInfo, RunOptions, WaitOptions } from "../core/commands.ts";
import { InvalidArgumentError, NotFoundError, throwIfAborted } from "../core/errors.ts";
import type { CommandResult } from "../core/types.ts";
import type { CommandsApi } from "./api.ts";
import type { Transport } from "./http.ts";
import { consume } from "./ndjson.ts";

function stdinFields(
  data: string | Uint8Array | undefined,
  text: string,
  b64: string,
): Record<string, string> {
  if (data === undefined) return {};
  if (typeof data === "string") return { [text]: data };
  if (data instanceof Uint8Array) return { [b64]: Buffer.from(data).toString("base64") };
  throw new InvalidArgumentError("stdin must be a string or a Uint8Array");
}

/** A command running on the server. */
class RemoteHandle implements CommandHandle {
  readonly pid: number;
  private readonly http: Transport;
  private readonly base: string;
  private out = "";
  private err = "";
  private result: CommandResult | undefined;
  /** A terminal session: its output is streamed, not kept (as in the library). */
  private readonly terminal: boolean;

  constructor(http: Transport, base: string, pid: number, terminal = false) {
    this.http = http;
    this.base = `${base}/${pid}`;
    this.pid = pid;
    this.terminal = terminal;
  }

  /** Output seen so far through `wait` (a remote handle sees output only while waiting). */
  get stdout(): string {
    return this.result?.stdout ?? this.out;
  }
  get stderr(): string {
    return this.result?.stderr ?? this.err;
  }
  get exitCode(): number | undefined {
    return this.result?.exitCode;
  }

  /**
   * Waits for the end, streaming output that arrives from now on.
   * @throws TimeoutError, LimitExceededError, AbortedError, NotFoundError (unknown pid), SandboxStoppedError
   */
  async wait(options: WaitOptions = {}): Promise<CommandResult> {
    const res = await this.http.request("GET", `${this.base}/events`, { signal: options.signal });
    const end = await consume(
      res,
      {
        onStdout: (d) => {
          if (!this.terminal) this.out += d;
          options.onStdout?.(d);
        },
        onStderr: (d) => {
          if (!this.terminal) this.err += d;
          options.onStderr?.(d);
        },
      },
      options.signal,
    );
    if (end.result) this.result = end.result as unknown as CommandResult;
    if (end.error) throw end.error;
    return this.result!;
  }

  /** Kills the command and its children. @throws NotFoundError (sandbox), AbortedError */
  async kill(options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.http.json("POST", `${this.base}/kill`, { signal: options.signal });
  }

  /** Sends text or bytes to stdin. @throws NotFoundError, InvalidArgumentError (ended), AbortedError */
  async sendStdin(data: string | Uint8Array, options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.http.empty("POST", `${this.base}/stdin`, {
      json: stdinFields(data, "data", "dataBase64"),
      signal: options.signal,
    });
  }

  /** Closes stdin. @throws NotFoundError, InvalidArgumentError (ended), AbortedError */
  async closeStdin(options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.http.empty("POST", `${this.base}/stdin`, { json: { close: true }, signal: options.signal });
  }

  /** Sets the terminal size (commands started with `pty`). @throws InvalidArgumentError, NotFoundError */
  async resize(cols: number, rows: number, options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.http.empty("POST", `${this.base}/resize`, { json: { cols, rows }, signal: options.signal });
  }
}

/** `sandbox.commands` of a remote sandbox. */
export class RemoteCommands implements CommandsApi {
  private readonly http: Transport;
  private readonly base: string;

  constructor(http: Transport, sandboxPath: string) {
    this.http = http;
    this.base = `${sandboxPath}/commands`;
  }

  /**
   * Runs a bash command line: in the foreground, streams its output into
   * `onStdout`/`onStderr` and resolves with the result; with `background`,
   * resolves with a handle. Aborting `signal` kills the command.
   * @throws TimeoutError (`timeout`), LimitExceededError (`limit_exceeded`), AbortedError (`aborted`),
   *   InvalidArgumentError, NotFoundError, SandboxStoppedError (the server stopped mid-run),
   *   UnauthenticatedError (`unauthenticated`)
   */
  run(command: string, options: RunOptions & { background: true }): Promise<CommandHandle>;
  run(command: string, options?: RunOptions & { background?: false }): Promise<CommandResult>;
  async run(command: string, options: RunOptions = {}): Promise<CommandResult | CommandHandle> {
    throwIfAborted(options.signal);
    const body = {
      command,
      ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
      ...(options.env !== undefined ? { env: options.env } : {}),
      ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
      ...(options.labels !== undefined ? { labels: options.labels } : {}),
      ...stdinFields(options.stdin, "stdin", "stdinBase64"),
      ...(options.background ? { background: true, openStdin: options.openStdin ?? false } : {}),
      ...(options.pty !== undefined ? { pty: options.pty } : {}),
    };
    if (options.background) {
      const { pid } = await this.http.json<{ pid: number }>("POST", this.base, {
        json: body,
        signal: options.signal,
      });
      const h = new RemoteHandle(this.http, this.base, pid, options.pty !== undefined);
      if (options.signal) {
        options.signal.addEventListener("abort", () => void h.kill().catch(() => {}), { once: true });
      }
      if (options.onStdout || options.onStderr) {
        void h
          .wait({
            ...(options.onStdout ? { onStdout: options.onStdout } : {}),
            ...(options.onStderr ? { onStderr: options.onStderr } : {}),
          })
          .catch(() => {});
      }
      return h;
    }
    const res = await this.http.request("POST", this.base, { json: body, signal: options.signal });
    const end = await consume(
      res,
      {
        ...(options.onStdout ? { onStdout: options.onStdout } : {}),
        ...(options.onStderr ? { onStderr: options.onStderr } : {}),
      },
      options.signal,
    );
    if (end.error) throw end.error;
    return end.result as unknown as CommandResult;
  }

  /** Commands running now; with `ended`, also the ended ones the server still keeps. @throws NotFoundError, AbortedError */
  async list(options: { ended?: boolean; signal?: AbortSignal } = {}): Promise<ProcessInfo[]> {
    return this.http.json<ProcessInfo[]>("GET", options.ended ? `${this.base}?ended=true` : this.base, {
      signal: options.signal,
    });
  }

  /**
   * A handle on a command, running or ended and still kept (its `wait` then gives the result).
   * @throws NotFoundError (`not_found`) when there is no such command
   */
  async connect(pid: number, options: { signal?: AbortSignal } = {}): Promise<CommandHandle> {
    const found = (await this.list({ ...options, ended: true })).find((p) => p.pid === pid);
    if (!found) throw new NotFoundError(`no command with pid ${pid}`, { resource: "process" });
    return new RemoteHandle(this.http, this.base, pid, found.pty);
  }

  /** Kills a running command; false when none had that pid. @throws NotFoundError (sandbox), AbortedError */
  async kill(pid: number, options: { signal?: AbortSignal } = {}): Promise<boolean> {
    const r = await this.http.json<{ killed: boolean }>("POST", `${this.base}/${pid}/kill`, {
      signal: options.signal,
    });
    return r.killed;
  }
}
