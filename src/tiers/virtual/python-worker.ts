/**
 * Worker-thread side of {@link PythonRuntime}: one long-lived CPython
 * (just-bash's vendored Emscripten build) per sandbox, over the sandbox's
 * SQLite workspace.
 *
 * The interpreter runs a driver loop (`DRIVER`, below) under a single
 * `callMain`. The driver reads jobs from a control device, `/dev/kiln`, whose
 * read blocks this thread (Atomics.wait) until the host posts a job on the
 * MessagePort it gave us; the worker is busy inside WASM the whole time, so
 * jobs arrive by `receiveMessageOnPort`, never by events. Output goes the
 * other way with `parentPort.postMessage`, which works from a busy thread.
 *
 * Layout: each top-level directory of the store (/workspace, /tmp, /home...)
 * is mounted at the same path, so paths mean the same as in bash; the stdlib
 * zip and this driver live in memory under /.kiln. Files directly in the
 * store's root, and directories Python creates at the top level, stay out of
 * the store (in Emscripten's memory filesystem).
 *
 * The build has no JS bridge (`import js` fails) and this file adds none: the
 * only ways out of the interpreter are the filesystem below and the devices.
 */
import { createRequire } from "node:module";
import { join } from "node:path";
import { type MessagePort, parentPort, receiveMessageOnPort, workerData } from "node:worker_threads";
import { AgentFsStore, isDir, isFile, ROOT_INO, S_IFLNK, S_IFMT } from "../../workspace/agentfs-store.ts";
import { ERRNO_NUMBERS, FsError } from "../../workspace/fs-error.ts";

/** What the host passes in `workerData`. */
export interface PythonWorkerData {
  databasePath: string;
  /** Jobs arrive here (read synchronously with receiveMessageOnPort). */
  port: MessagePort;
  /** Int32Array view: [0] job counter (Atomics.notify), [1] pending signal for Python. */
  signals: SharedArrayBuffer;
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
  | { mode: "repl"; code: string; context: string; cwd: string; env: Record<string, string> };

/** Messages this worker posts to the host. */
export type WorkerMessage =
  | { type: "started" }
  /** The driver caught the host's interrupt: the user's code has unwound. */
  | { type: "interrupted" }
  | { type: "out"; fd: 1 | 2; data: Uint8Array }
  | { type: "done"; exitCode: number }
  | { type: "exited"; exitCode: number; error?: string };

// ---- Emscripten and WebAssembly types (only what this file touches) --------

/** The project's lib has no WebAssembly types (they come with the DOM lib). */
interface Wasm {
  instantiate(module: object, imports: object): Promise<{ exports: Record<string, unknown> }>;
}
const wasm = (globalThis as unknown as { WebAssembly: Wasm }).WebAssembly;

interface EmNode {
  id: number;
  name: string;
  mode: number;
  parent: EmNode;
  mount: EmMount;
  mounted: EmMount | null;
  node_ops: object;
  stream_ops: object;
  name_next?: EmNode;
  /** Our field: the AgentFS inode this node stands for. */
  storeIno: number;
}
interface EmMount {
  type: object;
  opts: { root: string };
  root: EmNode;
}
interface EmStream {
  node: EmNode;
  position: number;
}
interface EmFS {
  ErrnoError: new (errno: number) => Error;
  nameTable: (EmNode | undefined)[];
  createNode(parent: EmNode | null, name: string, mode: number, rdev: number): EmNode;
  hashRemoveNode(node: EmNode): void;
  lookupNode(parent: EmNode, name: string): EmNode;
  lookupPath(path: string): { node: EmNode };
  mount(type: object, opts: { root: string }, mountpoint: string): EmNode;
  mkdir(path: string): void;
  mkdirTree(path: string): void;
  writeFile(path: string, data: Uint8Array): void;
  registerDevice(dev: number, ops: object): void;
  makedev(major: number, minor: number): number;
  mkdev(path: string, dev: number): void;
  open(path: string, flags: number): unknown;
}
interface EmModule {
  FS: EmFS;
  ENV: Record<string, string>;
  callMain(args: string[]): number;
  _Py_EMSCRIPTEN_SIGNAL_HANDLING: number;
  Py_EmscriptenSignalBuffer?: Int32Array;
}

const EIO = 29;
const ESPIPE = 70;
/** Top-level names that stay Emscripten's own (or hold the stdlib), never mounted from the store. */
const RESERVED = new Set(["dev", "proc", ".kiln"]);
/** Where the stdlib zip lives inside the interpreter. */
const PYTHON_HOME = "/.kiln/python";
/** The driver's file, so that its frames can be told apart in tracebacks. */
const DRIVER_PATH = "/.kiln/driver.py";
/** Output is batched: posted when this many bytes wait, or when this much time passed. */
const FLUSH_BYTES = 64 * 1024;
const FLUSH_MS = 20;

const data = workerData as PythonWorkerData;
const signals = new Int32Array(data.signals);
const store = AgentFsStore.open(data.databasePath, { maxBytes: data.maxDiskBytes });
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
  forgetCachedNodes(FS);
  mountStoreDirs(FS);
  const body = Buffer.from(JSON.stringify(job));
  ctlOut = Buffer.concat([Buffer.from(String(body.length).padStart(16, " ")), body]);
  ctlPos = 0;
}

function copyOut(src: Uint8Array, from: number, buffer: Int8Array, offset: number, length: number): number {
  const n = Math.min(length, src.length - from);
  if (n <= 0) return 0;
  new Uint8Array(buffer.buffer, buffer.byteOffset + offset, n).set(src.subarray(from, from + n));
  return n;
}

function bytesOf(buffer: Int8Array, offset: number, length: number): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset + offset, length);
}

function outputTo(fd: 1 | 2) {
  return (_s: EmStream, buf: Int8Array, off: number, len: number) => {
    emit(fd, bytesOf(buf, off, len));
    return len;
  };
}

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

// ---- the store as an Emscripten filesystem ----------------------------------

function createStoreFs(FS: EmFS) {
  const toErrno = (e: unknown): Error => {
    if (e instanceof FS.ErrnoError) return e;
    if (e instanceof FsError) return new FS.ErrnoError(ERRNO_NUMBERS[e.code]);
    return new FS.ErrnoError(EIO); // e.g. SQLITE_BUSY after the busy timeout
  };
  const guard = <T>(fn: () => T): T => {
    try {
      return fn();
    } catch (e) {
      throw toErrno(e);
    }
  };

  const node_ops = {
    getattr: (node: EmNode) =>
      guard(() => {
        const i = store.getattr(node.storeIno);
        node.mode = i.mode;
        return {
          dev: 1,
          ino: i.ino,
          mode: i.mode,
          nlink: i.nlink,
          uid: i.uid,
          gid: i.gid,
          rdev: 0,
          size: i.size,
          atime: new Date(i.atimeMs),
          mtime: new Date(i.mtimeMs),
          ctime: new Date(i.ctimeMs),
          blksize: 4096,
          blocks: Math.ceil(i.size / 512),
        };
      }),
    setattr: (
      node: EmNode,
      attr: { mode?: number; size?: number; atime?: number | null; mtime?: number | null },
    ) =>
      guard(() => {
        if (attr.mode !== undefined) {
          store.setattr(node.storeIno, { mode: attr.mode });
          node.mode = (node.mode & S_IFMT) | (attr.mode & 0o7777);
        }
        if (attr.size !== undefined) store.truncate(node.storeIno, attr.size);
        const times = { atimeMs: attr.atime ?? undefined, mtimeMs: attr.mtime ?? undefined };
        if (times.atimeMs !== undefined || times.mtimeMs !== undefined) store.setattr(node.storeIno, times);
      }),
    lookup: (parent: EmNode, name: string) =>
      guard(() => {
        const ino = store.lookup(parent.storeIno, name);
        if (ino === undefined) throw new FsError("ENOENT", "lookup", name);
        return makeNode(parent, name, ino, store.getattr(ino).mode);
      }),
    mknod: (parent: EmNode, name: string, mode: number) =>
      guard(() => {
        // Only files and directories: devices and FIFOs would mean nothing to bash.
        if (!isFile(mode) && !isDir(mode)) throw new FsError("EPERM", "mknod", name);
        return makeNode(parent, name, store.mknod(parent.storeIno, name, mode), mode);
      }),
    rename: (node: EmNode, newDir: EmNode, newName: string) =>
      guard(() => {
        let replaced: EmNode | undefined;
        try {
          replaced = FS.lookupNode(newDir, newName);
        } catch {}
        store.rename(node.parent.storeIno, node.name, newDir.storeIno, newName);
        // Emscripten re-hashes `node` itself; the replaced node must leave the cache.
        if (replaced && replaced !== node) FS.hashRemoveNode(replaced);
        node.name = newName;
      }),
    unlink: (parent: EmNode, name: string) => guard(() => store.unlink(parent.storeIno, name)),
    rmdir: (parent: EmNode, name: string) => guard(() => store.rmdir(parent.storeIno, name)),
    readdir: (node: EmNode) => guard(() => [".", "..", ...store.readdir(node.storeIno).map((d) => d.name)]),
    symlink: (parent: EmNode, name: string, target: string) =>
      guard(() => makeNode(parent, name, store.symlink(parent.storeIno, name, target), S_IFLNK | 0o777)),
    readlink: (node: EmNode) => guard(() => store.readlink(node.storeIno)),
  };

  const stream_ops = {
    read: (s: EmStream, buf: Int8Array, off: number, len: number, pos: number) =>
      guard(() => {
        if (isDir(s.node.mode)) throw new FsError("EISDIR", "read", s.node.name);
        return copyOut(store.read(s.node.storeIno, pos, len), 0, buf, off, len);
      }),
    write: (s: EmStream, buf: Int8Array, off: number, len: number, pos: number) =>
      guard(() => store.write(s.node.storeIno, pos, bytesOf(buf, off, len))),
    llseek: (s: EmStream, offset: number, whence: number) =>
      guard(() => {
        let pos = offset;
        if (whence === 1) pos += s.position;
        else if (whence === 2) pos += store.getattr(s.node.storeIno).size;
        if (pos < 0) throw new FsError("EINVAL", "llseek", s.node.name);
        return pos;
      }),
  };

  function makeNode(parent: EmNode | null, name: string, ino: number, mode: number): EmNode {
    const node = FS.createNode(parent, name, mode, 0);
    node.node_ops = node_ops;
    node.stream_ops = stream_ops;
    node.storeIno = ino;
    return node;
  }

  return {
    mount: (m: EmMount) =>
      guard(() =>
        makeNode(null, "/", store.inodeAt(m.opts.root), store.getattr(store.inodeAt(m.opts.root)).mode),
      ),
    node_ops,
    stream_ops,
  };
}

let enableInterrupts = () => {};
let STOREFS: object | undefined;
const mounted = new Set<string>();

/**
 * Mounts every top-level directory of the store (/workspace, /tmp, ...) at the
 * same path, so that paths mean the same in Python and in bash. Run before
 * each job, to pick up directories bash created since.
 */
function mountStoreDirs(FS: EmFS): void {
  STOREFS ??= createStoreFs(FS);
  for (const d of store.readdir(ROOT_INO)) {
    if (!isDir(d.mode) || RESERVED.has(d.name) || mounted.has(d.name)) continue;
    const at = `/${d.name}`;
    try {
      FS.mkdir(at);
    } catch {} // exists already (Emscripten's own /tmp and /home)
    try {
      FS.mount(STOREFS, { root: at }, at);
      mounted.add(d.name);
    } catch {} // not a directory on the Emscripten side: leave it
  }
}

/**
 * Drops cached store nodes from Emscripten's name cache. bash (another
 * connection) may have replaced any file since the last job; an open file
 * keeps its node, as POSIX wants.
 */
function forgetCachedNodes(FS: EmFS): void {
  const stale: EmNode[] = [];
  for (const head of FS.nameTable) {
    for (let n = head; n; n = n.name_next) {
      if (n.mount?.type === STOREFS && n !== n.mount.root && !n.mounted) stale.push(n);
    }
  }
  for (const n of stale) FS.hashRemoveNode(n);
}

// ---- the driver ---------------------------------------------------------------

/** The Python loop that runs jobs; kept in Python so that exceptions and exits are Python's own. */
const DRIVER = `
import builtins, io, json, os, runpy, sys, traceback, types

_ctl = os.open("/dev/kiln", os.O_RDWR)
_stdlib = sys.prefix + "/"  # the stdlib zip and frozen modules live under it
_driver = __file__
_base_path = [p for p in sys.path if p != os.path.dirname(_driver)]
_contexts = {}

def _recv():
    n = int(os.read(_ctl, 16))
    buf = bytearray()
    while len(buf) < n:
        buf += os.read(_ctl, n - len(buf))
    return json.loads(buf)

def _module(name):
    m = types.ModuleType(name)
    m.__builtins__ = builtins
    return m

def _reset_io():
    # Fresh streams per job: a job may have closed or replaced them.
    def text(fd, mode, errors):
        raw = open(fd, mode + "b", closefd=False)
        return io.TextIOWrapper(raw, encoding="utf-8", errors=errors, line_buffering=(mode == "w"))
    sys.stdin = sys.__stdin__ = text(0, "r", "surrogateescape")
    sys.stdout = sys.__stdout__ = text(1, "w", "surrogateescape")
    sys.stderr = sys.__stderr__ = text(2, "w", "backslashreplace")

def _forget_user_modules():
    # A fresh python3 would re-import the workspace's modules; the stdlib stays warm.
    for name, m in list(sys.modules.items()):
        f = getattr(m, "__file__", None)
        if isinstance(f, str) and not f.startswith(_stdlib):
            del sys.modules[name]

def _print_exc(e):
    # Hide the driver's own frames, as a fresh python3 would have none.
    tb = e.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == _driver:
        tb = tb.tb_next
    traceback.print_exception(type(e), e, tb)

def _script(argv):
    i = 0
    while i < len(argv) and argv[i] in ("-u", "-B", "-E", "-s", "-S", "-I", "-q", "-O", "-OO", "-b"):
        i += 1
    rest = argv[i:]
    if rest and rest[0] in ("-V", "--version"):
        print("Python " + sys.version.split()[0])
        return 0
    if rest and rest[0] == "-c":
        if len(rest) < 2:
            print("Argument expected for the -c option", file=sys.stderr)
            return 2
        sys.argv = ["-c"] + rest[2:]
        sys.path.insert(0, "")
        return _exec(compile(rest[1], "<string>", "exec"), "<string>")
    if rest and rest[0] == "-m":
        if len(rest) < 2:
            print("Argument expected for the -m option", file=sys.stderr)
            return 2
        sys.argv = [rest[1]] + rest[2:]
        sys.path.insert(0, os.getcwd())
        runpy.run_module(rest[1], run_name="__main__", alter_sys=True)
        return 0
    if rest and rest[0].startswith("-") and rest[0] != "-":
        print("Unknown option: " + rest[0], file=sys.stderr)
        return 2
    if not rest or rest[0] == "-":
        sys.argv = rest or [""]
        sys.path.insert(0, "")
        return _exec(compile(sys.stdin.read(), "<stdin>", "exec"), "<stdin>")
    path = rest[0]
    sys.argv = rest
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    try:
        with open(path, "rb") as f:
            src = f.read()
    except OSError as e:
        print("python3: can't open file %r: [Errno %d] %s" % (os.path.abspath(path), e.errno, e.strerror), file=sys.stderr)
        return 2
    return _exec(compile(src, path, "exec"), path)

def _exec(code, file):
    m = _module("__main__")
    m.__file__ = file
    sys.modules["__main__"] = m
    exec(code, m.__dict__)
    return 0

def _repl(job):
    m = _contexts.get(job["context"])
    if m is None:
        m = _contexts[job["context"]] = _module("__main__")
    sys.modules["__main__"] = m
    sys.argv = [""]
    sys.path.insert(0, "")
    exec(compile(job["code"], "<stdin>", "exec"), m.__dict__)
    return 0

def _exit_code(e):
    c = e.code
    if c is None:
        return 0
    if isinstance(c, int):
        return c & 0xFF
    print(c, file=sys.stderr)
    return 1

def _job(job):
    _reset_io()
    os.environ.clear()
    os.environ.update(job["env"])
    sys.path[:] = _base_path
    try:
        os.chdir(job["cwd"])
    except OSError:
        os.chdir("/")
    try:
        return _repl(job) if job["mode"] == "repl" else _script(job["argv"])
    except SystemExit as e:
        return _exit_code(e)
    except KeyboardInterrupt as e:
        _unwound()
        _print_exc(e)
        return 130
    except BaseException as e:
        _print_exc(e)
        return 1
    finally:
        if job["mode"] == "script":
            _forget_user_modules()

def _unwound():
    # Tell the host the user's code is gone: what is left is the driver's own.
    try:
        os.write(_ctl, b"+")
    except KeyboardInterrupt:
        pass

def _report(code):
    # The host interrupts at most once per job; if that lands here, just try again.
    while True:
        try:
            for s in (sys.stdout, sys.stderr):
                try:
                    s.flush()
                except Exception:
                    pass
            os.write(_ctl, str(code).encode())
            return
        except KeyboardInterrupt:
            pass

while True:
    try:
        job = _recv()
        code = _job(job)
    except KeyboardInterrupt:
        # Landed in the driver itself, between jobs or before one began: the
        # job (if any) counts as interrupted; the host's grace kill covers the rest.
        _unwound()
        code = 130
    _report(code)
`;

// ---- boot -------------------------------------------------------------------------

async function boot(): Promise<EmModule> {
  const require = createRequire(import.meta.url);
  const createPythonModule = require(join(data.vendorDir, "python.cjs")) as (
    arg: object,
  ) => Promise<EmModule>;
  const { readFileSync } = await import("node:fs");
  const stdlib = readFileSync(join(data.vendorDir, "python313.zip"));
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
        m.FS.writeFile(DRIVER_PATH, Buffer.from(DRIVER));
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
  mountStoreDirs(mod.FS);
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
