"""The monitor: runs the tests against the worker's objects, and alone reports to the host.

Part of the sandbox driver script: execute.py joins _wire.py, _worker.py, _monitor.py and _driver.py, in that
order, into the one program the interpreter runs with -c. It uses the helpers of _wire.py.
"""
# ruff: noqa: F821  (names defined by the parts before this one)

import builtins
import os
import select


class _WorkerGone(BaseException):
    """The program's process ended, or broke the protocol, before the tests finished."""


class _ProgramError(Exception):
    """An exception of the program's whose class has no built-in counterpart here."""

    def __init__(self, name, message):
        super().__init__(message)
        self.remote_name = name


class _Remote:
    """An object that stayed in the program's process (see the module docstring)."""

    __slots__ = ("_channel", "_ref", "_type")

    def __init__(self, channel, ref, type_name):
        self._channel, self._ref, self._type = channel, ref, type_name

    def __call__(self, *args, **kwargs):
        return self._channel.ask("call", self._ref, tuple(map(self._channel.outgoing, args)),
                                 {k: self._channel.outgoing(v) for k, v in kwargs.items()})

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self._channel.ask("getattr", self._ref, name)

    def __iter__(self):
        iterator = self._channel.ask("iter", self._ref)
        if not isinstance(iterator, _Remote):
            raise TypeError("iter() of the program's object gave no iterator")
        return _RemoteIterator(iterator)

    def __len__(self):
        return self._channel.ask("len", self._ref)

    def __getitem__(self, key):
        return self._channel.ask("getitem", self._ref, self._channel.outgoing(key))

    def __contains__(self, item):
        # By iteration and comparisons here, as Python does without __contains__: the program never sees the
        # value the tests look for, so it cannot simply say yes.
        return any(element is item or element == item for element in self)

    def __bool__(self):
        raise TypeError(f"the program returned a {self._type} object; only plain data has a truth value here")

    def __repr__(self):
        return f"<{self._type} object of the program>"


class _RemoteIterator:
    def __init__(self, remote):
        self._remote = remote

    def __iter__(self):
        return self

    def __next__(self):
        return self._remote._channel.ask("next", self._remote._ref)


def _next_reply(replies, worker_exit):
    """The worker's next message, or None once the worker has exited with nothing left to read: its
    children may keep the pipe open, so end of file alone would never come."""
    if worker_exit is not None:
        ready, _, _ = select.select([replies, worker_exit], [], [])
        if replies not in ready and not select.select([replies], [], [], 0)[0]:
            return None
    return _receive(replies)


class _Channel:
    def __init__(self, requests, replies, worker_exit):
        self.requests, self.replies, self.worker_exit = requests, replies, worker_exit
        self.gone = self.broken = False

    def outgoing(self, value, depth=0):
        if isinstance(value, _Remote):
            if value._channel is not self:
                raise TypeError("a reference from another program")
            return ("r", value._ref)
        try:
            return ("v", _check_plain(value))
        except ValueError:
            pass
        named = _global_name(value)
        if named is not None:
            return ("g", *named)
        kind = next((k for k, base in _KINDS.items() if type(value) is base), None)
        if kind is None or depth >= _MAX_DEPTH:
            raise TypeError(f"cannot pass a {type(value).__name__} to the program: only plain data and "
                            "the program's own objects cross")
        if kind == "d":
            return ("c", kind, [(self.outgoing(k, depth + 1), self.outgoing(v, depth + 1)) for k, v in value.items()])
        return ("c", kind, [self.outgoing(item, depth + 1) for item in value])

    def ask(self, operation, ref, *payload):
        if self.gone:
            raise _WorkerGone()
        try:
            _send(self.requests, (operation, ref, *payload))
            reply = _next_reply(self.replies, self.worker_exit)
        except OSError:  # a closed pipe: the worker is gone
            reply = None
        except ValueError:
            reply, self.broken = None, True
        if reply is None:
            self.gone = True
            raise _WorkerGone()
        exc = None
        try:
            if type(reply) is tuple and len(reply) == 2 and reply[0] == "ok":
                return self.incoming(reply[1])
            if type(reply) is tuple and len(reply) == 4 and reply[0] == "raised":
                names, message, trace = reply[1:]
                if (type(names) is list and names and all(type(n) is str for n in names) and type(message) is str
                        and type(trace) is str):
                    exc = _rebuild(names, message, trace)
        except ValueError:  # a malformed value
            pass
        if exc is None:
            self.gone = self.broken = True
            raise _WorkerGone()
        if operation != "next" and isinstance(exc, (StopIteration, StopAsyncIteration)):
            # Only iteration may end an iteration: from a call it would silently cut a map() or a for loop
            # in the tests short (the rule PEP 479 sets for generators).
            raise RuntimeError(f"the program raised {names[0]}") from exc
        raise exc

    def incoming(self, encoded, depth=0):
        """A value from the worker, checked: plain data, a reference, or a container of them."""
        if type(encoded) is not tuple or not encoded or depth > _MAX_DEPTH:
            raise ValueError("malformed value")
        if encoded[0] == "v" and len(encoded) == 2:
            return _check_plain(encoded[1])
        if encoded[0] == "g" and len(encoded) == 3 and type(encoded[1]) is str and type(encoded[2]) is str:
            try:
                return _resolve_global(encoded[1], encoded[2])  # the monitor's own copy
            except (AttributeError, ImportError) as exc:
                raise ValueError(f"no such global: {exc}") from None
        if encoded[0] == "r" and len(encoded) == 4 and type(encoded[1]) is int and type(encoded[2]) is str:
            return _Remote(self, encoded[1], encoded[2])
        if encoded[0] == "c" and len(encoded) == 3 and encoded[1] in _KINDS and type(encoded[2]) is list:
            if encoded[1] == "d":
                pairs = encoded[2]
                if not all(type(p) is tuple and len(p) == 2 for p in pairs):
                    raise ValueError("malformed value")
                return {self.incoming(k, depth + 1): self.incoming(v, depth + 1) for k, v in pairs}
            return _KINDS[encoded[1]](self.incoming(item, depth + 1) for item in encoded[2])
        raise ValueError("malformed value")

    def bind(self, exports, uses):
        """The program's names for the tests (only those in `uses`, unless it is None): standard-library
        modules imported here, values, and references."""
        if type(exports) is not dict:
            raise ValueError("malformed exports")
        names = {}
        for name, encoded in exports.items():
            if type(name) is not str:
                raise ValueError("malformed exports")
            if uses is not None and name not in uses:
                continue  # the worker sent it, but it is not the program's to give (a built-in's name, say)
            if type(encoded) is tuple and len(encoded) == 2 and encoded[0] == "m" and type(encoded[1]) is str:
                try:
                    names[name] = _standard_module(encoded[1])  # the monitor's own, untouched copy
                except (ValueError, ImportError):
                    pass  # the tests see no such name
            else:
                names[name] = self.incoming(encoded)
        return names


def _rebuild(names, message, trace):
    """The program's exception as the tests would have seen it: its nearest built-in class."""
    exc = None
    for name in names:
        cls = getattr(builtins, name, None)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            try:
                exc = cls(message)
            except Exception:  # noqa: BLE001  classes that need more arguments
                continue
            if name != names[0]:
                exc.remote_name = names[0]
            break
    if exc is None:
        exc = _ProgramError(names[0], message)
    if trace:
        exc.add_note("in the program:\n" + trace.rstrip())
    return exc


def _worker_end(pid):
    """How the worker ended, once it has: (status, error type)."""
    try:
        _, wait_status = os.waitpid(pid, 0)
    except ChildProcessError:
        return "error", "WorkerLost"
    if os.WIFSIGNALED(wait_status):
        import signal

        number = os.WTERMSIG(wait_status)
        if number == signal.SIGXCPU:
            return "timeout", "CPUTimeLimit"
        try:
            return "error", f"Killed({signal.Signals(number).name})"
        except ValueError:
            return "error", f"Killed(signal {number})"
    return "error", f"ExitedBeforeTestsFinished(exit code {os.WEXITSTATUS(wait_status)})"


def _monitor(job, status_fd, requests, replies, worker):
    def finish(status, error_type):
        _flush()
        try:
            os.write(status_fd, f"{status} {error_type}".encode())
        except OSError:
            pass
        os._exit(0 if status == "passed" else 1)

    try:
        worker_exit = os.pidfd_open(worker)  # readable once the worker has exited
    except (AttributeError, OSError):
        worker_exit = None
    try:
        first = _next_reply(replies, worker_exit)
    except ValueError:
        finish("error", "WorkerProtocolError")
    if first is None:
        finish(*_worker_end(worker))
    if type(first) is tuple and len(first) == 4 and first[0] == "raised" and first[1] and type(first[1][0]) is str:
        finish("failed" if "AssertionError" in first[1] else "error", first[1][0])
    if job["tests"] is None:
        finish(*(("passed", "-") if first == ("done",) else ("error", "WorkerProtocolError")))
    if not (type(first) is tuple and len(first) == 2 and first[0] == "ready"):
        finish("error", "WorkerProtocolError")
    channel = _Channel(requests, replies, worker_exit)
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    sources = {"context.py": job["context"], "tests.py": job["tests"]}
    try:
        exports = channel.bind(first[1], job["uses"])
    except ValueError:
        finish("error", "WorkerProtocolError")
    try:
        if job["context"]:  # trusted code the tests rely on (HumanEval's prompt: its helper functions)
            exec(compile(job["context"], "context.py", "exec"), namespace)
        namespace.update(exports)
        exec(compile(job["tests"], "tests.py", "exec"), namespace)
    except _WorkerGone:
        pass
    except BaseException as exc:  # noqa: BLE001
        if not channel.gone:
            _print_trace(exc, sources)
            finish("failed" if isinstance(exc, AssertionError) else "error",
                   getattr(exc, "remote_name", type(exc).__name__))
    if channel.broken:
        finish("error", "WorkerProtocolError")
    if channel.gone:  # even when the tests swallowed the error: they did not run against the program
        finish(*_worker_end(worker))
    finish("passed", "-")


