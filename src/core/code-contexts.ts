/**
 * `sandbox.runCode` and its code contexts: named interpreters whose state
 * (variables, imports, the working directory) persists between cells.
 *
 * A tier with its own warm interpreter (`Instance.runCode`, the virtual tier)
 * runs Python cells itself; on the other tiers each context is a kernel
 * process inside the sandbox (kernels.ts). Either way the caller gets one
 * {@link Execution}, and a cell that overruns its time limit is interrupted
 * (SIGINT: KeyboardInterrupt in Python), then its kernel killed if it does not
 * stop, and `TimeoutError` is thrown carrying what the cell produced.
 */
import { randomUUID } from "node:crypto";
import type { Instance } from "./backend.ts";
import { abortable } from "./commands.ts";
import {
  AbortedError,
  InvalidArgumentError,
  NotFoundError,
  TimeoutError,
  throwIfAborted,
  UnsupportedError,
} from "./errors.ts";
import {
  type CellCallbacks,
  type CodeLanguage,
  checkLanguage,
  type Execution,
  ExecutionBuilder,
  errorFromTraceback,
} from "./execution.ts";
import { type Kernel, startKernel } from "./kernels.ts";
import type { Limits } from "./limits.ts";
import { sandboxPath } from "./paths.ts";
import { TypeScriptSyntaxError, typeScriptToJs } from "./typescript.ts";

/** A code context as listed. */
export interface CodeContext {
  /** Its id: `default` (python), `js`, `ts` and `bash` for the languages' default contexts, else chosen at create. */
  id: string;
  /** What it runs. */
  language: CodeLanguage;
  /** Its working directory. */
  cwd: string;
}

/** Options of a cell. */
export interface RunCellOptions extends CellCallbacks {
  /** Language of a context this call creates, or of the default context to use; default python. */
  language?: string | undefined;
  /** The context's id; default the language's default context. A new id creates the context. */
  context?: string | undefined;
  /** Working directory of a context this call creates (absolute, checked by the caller). */
  cwd: string;
  /** Variables for this cell only. */
  env: Record<string, string>;
  /** Wall-time limit in ms (0: none). */
  timeoutMs: number;
  signal?: AbortSignal | undefined;
}

/** A cell that overran its time limit; `execution` holds what it produced. */
export class CellTimeoutError extends TimeoutError {
  readonly execution: Execution;
  constructor(timeoutMs: number, execution: Execution) {
    super(`the cell ran past its time limit (${timeoutMs} ms)`, timeoutMs);
    this.execution = execution;
  }
}

/**
 * How long an interrupted cell may take to stop before its kernel is killed.
 * Stopping takes milliseconds; the margin is for a loaded host.
 */
const INTERRUPT_GRACE_MS = 10_000;
const CONTEXT_ID = /^[A-Za-z0-9_.-]{1,128}$/;
/** Most contexts per sandbox (each one is a process). */
export const MAX_CODE_CONTEXTS = 64;

/** The default context's id of each language (TypeScript cells have a context of their own, on Node as js's). */
export function defaultContextId(language: CodeLanguage): string {
  return language === "python" ? "default" : language;
}

interface Entry extends CodeContext {
  kernel: Promise<Kernel> | undefined;
  /** Cells run one at a time per context. */
  queue: Promise<unknown>;
}

/** What {@link CodeContexts} needs from its sandbox. */
export interface CodeContextsHost {
  instance: () => Promise<Instance>;
  defaults: () => { cwd: string; env: Record<string, string>; limits: Limits };
}

/** The code contexts of one sandbox. */
export class CodeContexts {
  private readonly host: CodeContextsHost;
  private readonly entries = new Map<string, Entry>();

  constructor(host: CodeContextsHost) {
    this.host = host;
  }

  /**
   * Creates a context and starts its interpreter; `cwd` defaults to the sandbox's.
   * @throws InvalidArgumentError (bad language, id or cwd, or an id in use), NotFoundError (no interpreter for it in this sandbox)
   */
  async create(options: { language?: string; cwd?: string; id?: string }): Promise<CodeContext> {
    const language = checkLanguage(options.language);
    const home = this.host.defaults().cwd;
    const cwd = options.cwd === undefined ? home : sandboxPath(options.cwd, home);
    const id = options.id ?? randomUUID();
    if (!CONTEXT_ID.test(id)) throw new InvalidArgumentError(`invalid context id ${JSON.stringify(id)}`);
    if (this.entries.has(id)) throw new InvalidArgumentError(`context ${id} exists`);
    if (this.entries.size >= MAX_CODE_CONTEXTS)
      throw new InvalidArgumentError(`a sandbox has at most ${MAX_CODE_CONTEXTS} code contexts; remove one`);
    const e: Entry = { id, language, cwd, kernel: undefined, queue: Promise.resolve() };
    this.entries.set(id, e);
    const inst = await this.host.instance();
    if (inst.runCode && language !== "python") {
      this.entries.delete(id);
      throw new UnsupportedError(
        `this tier runs Python cells on its own interpreter only; ${language} cells need a real tier`,
      );
    }
    if (!inst.runCode) {
      try {
        await this.kernel(e, inst);
      } catch (err) {
        this.entries.delete(id);
        throw err;
      }
    }
    return view(e);
  }

  /** The contexts, oldest first. */
  list(): CodeContext[] {
    return [...this.entries.values()].map(view);
  }

  /** Restarts a context's interpreter: its state is lost. @throws NotFoundError */
  async restart(id: string): Promise<void> {
    const e = this.get(id);
    const old = e.kernel;
    e.kernel = undefined;
    if (old) await (await old.catch(() => undefined))?.kill();
    const inst = await this.host.instance();
    if (inst.runCode && e.language === "python") await inst.resetCodeContext?.(id);
    else await this.kernel(e, inst);
  }

  /** Removes a context and ends its interpreter. @throws NotFoundError */
  async remove(id: string): Promise<void> {
    const e = this.get(id);
    this.entries.delete(id);
    if (e.kernel) await (await e.kernel.catch(() => undefined))?.kill();
    const inst = await this.host.instance().catch(() => undefined);
    if (inst?.runCode && e.language === "python") await inst.resetCodeContext?.(id);
  }

  /** Ends every interpreter (the sandbox is closing). */
  async closeAll(): Promise<void> {
    const all = [...this.entries.values()];
    this.entries.clear();
    await Promise.all(all.map(async (e) => (await e.kernel?.catch(() => undefined))?.kill()));
  }

  private get(id: string): Entry {
    const e = this.entries.get(id);
    if (!e) throw new NotFoundError(`no code context ${id}`);
    return e;
  }

  private kernel(e: Entry, inst: Instance): Promise<Kernel> {
    const current = e.kernel;
    if (current) {
      return current.then(
        (k) => (k.alive ? k : this.restartKernel(e, inst)),
        () => this.restartKernel(e, inst),
      );
    }
    return this.restartKernel(e, inst);
  }

  private restartKernel(e: Entry, inst: Instance): Promise<Kernel> {
    const d = this.host.defaults();
    const k = startKernel({ instance: inst, language: e.language, cwd: e.cwd, env: d.env });
    e.kernel = k;
    k.catch(() => {
      if (e.kernel === k) e.kernel = undefined;
    });
    return k;
  }

  /**
   * Runs one cell.
   * @throws InvalidArgumentError, NotFoundError, CellTimeoutError (`timeout`), AbortedError, UnsupportedError
   */
  async run(code: string, options: RunCellOptions): Promise<Execution> {
    throwIfAborted(options.signal);
    if (typeof code !== "string") throw new InvalidArgumentError("code must be a string");
    if (options.context !== undefined && !CONTEXT_ID.test(options.context))
      throw new InvalidArgumentError(`invalid context id ${JSON.stringify(options.context)}`);
    let e = options.context === undefined ? undefined : this.entries.get(options.context);
    const language = options.language === undefined && e ? e.language : checkLanguage(options.language);
    if (e && e.language !== language)
      throw new InvalidArgumentError(`context ${e.id} runs ${e.language}, not ${language}`);
    const id = options.context ?? defaultContextId(language);
    e ??= this.entries.get(id);
    if (!e) {
      await this.create({ language, cwd: options.cwd, id });
      e = this.get(id);
    }
    const entry = e;
    const turn = entry.queue.then(() => this.runIn(entry, code, options));
    entry.queue = turn.catch(() => {});
    return abortable(turn, options.signal);
  }

  private async runIn(e: Entry, code: string, options: RunCellOptions): Promise<Execution> {
    throwIfAborted(options.signal);
    const out = new ExecutionBuilder(options);
    const inst = await this.host.instance();
    if (inst.runCode && e.language === "python") return this.runOnTier(inst, e, code, options, out);
    let source = code;
    if (e.language === "ts") {
      try {
        source = typeScriptToJs(code);
      } catch (err) {
        if (!(err instanceof TypeScriptSyntaxError)) throw err;
        // As a kernel reports a cell that does not parse: the cell's error, and the context is untouched.
        out.add({
          type: "error",
          error: { name: err.name, value: err.message, traceback: `${err.name}: ${err.message}` },
        });
        return out.execution;
      }
    }
    const kernel = await this.kernel(e, inst);
    const done = kernel.run(source, options.env, out);
    let timer: NodeJS.Timeout | undefined;
    const stopped = new Promise<"timeout" | "abort">((resolve) => {
      if (options.timeoutMs > 0) timer = setTimeout(() => resolve("timeout"), options.timeoutMs);
      options.signal?.addEventListener("abort", () => resolve("abort"), { once: true });
    });
    try {
      const first = await Promise.race([done.then(() => undefined), stopped]);
      if (first === undefined) return out.execution;
      await kernel.interrupt();
      const grace = new Promise<"late">((resolve) => setTimeout(resolve, INTERRUPT_GRACE_MS, "late").unref());
      if ((await Promise.race([done.then(() => "done" as const), grace])) === "late") {
        await kernel.kill();
        await done;
      }
      if (first === "abort") throw new AbortedError(undefined, { cause: options.signal?.reason });
      throw new CellTimeoutError(options.timeoutMs, out.execution);
    } finally {
      clearTimeout(timer);
    }
  }

  /** A Python cell on a tier's own interpreter: its output, and an error from its exit. */
  private async runOnTier(
    inst: Instance,
    e: Entry,
    code: string,
    options: RunCellOptions,
    out: ExecutionBuilder,
  ): Promise<Execution> {
    let reported = false;
    const dOut = new TextDecoder();
    const dErr = new TextDecoder();
    // The time limit is kept here, as for kernels and commands; the tier only stops when told.
    const stop = new AbortController();
    let timedOut = false;
    const timer =
      options.timeoutMs > 0
        ? setTimeout(() => {
            timedOut = true;
            stop.abort();
          }, options.timeoutMs)
        : undefined;
    const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
    let r: { exitCode: number };
    try {
      r = await inst.runCode!({
        code,
        language: "python",
        context: e.id,
        cwd: e.cwd,
        env: { ...this.host.defaults().env, ...options.env },
        onStdout: (c) => out.add({ type: "stdout", text: dOut.decode(c, { stream: true }) }),
        onStderr: (c) => out.add({ type: "stderr", text: dErr.decode(c, { stream: true }) }),
        onEvent: (ev) => {
          if (ev.type === "error") reported = true;
          out.add(ev);
        },
        signal,
      });
    } finally {
      clearTimeout(timer);
    }
    if (timedOut) throw new CellTimeoutError(options.timeoutMs, out.execution);
    if (r.exitCode !== 0 && !reported)
      out.add({ type: "error", error: errorFromTraceback(out.execution.logs.stderr.join(""), "Error") });
    return out.execution;
  }
}

function view(e: Entry): CodeContext {
  return { id: e.id, language: e.language, cwd: e.cwd };
}
