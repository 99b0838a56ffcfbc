"""Messages between the sandbox's two processes, and the helpers both use.

Part of the sandbox driver script: execute.py joins _wire.py, _worker.py, _monitor.py and _driver.py, in that
order, into the one program the interpreter runs with -c. It comes first and holds the imports.
"""

import marshal
import os
import sys

_MAX_MESSAGE = 64 << 20
_SCALARS = frozenset((type(None), bool, int, float, complex, str, bytes))
_CONTAINERS = (dict, list, tuple, set, frozenset)
# A value on the wire: ("v", plain data), ("g", module, qualified name) for a built-in or standard-library
# object (int, len, math.sqrt: each side uses its own), ("r", reference number[, type name, callable]) for an
# object that stays in the worker, or ("c", kind, items) for a container of those (items are pairs for "d").
_KINDS = {"d": dict, "l": list, "t": tuple, "s": set, "f": frozenset}
_MAX_DEPTH = 50


# -- messages -------------------------------------------------------------------------------------------
def _send(fd, message):
    data = marshal.dumps(message)
    if len(data) > _MAX_MESSAGE:
        raise MemoryError(f"a message of {len(data)} bytes is over the sandbox's {_MAX_MESSAGE}")
    view = memoryview(len(data).to_bytes(4, "big") + data)
    while view:
        view = view[os.write(fd, view):]


def _read(fd, size):
    chunks = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _receive(fd):
    """The next message; None at end of file; ValueError for a malformed one."""
    header = _read(fd, 4)
    if header is None:
        return None
    size = int.from_bytes(header, "big")
    if size > _MAX_MESSAGE:
        raise ValueError(f"message length {size}")
    body = _read(fd, size)
    if body is None:
        raise ValueError("message cut short")
    try:
        return marshal.loads(body)
    except Exception as exc:  # noqa: BLE001  EOFError, TypeError (an unhashable key), ...: all malformed
        raise ValueError(f"undecodable message: {exc}") from None


def _check_plain(value, depth=0):
    """Raise ValueError unless `value` is plain data of exact built-in types (what the monitor may compare)."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if depth > 200 or kind not in _CONTAINERS:
        raise ValueError(f"not plain data: {kind.__name__}")
    for item in (value.items() if kind is dict else value):
        if kind is dict:
            _check_plain(item[0], depth + 1)
            _check_plain(item[1], depth + 1)
        else:
            _check_plain(item, depth + 1)
    return value


# Standard-library modules that do something when imported (open a browser, print, start a GUI): never
# imported on the program's say-so.
_IMPORT_EFFECTS = frozenset(("antigravity", "this", "__hello__", "__phello__", "idlelib", "turtle", "turtledemo",
                             "tkinter", "webbrowser", "pydoc", "pdb", "code", "site"))


def _standard_module(module):
    """`module` itself, imported, if it is a standard-library module safe to import; else ValueError."""
    top = module.partition(".")[0]
    if module != "builtins" and (top not in sys.stdlib_module_names or top in _IMPORT_EFFECTS):
        raise ValueError(f"not a standard-library module that may be imported here: {module}")
    return __import__(module, fromlist=["_"])


_ROUTINES = (type, type(len), type(str.upper))  # classes, built-in functions, method descriptors


def _class_or_function(value):
    return isinstance(value, _ROUTINES) or hasattr(value, "__code__")


def _global_name(value):
    """(module, qualified name) when `value` is a class or function of the built-ins or the standard library
    (int, len, math.sqrt). Instances never qualify: one like unittest.mock.ANY equals everything."""
    if not _class_or_function(value):
        return None
    module, name = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
    if type(module) is not str or type(name) is not str:
        return None
    try:
        return (module, name) if _resolve_global(module, name) is value else None
    except (ValueError, AttributeError, ImportError):
        return None


def _resolve_global(module, name):
    """The class or function `module.name` (ValueError for anything else, or another module)."""
    target = _standard_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    if not _class_or_function(target):
        raise ValueError(f"{module}.{name} is not a class or a function")
    return target


def _flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001  the program may have replaced or closed the stream
            pass


def _format_trace(exc, sources=None):
    """A traceback without the driver's own frames (named "<string>"); `sources` quotes in-memory files."""
    import linecache
    import traceback

    for name, text in (sources or {}).items():
        linecache.cache[name] = (len(text), None, text.splitlines(True), name)
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != "<string>"]
    lines = traceback.format_list(frames)
    return "".join(["Traceback (most recent call last):\n", *lines, *traceback.format_exception_only(type(exc), exc)])


def _print_trace(exc, sources=None):
    try:
        sys.stderr.write(_format_trace(exc, sources))
    except BaseException:  # noqa: BLE001  hostile exception objects, or no memory left
        pass
