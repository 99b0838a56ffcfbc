"""Isolated execution of untrusted Python programs (bubblewrap, unshare, or refused without isolation)."""

from lmaudit.sandbox.execute import ExecResult, Limits, Sandbox, SandboxError, Status
from lmaudit.sandbox.isolation import LEVELS, Isolation

__all__ = ["LEVELS", "ExecResult", "Isolation", "Limits", "Sandbox", "SandboxError", "Status"]
