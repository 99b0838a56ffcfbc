"""MCQ robustness: variants of each item (reordered, relabelled, true/false, fewer options, none of the above)
run as ordinary tasks, and consistency / REVAS metrics read back from their records."""

from lmaudit.robustness.analysis import (
    FamilyRow,
    ItemOutcomes,
    RobustnessReport,
    RobustnessSlice,
    TrueFalseRow,
    VariantRow,
    item_outcomes,
    robustness_report,
)
from lmaudit.robustness.run import DEFAULT_VARIANTS, ConsistencyRun, run_consistency, write_robustness
from lmaudit.robustness.tasks import VariantTask, variant_tasks
from lmaudit.robustness.variants import KINDS, McqItem, Variant, make_variants, reorder, source_option

__all__ = ["DEFAULT_VARIANTS", "KINDS", "ConsistencyRun", "FamilyRow", "ItemOutcomes", "McqItem", "RobustnessReport",
           "RobustnessSlice", "TrueFalseRow", "Variant", "VariantRow", "VariantTask", "item_outcomes",
           "make_variants", "reorder", "robustness_report", "run_consistency", "source_option", "variant_tasks",
           "write_robustness"]
