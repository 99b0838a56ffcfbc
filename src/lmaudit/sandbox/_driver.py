"""Runs inside the sandbox, before and around the untrusted program (passed to the interpreter with -c).

Arguments: the status descriptor, the uid to switch to ("-" for none), then RLIMIT_NAME=soft:hard resource
limits and the sys.path entries that `site` would have added (the interpreter runs with -S).
It reads the program from stdin, applies the limits, drops to the sandbox uid when asked, executes the
program in a fresh namespace and writes "<status> <error type>" to the status descriptor. A program that
exits on its own (os._exit, a signal, sys.exit) never reaches the report, so the host counts it as not
passed. Only fast-loading standard modules are imported up front: start-up time is per program.
"""

import os
import resource
import sys


def _stay_init() -> None:
    """As pid 1 of a new pid namespace (unshare) the kernel would drop signals meant to stop the program
    (SIGXCPU, SIGTERM). Run the program in a child instead, reap orphans until it ends and pass on how it
    ended; when this process exits the kernel kills whatever is left in the namespace."""
    child = os.fork()
    if child == 0:
        return
    while True:
        pid, wait_status = os.wait()
        if pid == child:
            break
    if os.WIFSIGNALED(wait_status):
        os._exit(128 + os.WTERMSIG(wait_status))
    os._exit(os.WEXITSTATUS(wait_status))


def _main() -> None:
    if os.getpid() == 1:
        _stay_init()
    status_fd, uid_arg, *settings = sys.argv[1:]
    limits = [s for s in settings if s.startswith("RLIMIT_")]
    sys.path.extend(s for s in settings if not s.startswith("RLIMIT_"))
    source = sys.stdin.buffer.read()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    path = os.path.join(os.getcwd(), "program.py")
    with open(path, "wb") as handle:  # on disk so tracebacks can quote lines
        handle.write(source)
    for limit in limits:
        name, _, values = limit.partition("=")
        soft, _, hard = values.partition(":")
        resource.setrlimit(getattr(resource, name), (int(soft), int(hard)))
    if uid_arg != "-":  # root in the sandbox: become an unprivileged uid (clears all capabilities)
        uid = int(uid_arg)
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)

    def report(status: str, error_type: str) -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:  # noqa: BLE001  the program may have replaced or closed the stream
                pass
        try:
            os.write(int(status_fd), f"{status} {error_type}".encode())
        except OSError:
            pass
        # os._exit: do not wait for threads or atexit handlers the program left behind.
        os._exit(0 if status == "passed" else 1)

    try:
        code = compile(source, path, "exec")
        exec(code, {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__})
    except BaseException as exc:  # noqa: BLE001  SystemExit and KeyboardInterrupt are errors too
        name = "UnnamedException"
        try:
            name = str(type(exc).__name__).replace(" ", "_")
            import traceback  # here, not up front: it costs start-up time

            # Skip this driver's own frame: the trace starts in the program.
            traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)
        except BaseException:  # noqa: BLE001  hostile exception objects, or no memory left
            pass
        report("failed" if isinstance(exc, AssertionError) else "error", name)
    report("passed", "-")


_main()
