"""The worker: runs the untrusted program, then answers the monitor's requests.

Part of the sandbox driver script: execute.py joins _wire.py, _worker.py, _monitor.py and _driver.py, in that
order, into the one program the interpreter runs with -c. It uses the helpers of _wire.py.
"""
# ruff: noqa: F821  (names defined by the parts before this one)

import builtins
import os
import sys

_MODULE = type(sys)


class _NotPlain(Exception):
    """A value that cannot cross to the monitor by value."""


def _to_plain(value, path):
    """A plain copy of `value` (subclasses of built-in types become their base type), or _NotPlain."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind in (list, tuple) and all(type(item) in _SCALARS for item in value):
        return value
    if id(value) in path or len(path) > 200:
        raise _NotPlain()
    path.add(id(value))
    try:
        if isinstance(value, dict):
            return {_to_plain(k, path): _to_plain(v, path) for k, v in value.items()}
        for base in (list, tuple, set, frozenset):
            if isinstance(value, base):
                return base(_to_plain(item, path) for item in value)
        for base in (int, float, complex, str, bytes):
            if isinstance(value, base):
                return base(value)
        if kind.__module__.startswith("numpy") and getattr(value, "shape", None) == ():
            return _to_plain(value.item(), path)  # a numpy scalar
    finally:
        path.discard(id(value))
    raise _NotPlain()


def _encode(value, objects, depth=0):
    try:
        return ("v", _to_plain(value, set()))
    except Exception:  # noqa: BLE001  not plain, or a container whose own methods fail
        pass
    named = _global_name(value)
    if named is not None:
        return ("g", *named)
    if depth < _MAX_DEPTH:
        for kind, base in _KINDS.items():
            if isinstance(value, base):  # a container of some objects that must stay here
                try:
                    if base is dict:
                        items = [(_encode(k, objects, depth + 1), _encode(v, objects, depth + 1))
                                 for k, v in value.items()]
                    else:
                        items = [_encode(item, objects, depth + 1) for item in value]
                except Exception:  # noqa: BLE001
                    break
                return ("c", kind, items)
    objects.append(value)
    return ("r", len(objects) - 1, str(type(value).__name__)[:100], callable(value))


def _decode_argument(encoded, objects):
    """What the monitor sent (trusted): plain data, the worker's own objects, or containers of both."""
    if encoded[0] == "v":
        return encoded[1]
    if encoded[0] == "r":
        return objects[encoded[1]]
    if encoded[0] == "g":
        return _resolve_global(encoded[1], encoded[2])
    kind, items = encoded[1], encoded[2]
    if kind == "d":
        return {_decode_argument(k, objects): _decode_argument(v, objects) for k, v in items}
    return _KINDS[kind](_decode_argument(item, objects) for item in items)


def _serve(request, objects):
    operation, target = request[0], objects[request[1]]
    if operation == "call":
        args = [_decode_argument(a, objects) for a in request[2]]
        return target(*args, **{k: _decode_argument(v, objects) for k, v in request[3].items()})
    if operation == "getattr":
        return getattr(target, request[2])
    if operation == "iter":
        return iter(target)
    if operation == "next":
        return next(target)
    if operation == "len":
        return len(target)
    if operation == "getitem":
        return target[_decode_argument(request[2], objects)]
    raise ValueError(f"unknown request {operation!r}")


def _raised(exc, with_trace):
    """The report of an exception: its class names (most derived first), message and traceback text."""
    names = [str(getattr(c, "__name__", "?")) for c in type(exc).__mro__][:20]
    try:
        message = str(exc)[:2000]
    except BaseException:  # noqa: BLE001
        message = ""
    trace = ""
    if with_trace:
        try:
            trace = _format_trace(exc)[-4000:]
        except BaseException:  # noqa: BLE001  hostile exception objects
            pass
    return ("raised", names, message, trace)


def _worker(job, path, replies, requests):
    namespace = {"__name__": "__main__", "__file__": path, "__builtins__": builtins}
    try:
        exec(compile(job["code"], path, "exec"), namespace)
    except BaseException as exc:  # noqa: BLE001  SystemExit and KeyboardInterrupt are errors too
        _print_trace(exc)
        _flush()
        _send(replies, _raised(exc, with_trace=False))
        os._exit(1)
    _flush()
    if job["tests"] is None:
        _send(replies, ("done",))
        os._exit(0)
    objects = []
    exports = {}
    names = job["uses"] if job["uses"] is not None else [n for n in namespace if not n.startswith("__")]
    for name in names:
        if name in namespace:
            value = namespace[name]
            module = value.__name__ if type(value) is _MODULE else None
            if isinstance(module, str) and module.partition(".")[0] in sys.stdlib_module_names:
                exports[name] = ("m", module)  # the monitor imports its own, untouched copy
            else:
                exports[name] = _encode(value, objects)
    _send(replies, ("ready", exports))
    while True:
        try:
            request = _receive(requests)
        except ValueError:
            os._exit(1)
        if request is None:
            os._exit(0)
        try:
            reply = ("ok", _encode(_serve(request, objects), objects))
        except BaseException as exc:  # noqa: BLE001  the tests see the exception, raised again on their side
            reply = _raised(exc, with_trace=True)
        _flush()
        try:
            _send(replies, reply)
        except (MemoryError, ValueError) as exc:  # a result too large (or odd) to send: the call's error
            _send(replies, _raised(exc, with_trace=False))


