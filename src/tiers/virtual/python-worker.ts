/**
 * Worker-thread side of {@link PythonRuntime}: one long-lived CPython
 * (just-bash's vendored Emscripten build) per sandbox, over the sandbox's
 * SQLite workspace.
 *
 * The interpreter runs a driver loop (`python-driver.py`, beside this file) under a single
 * `callMain`. The driver reads jobs from a control device, `/dev/kiln`, whose
 * read blocks this thread (Atomics.wait) until the host posts a job on the
 * MessagePort it gave us; the worker is busy inside WASM the whole time, so
 * jobs arrive by `receiveMessageOnPort`, never by events. Output goes the
 * other way with `parentPort.postMessage`, which works from a busy thread.
 *
 * Layout: each top-level directory of the store (/workspace, /tmp, /home...)
 * is mounted at the same path (`python-store-fs.ts`), so paths mean the same as in bash; the stdlib
 * zip and this driver live in memory under /.kiln. Files directly in the
 * store's root, and directories Python creates at the top level, stay out of
 * the store (in Emscripten's memory filesystem).
 *
 * The build has no JS bridge (`import js` fails) and this file adds none: the
 * only ways out of the interpreter are the filesystem below and the devices,
 * /dev/kiln-http among them (HTTP through the host's egress path, python-http.ts).
 */
import { createRequire } from "node:module";
import { join } from "node:path";
import { type MessagePort, parentPort, receiveMessageOnPort, workerData } from "node:worker_threads";
import { AgentFsStore } from "../../workspace/agentfs-store.ts";
import { frame, type PythonHttpAnswer, type PythonHttpRequest, parseRequest } from "./python-http-wire.ts";
import { bytesOf, copyOut, type EmFS, type EmStream, StoreMounts } from "./python-store-fs.ts";

/** What the host passes in `workerData`. */
export interface PythonWorkerData {
  databasePath: string;
  /** Jobs arrive here (read synchronously with receiveMessageOnPort). */
  port: MessagePort;
  /** Int32Array view: [0] job counter (Atomics.notify), [1] pending signal for Python. */
  signals: SharedArrayBuffer;
  /** Answers to HTTP requests arrive here (python-http.ts). */
  httpPort: MessagePort;
  /** Int32Array view: [0] answer counter (Atomics.notify). */
  httpSignal: SharedArrayBuffer;
  /** Compiled python.wasm, shared so that restarts skip compilation. */
  wasmModule: object;
  /** Directory holding python.cjs and python313.zip. */
  vendorDir: string;
  maxMemoryBytes: number;
  maxDiskBytes?: number;
}

/** A job as the driver receives it (stdin stays on the JS side, served by fd 0). */
export type WorkerJob =
  | { mode: "script"; argv: string[]; cwd: string; env: Record<string, string> }
  | { mode: "repl"; code: string; context: string; cwd: string; env: Record<string, string> }
  | { mode: "reset"; context: string; cwd: string; env: Record<string, string> };

/** Messages this worker posts to the host. */
export type WorkerMessage =
  | { type: "started" }
  /** The driver caught the host's interrupt: the user's code has unwound. */
  | { type: "interrupted" }
  | { type: "out"; fd: 1 | 2; data: Uint8Array }
  | { type: "done"; exitCode: number }
  /** A cell's structured event (a result, its error, the execution count), as core's CellEvent. */
  | { type: "event"; event: object }
  /** An HTTP request from Python, to be answered on `httpPort` with the same `id`. */
  | { type: "http"; id: number; request: PythonHttpRequest }
  | { type: "exited"; exitCode: number; error?: string };

// ---- WebAssembly and the Emscripten module (only what this file touches) ----

/** The project's lib has no WebAssembly types (they come with the DOM lib). */
interface Wasm {
  instantiate(module: object, imports: object): Promise<{ exports: Record<string, unknown> }>;
}
const wasm = (globalThis as unknown as { WebAssembly: Wasm }).WebAssembly;

interface EmModule {
  FS: EmFS;
  ENV: Record<string, string>;
  callMain(args: string[]): number;
  _Py_EMSCRIPTEN_SIGNAL_HANDLING: number;
  Py_EmscriptenSignalBuffer?: Int32Array;
}

const ESPIPE = 70;
/** Top-level names that stay Emscripten's own (or hold the stdlib), never mounted from the store. */
const RESERVED = new Set(["dev", "proc", ".kiln"]);
/** Where the stdlib zip lives inside the interpreter. */
const PYTHON_HOME = "/.kiln/python";
/** The driver's file inside the interpreter, so that its frames can be told apart in tracebacks. */
const DRIVER_PATH = "/.kiln/driver.py";
/** The driver's source beside this module (copied into dist/ with the compiled CLI). */
const DRIVER_SOURCE = new URL("./python-driver.py", import.meta.url);
/** urllib's HTTP through the host, loaded by the driver from beside itself. */
const HTTP_SOURCE = new URL("./python-http.py", import.meta.url);
const HTTP_PATH = "/.kiln/kiln_http.py";
/** Output is batched: posted when this many bytes wait, or when this much time passed. */
const FLUSH_BYTES = 64 * 1024;
const FLUSH_MS = 20;

const data = workerData as PythonWorkerData;
const signals = new Int32Array(data.signals);
const httpSignal = new Int32Array(data.httpSignal);
const store = AgentFsStore.open(data.databasePath, { maxBytes: data.maxDiskBytes });
const storeMounts = new StoreMounts(store, RESERVED);
const post = (m: WorkerMessage) => parentPort!.postMessage(m);

// ---- output batching --------------------------------------------------------

/** Runs of output per stream, in order; copied out of the WASM heap, joined when posted. */
let pending: { fd: 1 | 2; parts: Uint8Array[] }[] = [];
let pendingBytes = 0;
let lastFlush = 0;
/** False until the driver asks for its first job: boot-time noise is kept for crash reports only. */
let jobActive = false;
const bootOutput: string[] = [];

function flush(): void {
  for (const c of pending) post({ type: "out", fd: c.fd, data: Buffer.concat(c.parts) });
  pending = [];
  pendingBytes = 0;
  lastFlush = performance.now();
}

function emit(fd: 1 | 2, bytes: Uint8Array): void {
  if (!jobActive) {
    bootOutput.push(Buffer.from(bytes).toString());
    return;
  }
  const last = pending.at(-1);
  if (last && last.fd === fd) last.parts.push(bytes.slice());
  else pending.push({ fd, parts: [bytes.slice()] });
  pendingBytes += bytes.length;
  if (pendingBytes >= FLUSH_BYTES || performance.now() - lastFlush >= FLUSH_MS) flush();
}

// ---- job channel ------------------------------------------------------------

let stdin: Uint8Array = new Uint8Array(0);
let stdinPos = 0;
let ctlOut: Uint8Array = new Uint8Array(0);
let ctlPos = 0;

/** Blocks this thread until the host posts the next job. */
function waitForJob(): { job: WorkerJob; stdin?: Uint8Array } {
  for (;;) {
    const seen = Atomics.load(signals, 0);
    const m = receiveMessageOnPort(data.port);
    if (m) return m.message;
    // The timeout only bounds each wait; a job wakes us through Atomics.notify.
    Atomics.wait(signals, 0, seen, 10_000);
  }
}

function nextJob(FS: EmFS): void {
  flush();
  jobActive = true;
  const { job, stdin: input } = waitForJob();
  // A signal the host raised for the previous job must not hit this one.
  Atomics.store(signals, 1, 0);
  enableInterrupts();
  post({ type: "started" });
  stdin = input ?? new Uint8Array(0);
  stdinPos = 0;
  storeMounts.refresh(FS);
  const body = Buffer.from(JSON.stringify(job));
  ctlOut = Buffer.concat([Buffer.from(String(body.length).padStart(16, " ")), body]);
  ctlPos = 0;
}

function outputTo(fd: 1 | 2) {
  return (_s: EmStream, buf: Int8Array, off: number, len: number) => {
    emit(fd, bytesOf(buf, off, len));
    return len;
  };
}

// ---- HTTP through the host ---------------------------------------------------

/** What Python has written of its request, until it is whole. */
let httpIn: Uint8Array[] = [];
/** The answer being read. */
let httpOut: Uint8Array = new Uint8Array(0);
let httpOutPos = 0;
let httpId = 0;

/**
 * Posts the request and blocks until the host answers it. An interrupt for
 * Python (signals[1]) ends the wait, so that a job stopped mid-request unwinds;
 * an answer that comes after is dropped by its id.
 */
function exchangeHttp(request: PythonHttpRequest): Uint8Array {
  const id = ++httpId;
  flush();
  post({ type: "http", id, request });
  for (;;) {
    const seen = Atomics.load(httpSignal, 0);
    for (let m = receiveMessageOnPort(data.httpPort); m; m = receiveMessageOnPort(data.httpPort)) {
      const a = m.message as PythonHttpAnswer;
      if (a.id === id) return frame(a.head, a.body);
    }
    if (Atomics.load(signals, 1) !== 0)
      return frame({ error: "Kiln: interrupted", bodyLength: 0 }, new Uint8Array(0));
    Atomics.wait(httpSignal, 0, seen, 100);
  }
}

/** /dev/kiln-http: a request is written, then its answer read (python-http.py). */
function httpDevice(seekErr: () => never): object {
  return {
    open: () => {
      httpIn = [];
      httpOut = new Uint8Array(0);
      httpOutPos = 0;
    },
    write: (_s: EmStream, b: Int8Array, o: number, l: number) => {
      httpIn.push(bytesOf(b, o, l).slice());
      return l;
    },
    read: (_s: EmStream, buf: Int8Array, off: number, len: number) => {
      if (httpIn.length > 0) {
        let request: PythonHttpRequest | undefined;
        try {
          request = parseRequest(Buffer.concat(httpIn));
        } catch (e) {
          httpIn = [];
          const why = e instanceof SyntaxError ? "a malformed request" : (e as Error).message;
          httpOut = frame({ error: `Kiln: ${why}`, bodyLength: 0 }, new Uint8Array(0));
          httpOutPos = 0;
        }
        if (request) {
          httpIn = [];
          httpOut = exchangeHttp(request);
          httpOutPos = 0;
        }
      }
      const n = copyOut(httpOut, httpOutPos, buf, off, len);
      httpOutPos += n;
      return n;
    },
    llseek: seekErr,
  };
}

/** A cell event the driver is writing to /dev/kiln, until it parses. */
let pendingEvent = "";

/** Registers /dev/stdin, /dev/stdout, /dev/stderr and /dev/kiln, and opens fds 0-2 on them. */
function setupDevices(FS: EmFS): void {
  const seekErr = () => {
    throw new FS.ErrnoError(ESPIPE);
  };
  const devices: [string, object][] = [
    [
      "stdin",
      {
        read: (_s: EmStream, buf: Int8Array, off: number, len: number) => {
          const n = copyOut(stdin, stdinPos, buf, off, len);
          stdinPos += n;
          return n;
        },
        llseek: seekErr,
      },
    ],
    ["stdout", { write: outputTo(1) }],
    ["stderr", { write: outputTo(2) }],
    [
      "kiln",
      {
        read: (_s: EmStream, buf: Int8Array, off: number, len: number) => {
          if (ctlPos >= ctlOut.length) nextJob(FS);
          const n = copyOut(ctlOut, ctlPos, buf, off, len);
          ctlPos += n;
          return n;
        },
        // The driver writes "+" here when it catches the host's interrupt, and
        // a job's exit status when the job ends.
        write: (_s: EmStream, b: Int8Array, o: number, l: number) => {
          const text = Buffer.from(bytesOf(b, o, l)).toString();
          // A cell's event (JSON), possibly in more than one write: passed on once whole.
          if (pendingEvent !== "" || text.startsWith("{")) {
            pendingEvent += text;
            try {
              const event = JSON.parse(pendingEvent) as object;
              pendingEvent = "";
              flush();
              post({ type: "event", event });
            } catch {
              // Not whole yet.
            }
            return l;
          }
          if (text === "+") {
            post({ type: "interrupted" });
            return l;
          }
          const exitCode = Number(text) || 0;
          flush();
          post({ type: "done", exitCode });
          return l;
        },
        llseek: seekErr,
      },
    ],
    ["kiln-http", httpDevice(seekErr)],
  ];
  devices.forEach(([name, ops], i) => {
    const dev = FS.makedev(64, i);
    FS.registerDevice(dev, ops);
    FS.mkdev(`/dev/${name}`, dev);
  });
  FS.open("/dev/stdin", 0);
  FS.open("/dev/stdout", 1);
  FS.open("/dev/stderr", 1);
}

/** Turns on KeyboardInterrupt delivery once the driver is up (set at boot). */
let enableInterrupts = () => {};

// ---- boot -------------------------------------------------------------------------

async function boot(): Promise<EmModule> {
  const require = createRequire(import.meta.url);
  const createPythonModule = require(join(data.vendorDir, "python.cjs")) as (
    arg: object,
  ) => Promise<EmModule>;
  const { readFileSync } = await import("node:fs");
  const stdlib = readFileSync(join(data.vendorDir, "python313.zip"));
  const driver = readFileSync(DRIVER_SOURCE);
  const httpModule = readFileSync(HTTP_SOURCE);
  let memory: { buffer: ArrayBuffer } | undefined;
  const mod = await createPythonModule({
    noInitialRun: true,
    noFSInit: true, // we open fds 0-2 ourselves, on our devices
    print: (s: string) => bootOutput.push(s),
    printErr: (s: string) => bootOutput.push(s),
    instantiateWasm(imports: { env: Record<string, unknown> }, done: (instance: object) => void) {
      // Cap memory growth: Python then raises MemoryError instead of the worker dying.
      const grow = imports.env.emscripten_resize_heap as ((n: number) => number) | undefined;
      if (grow)
        imports.env.emscripten_resize_heap = (n: number) => (n >>> 0 > data.maxMemoryBytes ? 0 : grow(n));
      wasm.instantiate(data.wasmModule, imports).then((inst) => {
        memory = inst.exports.memory as { buffer: ArrayBuffer };
        done(inst);
      });
      return {};
    },
    preRun: [
      (m: EmModule) => {
        m.FS.mkdirTree(`${PYTHON_HOME}/lib/python3.13/lib-dynload`);
        m.FS.writeFile(`${PYTHON_HOME}/lib/python313.zip`, stdlib);
        m.FS.writeFile(DRIVER_PATH, driver);
        m.FS.writeFile(HTTP_PATH, httpModule);
        m.ENV.PYTHONHOME = PYTHON_HOME;
        m.ENV.PYTHONPATH = `${PYTHON_HOME}/lib/python313.zip`;
        m.ENV.PYTHONDONTWRITEBYTECODE = "1";
        setupDevices(m.FS);
      },
    ],
  });
  // The host interrupts running Python code (KeyboardInterrupt) through signals[1].
  mod.Py_EmscriptenSignalBuffer = new Int32Array(data.signals, 4, 1);
  enableInterrupts = () => {
    // Only once the driver is up: an interrupt during its imports would kill it.
    if (memory) new Uint8Array(memory.buffer)[mod._Py_EMSCRIPTEN_SIGNAL_HANDLING] = 1;
    enableInterrupts = () => {};
  };
  storeMounts.refresh(mod.FS);
  return mod;
}

function describe(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

try {
  const mod = await boot();
  let exitCode = 1;
  let error: string | undefined;
  try {
    // Returns only when Python exits (os._exit() in a job): a plain exit status.
    exitCode = mod.callMain([DRIVER_PATH]);
  } catch (e) {
    // A WASM trap (stack overflow, unreachable) or an abort.
    const status = (e as { status?: number }).status;
    if (typeof status === "number") exitCode = status;
    else error = `the interpreter crashed (${describe(e)})`;
  }
  flush();
  if (!jobActive)
    error = [error ?? `the interpreter failed to start (status ${exitCode})`, ...bootOutput].join("\n");
  post({ type: "exited", exitCode, error });
} catch (e) {
  post({ type: "exited", exitCode: 1, error: `failed to start: ${describe(e)}\n${bootOutput.join("\n")}` });
} finally {
  store.close();
}
