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

class _OnRealTiersOnly:
    """Last on sys.meta_path: an import of a package this Python cannot have says where it is.

    No WASM build of these is on npm (docs/code-interpreter.md), so a cell
    that needs one gets a ModuleNotFoundError naming the alternative instead
    of a bare "No module named". A package of that name in the workspace is
    still found first.
    """
    _NAMES = ("numpy", "pandas", "matplotlib", "scipy", "IPython")  # IPython: all but IPython.display

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        top = name.partition(".")[0]
        if top not in cls._NAMES:
            return None
        raise ModuleNotFoundError(
            "No module named %r: the virtual tier's WASM Python has no %s (no WASM build of it is on npm); "
            "run the cell on a real tier with the code-interpreter template (E2B's code-interpreter-v1)"
            % (name, top), name=name)

sys.meta_path.append(_OnRealTiersOnly)

class _HttpOnImport:
    """First on sys.meta_path: once urllib.request has loaded, its HTTP goes to the host.

    kiln_http.py (beside this driver) sends urllib's requests through the
    host's egress path. Done on first import, not at boot: urllib.request
    pulls in much of the stdlib, which would slow every interpreter's start.
    """

    class _Loader:
        def __init__(self, loader):
            self._loader = loader

        def __getattr__(self, name):
            return getattr(self._loader, name)

        def create_module(self, spec):
            return self._loader.create_module(spec)

        def exec_module(self, module):
            self._loader.exec_module(module)
            import importlib.util
            here = os.path.join(os.path.dirname(_driver), "kiln_http.py")
            spec = importlib.util.spec_from_file_location("_kiln_http", here)
            http = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(http)
            http.install(module)

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name != "urllib.request":
            return None
        for finder in sys.meta_path:
            if finder is cls or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                spec.loader = cls._Loader(spec.loader)
                return spec
        return None

sys.meta_path.insert(0, _HttpOnImport)

def _ipython_display_module():
    """``IPython.display`` as far as cells use it: display() and the rich-object classes.

    The classes carry the same ``_repr_*_`` methods as IPython's, so a cell
    written for Jupyter (``display(HTML(...))``, ``Image(data=png)``) gives the
    same results here as on a real tier; the rest of IPython is not here.
    """
    ipython = types.ModuleType("IPython")
    ipython.__path__ = []  # a package: its other submodules go to the finders, and are refused
    disp = types.ModuleType("IPython.display")

    class _Data:
        _binary = False

        def __init__(self, data=None, url=None, filename=None, metadata=None, **_kwargs):
            if data is None and filename is not None:
                with open(filename, "rb" if self._binary else "r") as f:
                    data = f.read()
            self.data = data
            self.metadata = metadata

        def __repr__(self):
            return "<IPython.core.display.%s object>" % type(self).__name__

    def rich(name, method, binary=False):
        cls = type(name, (_Data,), {"_binary": binary, method: lambda self: self.data})
        setattr(disp, name, cls)

    rich("HTML", "_repr_html_")
    rich("Markdown", "_repr_markdown_")
    rich("SVG", "_repr_svg_")
    rich("Latex", "_repr_latex_")
    rich("Math", "_repr_latex_")
    rich("Javascript", "_repr_javascript_")

    class JSON(_Data):
        def _repr_json_(self):
            return self.data

    class Image(_Data):
        _binary = True

        def __init__(self, data=None, url=None, filename=None, format=None, **kwargs):
            _Data.__init__(self, data, url, filename, **kwargs)
            head = bytes(self.data[:4]) if isinstance(self.data, (bytes, bytearray)) else b""
            self.format = (format or ("png" if head.startswith(b"\x89PNG") else "jpeg")).lower()

        def _repr_png_(self):
            return self.data if self.format == "png" else None

        def _repr_jpeg_(self):
            return self.data if self.format in ("jpeg", "jpg") else None

    class Pretty(_Data):
        def __repr__(self):
            return str(self.data)

    disp.JSON, disp.Image, disp.Pretty = JSON, Image, Pretty
    disp.display = lambda *objs, **kwargs: _display(*objs, **kwargs)
    ipython.display = disp
    ipython.get_ipython = lambda: None
    sys.modules["IPython"] = ipython
    sys.modules["IPython.display"] = disp

_ipython_display_module()

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

def _event(ev):
    # A cell's structured event (a result, its error, the count), to the host through the control device.
    for st in (sys.stdout, sys.stderr):
        try:
            st.flush()
        except Exception:
            pass
    os.write(_ctl, json.dumps(ev, default=str).encode())

_REPRS = (("html", "_repr_html_"), ("markdown", "_repr_markdown_"), ("svg", "_repr_svg_"),
          ("latex", "_repr_latex_"), ("json", "_repr_json_"), ("javascript", "_repr_javascript_"),
          ("png", "_repr_png_"), ("jpeg", "_repr_jpeg_"))
_MIME = {"text/plain": "text", "text/html": "html", "text/markdown": "markdown", "image/svg+xml": "svg",
         "text/latex": "latex", "application/json": "json", "application/javascript": "javascript",
         "image/png": "png", "image/jpeg": "jpeg"}

def _bundle(obj):
    # Jupyter's display rules, as far as this Python goes: a mimebundle, the _repr_*_ methods, then repr.
    import base64, pprint
    out = {}
    def put(key, v):
        if isinstance(v, tuple) and len(v) == 2 and isinstance(v[1], dict):
            v = v[0]
        if v is None or key in out:
            return
        if isinstance(v, (bytes, bytearray)):
            v = base64.b64encode(v).decode("ascii") if key in ("png", "jpeg") else v.decode("utf-8", "replace")
        out[key] = v
    if not isinstance(obj, type):
        mb = getattr(obj, "_repr_mimebundle_", None)
        if callable(mb):
            try:
                r = mb()
                for mime, v in ((r[0] if isinstance(r, tuple) else r) or {}).items():
                    if mime in _MIME:
                        put(_MIME[mime], v)
            except Exception:
                pass
        for key, meth in _REPRS:
            f = getattr(obj, meth, None)
            if callable(f):
                try:
                    put(key, f())
                except Exception:
                    pass
    if "text" not in out:
        try:
            out["text"] = pprint.pformat(obj, sort_dicts=False) if isinstance(obj, (dict, list, tuple, set)) else repr(obj)
        except Exception as e:
            out["text"] = "<unprintable %s: %s>" % (type(obj).__name__, e)
    return out

def _display(*objs, **_kwargs):
    for obj in objs:
        _event({"type": "result", "result": dict(_bundle(obj), isMainResult=False)})

_counts = {}

def _repl(job):
    import ast, linecache
    name = job["context"]
    m = _contexts.get(name)
    if m is None:
        m = _contexts[name] = _module("__main__")
    sys.modules["__main__"] = m
    sys.argv = [""]
    sys.path.insert(0, "")
    builtins.display = _display
    n = _counts[name] = _counts.get(name, 0) + 1
    filename = "<cell-%d>" % n
    code = job["code"]
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    try:
        tree = ast.parse(code, filename, "exec")
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        if tree.body:
            exec(compile(ast.Module(body=tree.body, type_ignores=[]), filename, "exec"), m.__dict__)
        if last is not None:
            value = eval(compile(ast.Expression(body=last.value), filename, "eval"), m.__dict__)
            if value is not None:
                m.__dict__["_"] = value
                _event({"type": "result", "result": dict(_bundle(value), isMainResult=True)})
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as e:
        tb = e.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == _driver:
            tb = tb.tb_next
        lines = traceback.format_exception(type(e), e, tb) if tb is not None else traceback.format_exception_only(type(e), e)
        _event({"type": "error", "error": {"name": type(e).__name__, "value": str(e), "traceback": "".join(lines)}})
        return 1
    finally:
        _event({"type": "done", "executionCount": n})
    return 0

def _reset(job):
    _contexts.pop(job["context"], None)
    _counts.pop(job["context"], None)
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
        if job["mode"] == "reset":
            return _reset(job)
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
