"""The runner: one RunSession for every model call, evaluate(), the response cache, run directories, aggregation."""

from lmaudit.runner.aggregate import aggregate, summarize_records
from lmaudit.runner.cache import ResponseCache
from lmaudit.runner.evaluate import EvalResult, evaluate, make_record, plan_samples, score_samples, select_samples
from lmaudit.runner.rundir import RunDir, prepare_dir
from lmaudit.runner.session import ModelRole, RunSession, default_run_dir, jsonable, package_versions

__all__ = ["EvalResult", "ModelRole", "ResponseCache", "RunDir", "RunSession", "aggregate", "default_run_dir",
           "evaluate", "jsonable", "make_record", "package_versions", "plan_samples", "prepare_dir", "score_samples",
           "select_samples", "summarize_records"]
