"""Benchmark leakage on purpose: train a model with MMLU leaked into its mix, measure the inflation and check
the contamination detectors on a model that really saw the test set.

    from lmaudit.leakage import LeakageConfig, run_leakage
    config = LeakageConfig(leak_subjects=("marketing",), control_subjects=("sociology",), setting="answers")
    result = run_leakage(load_model("smollm2"), config, "runs/leak", model_spec="smollm2")
    result.measurements.differences[("leak-clean", "leaked")]   # paired gain with a 95% bootstrap CI

torch is imported only when a model is trained or scored.
"""

from lmaudit.leakage.measure import COMPARISONS, MODELS, Measurements, ScanOutcome
from lmaudit.leakage.mix import HELDOUT, LEAKED, SETTINGS, UNSEEN, Item, Mix, build_mix, leak_items
from lmaudit.leakage.run import LeakageConfig, LeakageResult, parse_subjects, run_leakage, subjects, table_rows

__all__ = ["COMPARISONS", "HELDOUT", "LEAKED", "MODELS", "SETTINGS", "UNSEEN", "Item", "LeakageConfig",
           "LeakageResult", "Measurements", "Mix", "ScanOutcome", "build_mix", "leak_items", "parse_subjects",
           "run_leakage", "subjects", "table_rows"]
