"""Runs inside the sandbox, passed to the interpreter with -c. Standard library only: start-up time counts.

It sets the sandbox up (joins its cgroups, mounts the capped working directory, applies the rlimits), reads
the job from stdin, then splits in two processes:
- the worker drops to the program's uid and runs the untrusted code;
- the monitor, under another uid (or, in a user namespace, made non-dumpable), never runs untrusted code. It
  alone holds the status pipe to the host, and it runs the tests itself, calling the program's functions
  through a pipe. Arguments cross by value; results come back by value only when they are plain data (exact
  None, bool, int, float, complex, str, bytes, and lists, tuples, dicts and sets of them); anything else stays
  in the worker, and the tests get an opaque reference that can be called, iterated, indexed, measured and
  passed back, but that has no truth value and equals only itself.
So the program cannot write the status, never sees the tests, and the hooks it sets (trace and profile
functions, patched builtins, objects whose __eq__ lies) live in a process where no test runs. A job without
tests is a program judged by itself: the worker reports how it ended.

Arguments: this script, compiled and marshal'd (execute.py), then the marshal'd settings, both in hex.
Messages between the two: 4-byte length + marshal.
This file comes last of the four parts execute.py joins into the script (_wire, _worker, _monitor, _driver).
"""
# ruff: noqa: F821  (names defined by the parts before this one)

import marshal
import os
import resource
import sys

_MS_NOSUID, _MS_NODEV, _CLONE_NEWNS, _PR_SET_DUMPABLE = 2, 4, 0x20000, 4


def _stay_init():
    """As pid 1 of a new pid namespace (unshare) the kernel would drop signals meant to stop the program
    (SIGXCPU, SIGTERM). Run it in a child instead, reap orphans until it ends and pass on how it ended; when
    this process exits the kernel kills whatever is left in the namespace."""
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


def _setup_failed(status_fd, what, errno):
    os.write(status_fd, f"error SandboxSetup({what}:errno={errno})".encode())
    os._exit(1)


def _drop_capabilities(libc):
    """Clear every capability set of this process (in a user namespace the uid stays the same, so nothing
    else clears the ones bwrap granted)."""
    import ctypes

    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    if libc.capset(header, (ctypes.c_uint32 * 6)()) != 0:
        os._exit(70)


def _become(uid, libc):
    if uid is not None:  # from root: a non-zero uid loses its permitted and effective capabilities
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    if libc is not None:  # and the inheritable ones too (bwrap sets them), or all of them in a user namespace
        _drop_capabilities(libc)


def _main():
    if os.getpid() == 1:
        _stay_init()
    settings = marshal.loads(bytes.fromhex(sys.argv[2]))  # argv[1] is the compiled driver itself
    status_fd = settings["status_fd"]
    for fd in settings["cgroup_fds"]:  # join the sandbox's cgroups before anything else starts
        try:
            os.write(fd, b"0")
        except OSError as exc:
            _setup_failed(status_fd, "cgroup", exc.errno)
        os.close(fd)
    libc = None
    if settings["workdir"] is not None or settings["user_namespace"]:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
    if settings["workdir"] is not None:
        where, options = settings["workdir"]
        if settings["user_namespace"] and libc.unshare(_CLONE_NEWNS) != 0:
            _setup_failed(status_fd, "unshare", ctypes.get_errno())
        if libc.mount(b"tmpfs", where.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, options.encode()) != 0:
            _setup_failed(status_fd, "mount", ctypes.get_errno())
        os.chdir(where)
    job = marshal.loads(sys.stdin.buffer.read())
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    path = os.path.join(os.getcwd(), "program.py")
    with open(path, "w", encoding="utf-8", errors="surrogatepass") as handle:  # so tracebacks quote lines
        handle.write(job["code"])
    for name, soft, hard in settings["rlimits"]:
        resource.setrlimit(getattr(resource, name), (soft, hard))
    sys.path.extend(settings["sys_path"])
    requests_read, requests_write = os.pipe()
    replies_read, replies_write = os.pipe()
    uids = settings["uids"] or (None, None)
    if settings["user_namespace"]:  # same uid as the worker: keep it out of /proc/<pid>/fd and ptrace
        libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
    worker = os.fork()
    if worker == 0:
        for fd in (status_fd, requests_write, replies_read):
            os.close(fd)
        _become(uids[0], libc)
        try:  # under the cgroup's memory cap, the kernel kills the program before the monitor
            with open("/proc/self/oom_score_adj", "w") as adjust:
                adjust.write("1000")
        except OSError:
            pass
        _worker(job, path, replies_write, requests_read)
    os.close(requests_read)
    os.close(replies_write)
    _become(uids[1], libc)
    _monitor(job, status_fd, requests_write, replies_read, worker)


_main()
