"""The job loop of the virtual tier's Python (CPython compiled to WASM).

Loaded by python-worker.ts, which runs it as the interpreter's main script
under a single callMain. It reads jobs from the control device /dev/kiln
(a decimal length, then that many bytes of JSON), runs each as a fresh
``python3`` would (a script, -c, -m, stdin) or as a cell of a named context
(the REPL mode of runCode), and writes the exit status back to the device.
Kept in Python so that exceptions and exits are Python's own.
"""
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
