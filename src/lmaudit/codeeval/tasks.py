"""Factories for the registry: `humaneval` and `mbpp`, registered through the `lmaudit.tasks` entry point."""

from __future__ import annotations

from collections.abc import Sequence

from lmaudit.codeeval.benchmarks import HUMANEVAL, MBPP, CodeBenchmark
from lmaudit.codeeval.task import CodeTask
from lmaudit.sandbox import Limits, Sandbox
from lmaudit.tasks.base import register_task


def _build(benchmark: CodeBenchmark, n: int, temperature: float, ks: int | str | Sequence[int | str] | None,
           chat: bool, workers: int, data_path: str | None, data_dir: str | None, allow_unsandboxed: bool,
           isolation: str, timeout: float, max_tokens: int, seed: int) -> CodeTask:
    sandbox = Sandbox(Limits(wall_seconds=timeout), isolation=isolation, workers=workers,
                      allow_unsandboxed=allow_unsandboxed)
    return CodeTask(benchmark, sandbox, n=n, temperature=temperature, ks=ks, chat=chat, max_tokens=max_tokens,
                    seed=seed, data_path=data_path, data_dir=data_dir)


def humaneval(n: int = 1, temperature: float = 0.8, ks: int | str | Sequence[int | str] | None = None,
              chat: bool = False, workers: int = 2, data_path: str | None = None, allow_unsandboxed: bool = False,
              data_dir: str | None = None, isolation: str = "auto", timeout: float = 10.0, max_tokens: int = 512,
              seed: int = 0) -> CodeTask:
    """HumanEval (164 problems): complete the function; pass@k over n samples per problem."""
    return _build(HUMANEVAL, n, temperature, ks, chat, workers, data_path, data_dir, allow_unsandboxed,
                  isolation, timeout, max_tokens, seed)


def mbpp(n: int = 1, temperature: float = 0.8, ks: int | str | Sequence[int | str] | None = None,
         chat: bool = False, workers: int = 2, data_path: str | None = None, allow_unsandboxed: bool = False,
         data_dir: str | None = None, isolation: str = "auto", timeout: float = 10.0, max_tokens: int = 512,
         seed: int = 0) -> CodeTask:
    """MBPP (974 problems): task text and its asserts in the prompt; pass@k over n samples per problem."""
    return _build(MBPP, n, temperature, ks, chat, workers, data_path, data_dir, allow_unsandboxed,
                  isolation, timeout, max_tokens, seed)


def register() -> None:
    register_task("humaneval", humaneval, "HumanEval, 164 problems run in a sandbox: pass@k over -n samples")
    register_task("mbpp", mbpp, "MBPP, 974 problems run in a sandbox: pass@k over -n samples")
