/**
 * A warm CPython per sandbox: one Emscripten CPython in a worker thread
 * (python-worker.ts), kept alive between runs, over the sandbox's SQLite
 * workspace. just-bash's own `python3` boots a fresh interpreter per call
 * (~450 ms); here only the first run pays for the boot.
 *
 * Jobs run one at a time. A job whose signal is aborted (core's time limit,
 * a kill, the caller's abort) is
 * first interrupted with KeyboardInterrupt, which keeps the interpreter and
 * its REPL contexts; if it has not stopped after a short grace period (code
 * stuck in C, or swallowing the interrupt), the worker is terminated and the
 * next run boots a fresh one, so REPL state is lost then. The same holds when
 * the interpreter crashes (WASM trap, os._exit()).
 */
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, extname, join } from "node:path";
import { MessageChannel, type MessagePort, Worker } from "node:worker_threads";
import type { CellEvent } from "../../core/execution.ts";
import { answerPythonHttp, type PythonFetch } from "./python-http.ts";
import type { PythonHttpRequest } from "./python-http-wire.ts";
import type { PythonWorkerData, WorkerJob, WorkerMessage } from "./python-worker.ts";

/** A job for {@link PythonRuntime.run}. */
export type PythonJob =
  | {
      /** Like a fresh `python3 ARGV...`: `-c CODE`, `-m MOD`, `FILE`, `-` or nothing (code from stdin). */
      mode: "script";
      argv: string[];
      cwd: string;
      env: Record<string, string>;
      stdin?: Uint8Array;
    }
  | {
      /** A notebook-style cell: globals persist per `context` (default "default"). */
      mode: "repl";
      code: string;
      context?: string;
      cwd: string;
      env: Record<string, string>;
    }
  | {
      /** Forgets a context's globals. */
      mode: "reset";
      context: string;
      cwd: string;
      env: Record<string, string>;
    };

/**
 * Where a job's output goes, and what stops it. The runtime keeps no clock:
 * time limits are core's, which abort `signal`.
 */
export interface PythonIo {
  onStdout(bytes: Uint8Array): void;
  onStderr(bytes: Uint8Array): void;
  /** A cell's structured events (repl jobs). */
  onEvent?(event: CellEvent): void;
  signal?: AbortSignal;
}

/** How a job ended: 130 when it was stopped by its signal. */
export interface PythonResult {
  exitCode: number;
}

/** Options of {@link PythonRuntime}. */
export interface PythonRuntimeOptions {
  /** The sandbox's AgentFS SQLite file; the worker opens its own connection. */
  databasePath: string;
  /** Cap on the interpreter's WASM memory; default (and maximum) 512 MiB. */
  maxMemoryBytes?: number;
  /** The workspace disk limit, enforced on the worker's connection too; default unlimited. */
  maxDiskBytes?: number;
  /**
   * The sandbox's egress fetch as it is now (read at each request, so that a policy change
   * applies at once); undefined: no egress, and urllib's requests fail. python-http.ts.
   */
  fetch?: () => PythonFetch | undefined;
}

/** The build's own heap ceiling. */
const MAX_MEMORY = 512 * 1024 * 1024;
const IDLE_MS = 5 * 60_000;
/**
 * How long an interrupted job may take to unwind before its worker is
 * terminated. Unwinding takes milliseconds; the margin is for a loaded host,
 * where a starved worker thread can miss a shorter deadline and lose its REPL
 * state for nothing.
 */
const GRACE_MS = 3000;
/**
 * Once the driver has caught the interrupt, only its own code is left (the
 * traceback, the report); on a loaded host that can take longer than
 * GRACE_MS, so it gets this much before the worker is terminated.
 */
const UNWIND_MS = 15_000;
const SIGINT = 2;

const VENDOR_DIR = join(
  dirname(createRequire(import.meta.url).resolve("just-bash")),
  "../../vendor/cpython-emscripten",
);
/** The project's lib has no WebAssembly types (they come with the DOM lib). */
const wasm = (globalThis as unknown as { WebAssembly: { compile(bytes: Uint8Array): Promise<object> } })
  .WebAssembly;
/** python.wasm compiled once per process; workers share it, so a restart skips compilation. */
let wasmModule: Promise<object> | undefined;

interface Live {
  worker: Worker;
  port: MessagePort;
  signals: Int32Array;
  /** HTTP answers go to the worker here, each followed by a notify on `httpSignal`. */
  httpPort: MessagePort;
  httpSignal: Int32Array;
  /** Stops the HTTP requests in flight (the job ended, or the worker went). */
  httpAbort: AbortController;
  /** Handlers of the job in flight. */
  onMessage?: (m: WorkerMessage) => void;
  onCrash?: (reason: string) => void;
  /** Set when we terminate the worker on purpose. */
  killedBecause?: string;
  /** The interpreter has started a job before: it is booted and worth keeping. */
  booted?: boolean;
}

const encoder = new TextEncoder();

/** A warm Python interpreter over one sandbox's workspace. */
export class PythonRuntime {
  readonly #opts: PythonRuntimeOptions & { maxMemoryBytes: number };
  #live: Live | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #idle: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(opts: PythonRuntimeOptions) {
    this.#opts = {
      ...opts,
      maxMemoryBytes: Math.min(opts.maxMemoryBytes ?? MAX_MEMORY, MAX_MEMORY),
    };
  }

  /** Queues `job`; resolves when it ends. Output streams to `io` as it comes. */
  run(job: PythonJob, io: PythonIo): Promise<PythonResult> {
    const result = this.#queue.then(() => this.#runNow(job, io));
    this.#queue = result.catch(() => {});
    return result;
  }

  /** Terminates the interpreter; a job in flight ends with exit code 1. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#idle);
    const live = this.#live;
    if (live) await this.#kill(live, "the Python runtime was closed");
  }

  async #runNow(job: PythonJob, io: PythonIo): Promise<PythonResult> {
    if (this.#closed) throw new Error("PythonRuntime is closed");
    if (io.signal?.aborted) return { exitCode: 130 };
    clearTimeout(this.#idle);
    this.#live ??= await this.#spawn();
    const live = this.#live;
    live.worker.ref(); // a running job keeps the process alive; an idle worker does not
    try {
      return await this.#dispatch(live, job, io);
    } finally {
      if (this.#live === live) {
        live.worker.unref();
        this.#idle = setTimeout(() => void this.#kill(live, "idle"), IDLE_MS).unref();
      }
    }
  }

  #dispatch(live: Live, job: PythonJob, io: PythonIo): Promise<PythonResult> {
    return new Promise((resolve) => {
      let started = false;
      let stopping: PythonResult | undefined;
      let grace: NodeJS.Timeout | undefined;
      const finish = (r: PythonResult) => {
        live.onMessage = live.onCrash = undefined;
        clearTimeout(grace);
        io.signal?.removeEventListener("abort", onAbort);
        resolve(stopping ?? r);
      };
      const kill = (r: PythonResult) => {
        void this.#kill(live, "stopped");
        if (started) {
          const note =
            "python3: the job did not stop on interrupt; the interpreter was restarted (REPL state is lost)\n";
          io.onStderr(encoder.encode(note));
        }
        finish(r);
      };
      const stop = (r: PythonResult) => {
        if (stopping) return;
        stopping = r;
        if (!started && !live.booted) return kill(r); // still booting: nothing worth keeping
        // A booted interpreter that has not picked the job up yet clears pending
        // signals when it does; the interrupt is raised once it says `started`.
        if (started) interrupt();
        grace = setTimeout(() => kill(r), GRACE_MS);
      };
      const interrupt = () => Atomics.store(live.signals, 1, SIGINT); // KeyboardInterrupt at the next bytecode check
      const onAbort = () => stop({ exitCode: 130 });
      io.signal?.addEventListener("abort", onAbort, { once: true });

      live.onMessage = (m) => {
        if (m.type === "out") (m.fd === 1 ? io.onStdout : io.onStderr)(m.data);
        else if (m.type === "event") io.onEvent?.(m.event as CellEvent);
        else if (m.type === "interrupted") {
          if (!stopping) return; // a KeyboardInterrupt raised by the job itself
          clearTimeout(grace);
          grace = setTimeout(() => kill(stopping as PythonResult), UNWIND_MS);
        } else if (m.type === "started") {
          started = live.booted = true;
          if (stopping) {
            interrupt();
            clearTimeout(grace);
            grace = setTimeout(() => kill(stopping as PythonResult), GRACE_MS);
          }
        } else if (m.type === "done") finish({ exitCode: m.exitCode });
        else if (m.type === "exited") {
          // The interpreter itself ended: os._exit() (no error) or a crash.
          if (m.error) io.onStderr(encoder.encode(`python3: ${m.error}\n`));
          void this.#kill(live, "exited");
          finish({ exitCode: m.exitCode || (m.error ? 1 : 0) });
        }
      };
      live.onCrash = (reason) => {
        io.onStderr(encoder.encode(`python3: ${reason}\n`));
        finish({ exitCode: 1 });
      };

      const { stdin, ...rest } = job.mode === "script" ? job : { ...job, stdin: undefined };
      const wire: WorkerJob = rest.mode === "repl" ? { ...rest, context: rest.context ?? "default" } : rest;
      live.port.postMessage({ job: wire, stdin });
      Atomics.add(live.signals, 0, 1);
      Atomics.notify(live.signals, 0);
    });
  }

  async #spawn(): Promise<Live> {
    wasmModule ??= readFile(join(VENDOR_DIR, "python.wasm"))
      .then((b) => wasm.compile(b))
      .catch((e) => {
        wasmModule = undefined; // let a later run try again
        throw e;
      });
    const { port1, port2 } = new MessageChannel();
    const http = new MessageChannel();
    const signals = new SharedArrayBuffer(8);
    const httpSignal = new SharedArrayBuffer(4);
    const workerData: PythonWorkerData = {
      databasePath: this.#opts.databasePath,
      port: port2,
      signals,
      httpPort: http.port2,
      httpSignal,
      wasmModule: await wasmModule,
      vendorDir: VENDOR_DIR,
      maxMemoryBytes: this.#opts.maxMemoryBytes,
      maxDiskBytes: this.#opts.maxDiskBytes,
    };
    // The worker sits beside this module: python-worker.ts in the source, .js in the compiled CLI.
    const worker = new Worker(new URL(`./python-worker${extname(import.meta.url)}`, import.meta.url), {
      workerData,
      transferList: [port2, http.port2],
    });
    worker.unref();
    const live: Live = {
      worker,
      port: port1,
      signals: new Int32Array(signals),
      httpPort: http.port1,
      httpSignal: new Int32Array(httpSignal),
      httpAbort: new AbortController(),
    };
    worker.on("message", (m: WorkerMessage) =>
      m.type === "http" ? this.#serveHttp(live, m.id, m.request) : live.onMessage?.(m),
    );
    worker.on("error", (e) =>
      live.onCrash?.(`the interpreter crashed (${e.message}); the next run starts afresh`),
    );
    worker.on("exit", (code) => {
      if (this.#live === live) this.#live = undefined;
      const why = `the interpreter stopped unexpectedly (worker exit code ${code}); the next run starts afresh`;
      live.onCrash?.(live.killedBecause ?? why);
    });
    return live;
  }

  /** Answers one request of the worker's Python through the sandbox's egress fetch. */
  #serveHttp(live: Live, id: number, request: PythonHttpRequest): void {
    void answerPythonHttp(request, this.#opts.fetch?.(), live.httpAbort.signal).then((a) => {
      if (live.killedBecause) return;
      live.httpPort.postMessage({ id, ...a });
      Atomics.add(live.httpSignal, 0, 1);
      Atomics.notify(live.httpSignal, 0);
    });
  }

  async #kill(live: Live, reason: string): Promise<void> {
    if (this.#live === live) this.#live = undefined;
    live.killedBecause ??= reason;
    live.httpAbort.abort();
    live.httpPort.close();
    live.port.close();
    await live.worker.terminate();
  }
}
