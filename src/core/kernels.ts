/**
 * Kernels for the tiers that run real binaries: one long-lived process per
 * code context, started inside the sandbox through `Instance.spawn`, so the
 * code runs with the sandbox's isolation, limits and filesystem.
 *
 * - python: kernels/python-kernel.py under the template's `python3`;
 * - js: kernels/js-kernel.js under the template's `node`;
 * both speak JSON lines (the kernel's header says the format);
 * - bash: a `bash` whose cells are sent as one `eval` line each, ended by a
 *   marker line on stdout and stderr that carries the exit status.
 *
 * The kernel sources ship with Kiln (`kernels/`, beside `src/` and `dist/`)
 * and are passed on the command line, so any template with python3 or node
 * gets cells; the `code-interpreter` template adds numpy, pandas, matplotlib,
 * scipy and IPython.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Instance, SpawnedProcess } from "./backend.ts";
import { NotFoundError } from "./errors.ts";
import { type CellEvent, type CodeLanguage, type ExecutionBuilder, resultFromWire } from "./execution.ts";

/** The kernels folder: three levels up from this module in `src/core/` and in `dist/core/` alike. */
const KERNELS = new URL("../../kernels/", import.meta.url);
const sources = new Map<string, string>();
function kernelSource(file: string): string {
  let s = sources.get(file);
  if (s === undefined) {
    s = readFileSync(new URL(file, KERNELS), "utf8");
    sources.set(file, s);
  }
  return s;
}

/** `s` as one single-quoted bash word. */
function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/** Kernel stderr kept for the report of a kernel that died, bytes. */
const DIAG_BYTES = 8192;

/** A running kernel: one context's interpreter. */
export interface Kernel {
  /** Runs one cell; resolves when the kernel says it is done (or has died). */
  run(code: string, env: Record<string, string>, out: ExecutionBuilder): Promise<void>;
  /** Interrupts the running cell (SIGINT to the kernel and its children). */
  interrupt(): Promise<void>;
  /** Ends the kernel and whatever it started. */
  kill(): Promise<void>;
  /** False once the kernel process has exited. */
  readonly alive: boolean;
}

/** What starting a kernel needs. */
export interface KernelStart {
  instance: Instance;
  language: CodeLanguage;
  cwd: string;
  env: Record<string, string>;
}

/**
 * Starts a kernel and waits for it to be ready.
 * @throws NotFoundError (`not_found`) when the sandbox has no interpreter for the language
 */
export async function startKernel(start: KernelStart): Promise<Kernel> {
  if (start.language === "bash") return BashKernel.start(start);
  const command =
    start.language === "python"
      ? `exec python3 -u -c ${shellQuote(kernelSource("python-kernel.py"))}`
      : `exec node -e ${shellQuote(kernelSource("js-kernel.js"))}`;
  return JsonKernel.start(start, command);
}

/** What a kernel died of, for the cell that was running. */
function died(exitCode: number, diag: string): CellEvent {
  return {
    type: "error",
    error: {
      name: "KernelExited",
      value: `the kernel exited (status ${exitCode}); this context's state is lost and the next cell starts afresh`,
      traceback: diag,
    },
  };
}

/** Bounded tail of a kernel's own stderr. */
class Diag {
  private text = "";
  private readonly decoder = new TextDecoder();
  add(chunk: Uint8Array): void {
    this.text = (this.text + this.decoder.decode(chunk, { stream: true })).slice(-DIAG_BYTES);
  }
  toString(): string {
    return this.text;
  }
}

/** A kernel speaking JSON lines on its stdin and stdout (python, js). */
class JsonKernel implements Kernel {
  alive = true;
  private proc!: SpawnedProcess;
  private cell: { out: ExecutionBuilder; done: () => void } | undefined;
  private buffer = "";
  private readonly decoder = new TextDecoder();
  private readonly diag = new Diag();
  private ready!: () => void;

  static async start(start: KernelStart, command: string): Promise<JsonKernel> {
    const k = new JsonKernel();
    const ready = new Promise<void>((resolve) => {
      k.ready = resolve;
    });
    k.proc = await start.instance.spawn({
      command,
      cwd: start.cwd,
      env: start.env,
      stdin: "pipe",
      onStdout: (c) => k.feed(c),
      onStderr: (c) => k.diag.add(c),
    });
    const exited = k.proc.exited.then((s) => {
      k.alive = false;
      const cell = k.cell;
      k.cell = undefined;
      if (cell) {
        cell.out.add(died(s.exitCode, k.diag.toString()));
        cell.done();
      }
      return s;
    });
    const first = await Promise.race([ready.then(() => undefined), exited]);
    if (first !== undefined) {
      const program = start.language === "python" ? "python3" : "node";
      throw new NotFoundError(
        `this sandbox cannot run ${start.language} cells: \`${program}\` did not start (exit ${first.exitCode}); ` +
          `use a template that has it, such as code-interpreter (\`kiln template build code-interpreter\`)` +
          (k.diag.toString() ? `: ${k.diag.toString().trim().slice(-500)}` : ""),
      );
    }
    return k;
  }

  private feed(chunk: Uint8Array): void {
    this.buffer += this.decoder.decode(chunk, { stream: true });
    let nl = this.buffer.indexOf("\n");
    while (nl >= 0) {
      const line = this.buffer.slice(0, nl);
      this.buffer = this.buffer.slice(nl + 1);
      if (line) this.line(line);
      nl = this.buffer.indexOf("\n");
    }
  }

  private line(line: string): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line);
    } catch {
      // Not the kernel's: output that reached the kernel's own stdout.
      this.cell?.out.add({ type: "stdout", text: `${line}\n` });
      return;
    }
    const cell = this.cell;
    switch (msg.type) {
      case "ready":
        this.ready();
        return;
      case "stdout":
      case "stderr":
        if (typeof msg.text === "string") cell?.out.add({ type: msg.type, text: msg.text });
        return;
      case "result":
        cell?.out.add({ type: "result", result: resultFromWire(msg) });
        return;
      case "error":
        cell?.out.add({
          type: "error",
          error: {
            name: String(msg.name ?? "Error"),
            value: String(msg.value ?? ""),
            traceback: String(msg.traceback ?? ""),
          },
        });
        return;
      case "done":
        if (cell) {
          this.cell = undefined;
          cell.out.add({
            type: "done",
            ...(typeof msg.execution_count === "number" ? { executionCount: msg.execution_count } : {}),
          });
          cell.done();
        }
        return;
    }
  }

  run(code: string, env: Record<string, string>, out: ExecutionBuilder): Promise<void> {
    return new Promise<void>((resolve) => {
      if (!this.alive) {
        out.add(died(-1, this.diag.toString()));
        return resolve();
      }
      this.cell = { out, done: resolve };
      this.proc.writeStdin(Buffer.from(`${JSON.stringify({ code, env })}\n`)).catch(() => {
        // The kernel is gone; its exit ends the cell.
      });
    });
  }

  async interrupt(): Promise<void> {
    if (this.alive) await this.proc.kill("SIGINT").catch(() => {});
  }

  async kill(): Promise<void> {
    if (this.alive) await this.proc.kill("SIGKILL").catch(() => {});
    await this.proc.exited.catch(() => {});
  }
}

/** Finds `marker` in a stream, passing on what comes before it. */
class MarkerSplitter {
  private carry = "";
  private readonly decoder = new TextDecoder();
  private readonly marker: RegExp;
  private readonly prefix: string;
  private readonly emit: (text: string) => void;
  private readonly found: (m: RegExpExecArray) => void;
  constructor(
    marker: RegExp,
    prefix: string,
    emit: (text: string) => void,
    found: (m: RegExpExecArray) => void,
  ) {
    this.marker = marker;
    this.prefix = prefix;
    this.emit = emit;
    this.found = found;
  }

  feed(chunk: Uint8Array): void {
    let data = this.carry + this.decoder.decode(chunk, { stream: true });
    this.carry = "";
    for (let m = this.marker.exec(data); m; m = this.marker.exec(data)) {
      if (m.index > 0) this.emit(data.slice(0, m.index));
      this.found(m);
      data = data.slice(m.index + m[0].length);
    }
    // A tail that may be the start of a marker waits for the next chunk.
    const at = data.lastIndexOf(this.prefix[0]!);
    if (at >= 0 && this.prefix.startsWith(data.slice(at, at + this.prefix.length))) {
      this.carry = data.slice(at);
      data = data.slice(0, at);
    }
    if (data) this.emit(data);
  }
}

/** A persistent bash: variables, functions and the working directory carry over between cells. */
class BashKernel implements Kernel {
  alive = true;
  private proc!: SpawnedProcess;
  private readonly nonce = randomBytes(8).toString("hex");
  private cell: { out: ExecutionBuilder; done: () => void; status?: number; stderrDone: boolean } | undefined;
  private count = 0;
  private readonly stderrTail = new Diag();

  static async start(start: KernelStart): Promise<BashKernel> {
    const k = new BashKernel();
    const prefix = `\x1ekiln-${k.nonce}`;
    const stdout = new MarkerSplitter(
      new RegExp(`${prefix}:(\\d+)\x1e\n`),
      prefix,
      (text) => k.cell?.out.add({ type: "stdout", text }),
      (m) => {
        if (k.cell) k.cell.status = Number(m[1]);
        k.settle();
      },
    );
    const stderr = new MarkerSplitter(
      new RegExp(`${prefix}\x1e\n`),
      prefix,
      (text) => {
        k.stderrTail.add(Buffer.from(text));
        k.cell?.out.add({ type: "stderr", text });
      },
      () => {
        if (k.cell) k.cell.stderrDone = true;
        k.settle();
      },
    );
    k.proc = await start.instance.spawn({
      command: "exec bash --noprofile --norc",
      cwd: start.cwd,
      env: start.env,
      stdin: "pipe",
      onStdout: (c) => stdout.feed(c),
      onStderr: (c) => stderr.feed(c),
    });
    void k.proc.exited.then((s) => {
      k.alive = false;
      const cell = k.cell;
      k.cell = undefined;
      if (cell) {
        cell.out.add(died(s.exitCode, ""));
        cell.done();
      }
    });
    return k;
  }

  private settle(): void {
    const cell = this.cell;
    if (!cell || cell.status === undefined || !cell.stderrDone) return;
    this.cell = undefined;
    if (cell.status !== 0) {
      cell.out.add({
        type: "error",
        error: {
          name: "CommandExitError",
          value: `exit status ${cell.status}`,
          traceback: cell.out.execution.logs.stderr.join(""),
        },
      });
    }
    cell.out.add({ type: "done", executionCount: this.count });
    cell.done();
  }

  run(code: string, env: Record<string, string>, out: ExecutionBuilder): Promise<void> {
    return new Promise<void>((resolve) => {
      if (!this.alive) {
        out.add(died(-1, ""));
        return resolve();
      }
      this.count++;
      this.cell = { out, done: resolve, stderrDone: false };
      const exports = Object.entries(env)
        .map(([k, v]) => `${k}=${shellQuote(v)} `)
        .join("");
      const b64 = Buffer.from(code).toString("base64");
      // One line per cell: the code is decoded and evaluated (a syntax error is its exit status,
      // not the kernel's), stdin is /dev/null, and the markers carry the status.
      const line =
        `${exports}eval "$(printf %s ${b64} | base64 -d)" </dev/null; ` +
        `printf '\\036kiln-${this.nonce}:%d\\036\\n' "$?"; printf '\\036kiln-${this.nonce}\\036\\n' >&2\n`;
      this.proc.writeStdin(Buffer.from(line)).catch(() => {});
    });
  }

  async interrupt(): Promise<void> {
    if (this.alive) await this.proc.kill("SIGINT").catch(() => {});
  }

  async kill(): Promise<void> {
    if (this.alive) await this.proc.kill("SIGKILL").catch(() => {});
    await this.proc.exited.catch(() => {});
  }
}
