# Kiln's Python kernel: one process per code context, inside the sandbox.
#
# Started by Kiln as `python3 -u -c <this file>`; speaks JSON lines.
#   in  (stdin, one request a line):  {"code": "...", "env": {...}}
#   out (the original stdout):        {"type": "ready", "version": 1}
#                                     {"type": "stdout" | "stderr", "text": "..."}
#                                     {"type": "result", "is_main_result": bool, "text": ..., "html": ..., ...}
#                                     {"type": "error", "name": ..., "value": ..., "traceback": ...}
#                                     {"type": "done", "execution_count": n}
# File descriptors 1 and 2 of the user's code (and of its subprocesses) are
# pipes read by this kernel, so nothing the code prints can break the framing;
# stdin is /dev/null. SIGINT interrupts the running cell and is ignored between cells.
import ast
import base64
import builtins
import codecs
import importlib.abc
import io
import json
import linecache
import math
import os
import pprint
import signal
import sys
import threading
import traceback

os.environ.setdefault("MPLBACKEND", "Agg")
_proto = os.fdopen(os.dup(1), "w", encoding="utf-8", newline="\n")
_requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
_null = os.open(os.devnull, os.O_RDONLY)
os.dup2(_null, 0)
os.close(_null)
_send_lock = threading.Lock()
_SYNC = b"\x00\x1ekiln-sync\x1e\x00"


def _send(msg):
    try:
        line = json.dumps(msg, ensure_ascii=False, allow_nan=False, default=str)
    except ValueError:
        line = json.dumps(_finite(msg), ensure_ascii=False, default=str)
    with _send_lock:
        _proto.write(line + "\n")
        _proto.flush()


def _finite(v):
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {str(k): _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


class _Pump:
    """Reads one of the user's output descriptors and forwards it as events."""

    def __init__(self, fd, kind):
        r, w = os.pipe()
        os.dup2(w, fd)
        os.close(w)
        self.fd, self.r, self.kind = fd, r, kind
        self.synced = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        dec = codecs.getincrementaldecoder("utf-8")("replace")
        carry = b""
        while True:
            chunk = os.read(self.r, 65536)
            if not chunk:
                return
            data = carry + chunk
            carry = b""
            while True:
                i = data.find(_SYNC)
                if i < 0:
                    break
                self._emit(dec.decode(data[:i]))
                self.synced.set()
                data = data[i + len(_SYNC) :]
            # Keep a tail that may be the start of a sync marker split across reads.
            for k in range(min(len(_SYNC) - 1, len(data)), 0, -1):
                if _SYNC.startswith(data[-k:]):
                    carry, data = data[-k:], data[:-k]
                    break
            self._emit(dec.decode(data))

    def _emit(self, text):
        if text:
            _send({"type": self.kind, "text": text})

    def sync(self):
        self.synced.clear()
        os.write(self.fd, _SYNC)
        self.synced.wait(30)


_pumps = [_Pump(1, "stdout"), _Pump(2, "stderr")]


def _sync_output():
    """Waits until what the cell printed so far has been sent, so that events keep their order."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        pass
    for p in _pumps:
        p.sync()
# Line-buffered: a print is one write (its newline included); a partial line goes out when the cell ends.
sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", buffering=0), encoding="utf-8", errors="backslashreplace", line_buffering=True)
sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", buffering=0), encoding="utf-8", errors="backslashreplace", line_buffering=True)
sys.__stdout__, sys.__stderr__ = sys.stdout, sys.stderr

# ---- display ---------------------------------------------------------------

_MIME = {
    "text/plain": "text",
    "text/html": "html",
    "text/markdown": "markdown",
    "image/svg+xml": "svg",
    "image/png": "png",
    "image/jpeg": "jpeg",
    "application/pdf": "pdf",
    "text/latex": "latex",
    "application/json": "json",
    "application/javascript": "javascript",
}
_REPRS = [
    ("html", "_repr_html_"),
    ("markdown", "_repr_markdown_"),
    ("svg", "_repr_svg_"),
    ("png", "_repr_png_"),
    ("jpeg", "_repr_jpeg_"),
    ("pdf", "_repr_pdf_"),
    ("latex", "_repr_latex_"),
    ("json", "_repr_json_"),
    ("javascript", "_repr_javascript_"),
]
_BINARY = {"png", "jpeg", "pdf"}


def _value(key, v):
    if isinstance(v, tuple) and len(v) == 2 and isinstance(v[1], dict):
        v = v[0]  # (data, metadata)
    if v is None:
        return None
    if key in _BINARY and isinstance(v, (bytes, bytearray)):
        return base64.b64encode(v).decode("ascii")
    if key == "json":
        return _finite(v if not isinstance(v, (str, bytes)) else json.loads(v))
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return v


def _is_figure(obj):
    mpl = sys.modules.get("matplotlib.figure")
    return mpl is not None and isinstance(obj, mpl.Figure)


def _text(obj):
    if isinstance(obj, (dict, list, tuple, set, frozenset)):
        return pprint.pformat(obj, width=79, sort_dicts=False)
    return repr(obj)


def _bundle(obj):
    out, extra = {}, {}
    if not isinstance(obj, type):
        mb = getattr(obj, "_repr_mimebundle_", None)
        if callable(mb):
            try:
                try:
                    r = mb(include=None, exclude=None)
                except TypeError:
                    r = mb()
                if isinstance(r, tuple):
                    r = r[0]
                for mime, v in (r or {}).items():
                    key = _MIME.get(mime)
                    if key is None:
                        extra[mime] = v if isinstance(v, (str, int, float, bool, list, dict)) else str(v)
                    else:
                        v = _value(key, v)
                        if v is not None:
                            out[key] = v
            except Exception:
                pass
        for key, meth in _REPRS:
            if key in out:
                continue
            f = getattr(obj, meth, None)
            if callable(f):
                try:
                    v = _value(key, f())
                    if v is not None:
                        out[key] = v
                except Exception:
                    pass
        if _is_figure(obj):
            buf = io.BytesIO()
            obj.savefig(buf, format="png", bbox_inches="tight")
            out["png"] = base64.b64encode(buf.getvalue()).decode("ascii")
            chart = _chart(obj)
            if chart is not None:
                out["chart"] = chart
    if "text" not in out:
        try:
            out["text"] = _text(obj)
        except Exception as e:
            out["text"] = "<unprintable %s: %s>" % (type(obj).__name__, e)
    if extra:
        out["extra"] = extra
    return out


def _num(v):
    try:
        f = float(v)
        return f if math.isfinite(f) else None
    except (TypeError, ValueError):
        return str(v)


def _label(artist):
    label = artist.get_label()
    return "" if not label or label.startswith("_") else str(label)


def _chart(fig):
    """Chart data of a figure with one plot of one clear kind (line, bar, scatter, pie)."""
    try:
        axes = fig.get_axes()
        if len(axes) != 1:
            return None
        ax = axes[0]
        from matplotlib.collections import PathCollection
        from matplotlib.container import BarContainer
        from matplotlib.patches import Wedge

        base = {"title": ax.get_title() or None}
        wedges = [p for p in ax.patches if isinstance(p, Wedge)]
        if wedges:
            elements = [{"label": _label(w), "angle": _num(w.theta2 - w.theta1), "radius": _num(w.r)} for w in wedges]
            return {**base, "type": "pie", "elements": elements}
        xy = {**base, "x_label": ax.get_xlabel() or None, "y_label": ax.get_ylabel() or None}
        bars = [c for c in ax.containers if isinstance(c, BarContainer)]
        if bars:
            ticks = {round(t, 6): lbl.get_text() for t, lbl in zip(ax.get_xticks(), ax.get_xticklabels())}
            elements = []
            for c in bars:
                group = _label(c)
                for rect in c.patches:
                    x = round(rect.get_x() + rect.get_width() / 2, 6)
                    elements.append({"label": ticks.get(x) or str(_num(x)), "group": group, "value": _num(rect.get_height())})
            return {**xy, "type": "bar", "elements": elements}
        scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
        if scatters:
            elements = [
                {"label": _label(c), "points": [[_num(x), _num(y)] for x, y in c.get_offsets()]} for c in scatters
            ]
            return {**xy, "type": "scatter", "elements": elements}
        lines = ax.get_lines()
        if lines:
            elements = [
                {"label": _label(ln), "points": [[_num(x), _num(y)] for x, y in zip(ln.get_xdata(), ln.get_ydata())]}
                for ln in lines
            ]
            return {**xy, "type": "line", "elements": elements}
    except Exception:
        return None
    return None


_shown = set()


def display(*objs, **kwargs):
    """Adds each object to the cell's results (IPython's `display`)."""
    for obj in objs:
        if kwargs.get("raw") and isinstance(obj, dict):
            b = {_MIME.get(k, k): _value(_MIME.get(k, k), v) for k, v in obj.items()}
        else:
            b = _bundle(obj)
        if _is_figure(obj):
            _shown.add(id(obj))
        _sync_output()
        _send({"type": "result", "is_main_result": False, **b})


def _show_figures(*_args, **_kwargs):
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return
    for num in plt.get_fignums():
        fig = plt.figure(num)
        if id(fig) not in _shown:
            display(fig)
    plt.close("all")


builtins.display = display


# Patches applied right after a module is first imported: IPython's display
# feeds this kernel, and pyplot.show() shows the figures as results.
def _patch_ipython(m):
    m.display = display


def _patch_pyplot(m):
    m.show = _show_figures


_HOOKS = {"IPython.core.display_functions": _patch_ipython, "IPython.display": _patch_ipython, "matplotlib.pyplot": _patch_pyplot}


class _PostImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        hook = _HOOKS.get(name)
        if hook is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
                run = spec.loader.exec_module

                def exec_module(module, run=run):
                    run(module)
                    hook(module)

                spec.loader.exec_module = exec_module
                return spec
        return None


sys.meta_path.insert(0, _PostImport())

# ---- cells -----------------------------------------------------------------

_ns = {"__name__": "__main__", "__builtins__": builtins}
_count = 0
_running = False
_loop = None
_CO_COROUTINE = 0x80
_FLAGS = getattr(ast, "PyCF_ALLOW_TOP_LEVEL_AWAIT", 0)


def _sigint(_signum, _frame):
    if _running:
        raise KeyboardInterrupt


signal.signal(signal.SIGINT, _sigint)


def _run_code(node, filename, mode):
    global _loop
    code = compile(node, filename, mode, flags=_FLAGS)
    r = eval(code, _ns)
    if code.co_flags & _CO_COROUTINE:
        import asyncio

        if _loop is None:
            _loop = asyncio.new_event_loop()
        r = _loop.run_until_complete(r)
    return r


_OWN = {"_sigint", "_run_code", "_cell", "_show_figures", "display", "exec_module"}


def _error(e):
    _sync_output()
    tb = e.__traceback__
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith("<cell-"):
        tb = tb.tb_next
    if isinstance(e, SyntaxError) and tb is None:
        lines = traceback.format_exception_only(type(e), e)
    else:
        te = traceback.TracebackException(type(e), e, tb)
        # The kernel's own frames (its SIGINT handler) are not the user's.
        te.stack = traceback.StackSummary.from_list(
            [f for f in te.stack if not (f.filename == "<string>" and f.name in _OWN)]
        )
        lines = list(te.format())
    _send({"type": "error", "name": type(e).__name__, "value": str(e), "traceback": "".join(lines)})


def _cell(req):
    global _count, _running
    _count += 1
    code = req.get("code", "")
    filename = "<cell-%d>" % _count
    env = req.get("env") or {}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    _shown.clear()
    try:
        _running = True
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        tree = ast.parse(code, filename, "exec")
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        if tree.body:
            _run_code(ast.Module(body=tree.body, type_ignores=[]), filename, "exec")
        if last is not None:
            value = _run_code(ast.Expression(body=last.value), filename, "eval")
            _running = False
            if value is not None:
                _ns["_"] = value
                b = _bundle(value)
                if _is_figure(value):
                    _shown.add(id(value))
                _sync_output()
                _send({"type": "result", "is_main_result": True, **b})
    except BaseException as e:
        _running = False
        _error(e)
    finally:
        _running = False
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    try:
        _show_figures()
    except Exception as e:
        _error(e)
    _sync_output()
    _send({"type": "done", "execution_count": _count})


_send({"type": "ready", "version": 1})
while True:
    try:
        line = _requests.readline()
        if not line:
            break
        _cell(json.loads(line))
    except KeyboardInterrupt:
        continue
