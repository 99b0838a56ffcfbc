"""Code evals: HumanEval and MBPP, run in the sandbox, scored with the unbiased pass@k estimator."""

from lmaudit.codeeval.benchmarks import HUMANEVAL, MBPP, CodeBenchmark, extract_code
from lmaudit.codeeval.passk import pass_at_k
from lmaudit.codeeval.task import CodeTask
from lmaudit.codeeval.tasks import humaneval, mbpp

__all__ = ["HUMANEVAL", "MBPP", "CodeBenchmark", "CodeTask", "extract_code", "humaneval", "mbpp", "pass_at_k"]
