"""Reports: one self-contained HTML file over run directories, with a sample browser, A/B and knowledge maps.

    from lmaudit.report import build_report
    report = build_report(["runs/a", "runs/b"], "report.html")
    report.checks   # per run: how many rows recomputed from samples.jsonl match results.json

`open_run` reads any run directory (one clear error for a missing, empty or unfinished one), `recompute`
recomputes its numbers with the code that wrote results.json, `compare` pairs two runs' samples.
"""

from lmaudit.report.ab import Comparison, Flip, PairedRow, compare
from lmaudit.report.build import VIEWS, Report, build_report
from lmaudit.report.html import embedded_data
from lmaudit.report.recompute import Checked, Recomputed, check, recompute
from lmaudit.report.runs import Run, RunSummary, distinct_labels, open_run, read_summary

__all__ = ["Checked", "Comparison", "Flip", "PairedRow", "Recomputed", "Report", "Run", "RunSummary", "VIEWS",
           "build_report", "check", "compare", "distinct_labels", "embedded_data", "open_run", "read_summary",
           "recompute"]
