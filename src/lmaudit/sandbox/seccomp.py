"""The system-call filter for bwrap sandboxes: a classic-BPF seccomp program, assembled here.

It denies what the namespaces and the read-only file system leave open:
- the kernel keyring (add_key, request_key, keyctl): the session keyring survives bwrap, and a key in it is
  readable through "possession" even after the uid switch;
- new UNIX-domain sockets (socket(AF_UNIX)) and datagram socket pairs: a socket file that is visible in the
  sandbox is connectable even on a read-only mount, and a datagram pair can `sendto` a path. Stream pairs
  (socket.socketpair(), multiprocessing pipes, asyncio's self-pipe) stay allowed: they reach no address;
- new namespaces (setns; unshare and clone with CLONE_NEW* flags other than CLONE_NEWNS; clone3 reports
  ENOSYS so libc falls back to clone): a user namespace of its own would let the program mount a fresh,
  uncapped tmpfs;
- io_uring, which performs socket and file operations without the system calls this filter sees;
- every call of another ABI (i386 or x32 on x86-64), where the numbers differ.
bwrap installs the filter (`--seccomp FD`) just before it starts the interpreter, under no_new_privs.
"""

from __future__ import annotations

import errno
import os
import platform
import struct
from dataclasses import dataclass

# Classic BPF opcodes (linux/bpf_common.h) and seccomp return values (linux/seccomp.h).
_LD_W_ABS, _ALU_AND_K, _JEQ_K, _JGE_K, _JSET_K, _RET_K = 0x20, 0x54, 0x15, 0x35, 0x45, 0x06
_ALLOW = 0x7FFF0000
_ERRNO = 0x00050000
# Offsets in struct seccomp_data: nr, arch, then the 64-bit arguments (their low halves on little-endian).
_NR, _ARCH = 0, 4


def _arg(index: int) -> int:
    return 16 + 8 * index


_AF_UNIX, _SOCK_STREAM = 1, 1
_SOCK_FLAGS = 0x800 | 0x80000  # SOCK_NONBLOCK | SOCK_CLOEXEC, or-ed into the type argument
# CLONE_NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET. Not CLONE_NEWNS: in a user namespace the
# driver needs a mount namespace of its own to mount the working directory, and without capabilities (the
# program's case) the kernel refuses it anyway.
_CLONE_NEW_NAMESPACES = 0x7E000000
_X32_BIT = 0x40000000


@dataclass(frozen=True)
class _Abi:
    audit_arch: int
    numbers: dict[str, int]
    x32_bit: bool  # whether this ABI shares its arch value with a second numbering (x32)


_ABIS = {
    "x86_64": _Abi(0xC000003E, {"socket": 41, "socketpair": 53, "clone": 56, "unshare": 272, "setns": 308,
                                "add_key": 248, "request_key": 249, "keyctl": 250, "io_uring_setup": 425,
                                "io_uring_enter": 426, "io_uring_register": 427, "clone3": 435}, True),
    "aarch64": _Abi(0xC00000B7, {"socket": 198, "socketpair": 199, "clone": 220, "unshare": 97, "setns": 268,
                                 "add_key": 217, "request_key": 218, "keyctl": 219, "io_uring_setup": 425,
                                 "io_uring_enter": 426, "io_uring_register": 427, "clone3": 435}, False),
}

# What each denied call returns: EPERM where a policy says no, ENOSYS where callers are expected to fall back.
_DENIED = {"add_key": errno.EPERM, "request_key": errno.EPERM, "keyctl": errno.EPERM, "setns": errno.EPERM,
           "io_uring_setup": errno.ENOSYS, "io_uring_enter": errno.ENOSYS, "io_uring_register": errno.ENOSYS,
           "clone3": errno.ENOSYS}


def supported() -> bool:
    return platform.machine() in _ABIS


class _Assembler:
    """Instructions with symbolic jump targets; `assemble` resolves them into relative offsets."""

    def __init__(self) -> None:
        self.code: list[tuple[int, int, str | None, str | None]] = []
        self.labels: dict[str, int] = {}

    def emit(self, op: int, k: int, jt: str | None = None, jf: str | None = None) -> None:
        self.code.append((op, k, jt, jf))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def assemble(self) -> bytes:
        out = bytearray()
        for position, (op, k, jt, jf) in enumerate(self.code):
            offsets = [0 if target is None else self.labels[target] - position - 1 for target in (jt, jf)]
            if any(not 0 <= o < 256 for o in offsets):
                raise ValueError(f"seccomp: jump out of range at instruction {position}")
            out += struct.pack("=HBBI", op, offsets[0], offsets[1], k & 0xFFFFFFFF)
        return bytes(out)


def filter_program(machine: str | None = None) -> bytes:
    """The filter for this machine's ABI (struct sock_filter[] as bytes), or ValueError if unsupported."""
    machine = machine or platform.machine()
    if machine not in _ABIS:
        raise ValueError(f"no seccomp filter for machine {machine!r}")
    abi = _ABIS[machine]
    nr = abi.numbers
    bpf = _Assembler()
    bpf.emit(_LD_W_ABS, _ARCH)
    bpf.emit(_JEQ_K, abi.audit_arch, None, "enosys")
    bpf.emit(_LD_W_ABS, _NR)
    if abi.x32_bit:
        bpf.emit(_JGE_K, _X32_BIT, "enosys", None)
    for name, code in _DENIED.items():
        bpf.emit(_JEQ_K, nr[name], f"errno{code}", None)
    bpf.emit(_JEQ_K, nr["socket"], "socket", None)
    bpf.emit(_JEQ_K, nr["socketpair"], "socketpair", None)
    bpf.emit(_JEQ_K, nr["clone"], "namespace_flags", None)
    bpf.emit(_JEQ_K, nr["unshare"], "namespace_flags", None)
    bpf.emit(_RET_K, _ALLOW)
    bpf.label("socket")  # socket(domain, ...): no new UNIX-domain sockets
    bpf.emit(_LD_W_ABS, _arg(0))
    bpf.emit(_JEQ_K, _AF_UNIX, "eacces", "allow")
    bpf.label("socketpair")  # socketpair(domain, type, ...): stream pairs only
    bpf.emit(_LD_W_ABS, _arg(1))
    bpf.emit(_ALU_AND_K, ~_SOCK_FLAGS)
    bpf.emit(_JEQ_K, _SOCK_STREAM, "allow", "eacces")
    bpf.label("namespace_flags")  # clone(flags, ...), unshare(flags): threads and processes, not namespaces
    bpf.emit(_LD_W_ABS, _arg(0))
    bpf.emit(_JSET_K, _CLONE_NEW_NAMESPACES, f"errno{errno.EPERM}", "allow")
    bpf.label("allow")  # jumps go forward only, so the argument checks share this second exit
    bpf.emit(_RET_K, _ALLOW)
    for code in sorted(set(_DENIED.values()) | {errno.EACCES}):
        bpf.label(f"errno{code}")
        bpf.emit(_RET_K, _ERRNO | code)
    bpf.labels["eacces"] = bpf.labels[f"errno{errno.EACCES}"]
    bpf.labels["enosys"] = bpf.labels[f"errno{errno.ENOSYS}"]
    return bpf.assemble()


_program: bytes | None = None


def filter_fd() -> int:
    """A pipe's read end holding the filter, for one bwrap start (bwrap reads it to the end and closes it)."""
    global _program
    if _program is None:
        _program = filter_program()
    read, write = os.pipe()
    try:
        os.write(write, _program)  # a few hundred bytes: far below a pipe's buffer
    finally:
        os.close(write)
    return read
