"""Isolated execution of untrusted Python programs (bubblewrap, unshare, or refused without isolation)."""

from lmaudit.sandbox.execute import Program, Sandbox, SandboxError
from lmaudit.sandbox.isolation import LEVELS, Isolation
from lmaudit.sandbox.limits import Limits
from lmaudit.sandbox.supervise import ExecResult, Status

__all__ = ["LEVELS", "ExecResult", "Isolation", "Limits", "Program", "Sandbox", "SandboxError", "Status"]
