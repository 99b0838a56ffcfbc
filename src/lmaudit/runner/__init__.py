"""The runner: evaluate() with dedup, a response cache, resumable run directories and aggregation."""

from lmaudit.runner.aggregate import aggregate, summarize_records
from lmaudit.runner.cache import ResponseCache
from lmaudit.runner.evaluate import EvalResult, evaluate, jsonable, package_versions, select_samples
from lmaudit.runner.rundir import RunDir

__all__ = ["EvalResult", "ResponseCache", "RunDir", "aggregate", "evaluate", "jsonable", "package_versions",
           "select_samples",
           "summarize_records"]
