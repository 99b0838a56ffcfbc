"""Contamination: find benchmark items in training data, and score the clean and contaminated subsets.

    items = items_from_tasks([get_task("mmlu")])
    result = scan_corpus(items, ["corpus/*.jsonl.gz"], method="substring", workers=2)
    write_flags(result.flags, "flags.jsonl")
    split_scores(RunDir(run).records(), "flags.jsonl", metrics=("acc",), group_by=("subject",))

Min-K% (white-box membership scores) lives in lmaudit.contamination.mink, which imports torch when used.
"""

from lmaudit.contamination.corpus import corpus_shards, read_batches  # the corpus readers (influence uses them too)
from lmaudit.contamination.corpus import Shard, split_shards  # llmuse shares large files out in pieces
from lmaudit.contamination.items import EvalItem, items_from_tasks
from lmaudit.contamination.results import Evidence, Flag, read_flags, write_flags
from lmaudit.contamination.scanning import ScanResult, ScanStats, build_index, scan_corpus, scan_index
from lmaudit.contamination.split import split_scores

__all__ = ["EvalItem", "Evidence", "Flag", "ScanResult", "ScanStats", "build_index", "items_from_tasks",
           "read_flags", "scan_corpus", "scan_index", "split_scores", "write_flags", "corpus_shards", "read_batches"]
