"""Run lm-evaluation-harness on the same MMLU files and weights, and read back its per-sample log-likelihoods.

lm-eval is optional (pip install lm_eval); it runs offline here because its tasks point at local JSONL copies
of lmaudit's MMLU data, in the standard MMLU prompt format.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmaudit.core.errors import ConfigError
from lmaudit.tasks.mmlu import LETTERS, MMLUData

TEMPLATE = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {test}
    dev: {dev}
test_split: test
fewshot_split: dev
fewshot_config:
  sampler: first_n
output_type: multiple_choice
description: {description}
doc_to_text: "{{{{question.strip()}}}}\\nA. {{{{choices[0]}}}}\\nB. {{{{choices[1]}}}}\\nC. {{{{choices[2]}}}}\\nD. {{{{choices[3]}}}}\\nAnswer:"
doc_to_choice: {letters}
doc_to_target: answer
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""


@dataclass
class LmEvalRun:
    # (subject, question index) -> list of (logprob, is_greedy) for " A".." D"
    loglikelihoods: dict[tuple[str, int], list[tuple[float, bool]]]
    accuracy: dict[str, float]
    seconds: float  # wall time of lm-eval's evaluation (model load excluded)


def write_mmlu_tasks(subjects: list[str], folder: Path, data_dir: str | None = None) -> list[str]:
    """lm-eval task YAMLs (and JSONL copies of the CSVs, so no column is type-guessed) for these subjects."""
    names = []
    for subject in subjects:
        data = MMLUData([subject], num_fewshot=5, data_dir=data_dir)
        test = [(s.data["question"], s.data["choices"], s.target) for s in data.samples()]
        files = {}
        for split, rows in (("test", test), ("dev", data.shots[subject])):
            files[split] = folder / f"{subject}_{split}.jsonl"
            files[split].write_text("".join(json.dumps({"question": q, "choices": c, "answer": g}) + "\n"
                                            for q, c, g in rows), encoding="utf-8")
        name = f"lmaudit_mmlu_{subject}"
        description = json.dumps(f"The following are multiple choice questions (with answers) about "
                                 f"{subject.replace('_', ' ')}.\n\n")
        (folder / f"{name}.yaml").write_text(TEMPLATE.format(
            name=name, test=files["test"], dev=files["dev"], description=description,
            letters=json.dumps(list(LETTERS))), encoding="utf-8")
        names.append(name)
    return names


def run_lmeval_mmlu(model_folder: str | Path, subjects: list[str], *, num_fewshot: int, limit: int,
                    batch_size: int | str = 8, data_dir: str | None = None) -> LmEvalRun:
    """lm-eval's `hf` model on `model_folder` (a transformers folder) over the first `limit` questions per subject."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    try:
        import lm_eval
        from lm_eval.tasks import TaskManager
    except ImportError as exc:
        raise ConfigError("comparing with lm-eval needs it installed: pip install lm_eval==0.4.13") from exc
    with tempfile.TemporaryDirectory(prefix="lmaudit-lmeval-") as tmp:
        names = write_mmlu_tasks(subjects, Path(tmp), data_dir)
        manager = TaskManager(include_path=tmp)
        from lm_eval.models.huggingface import HFLM

        model = HFLM(pretrained=str(model_folder), dtype="float32", batch_size=batch_size, device="cpu")
        began = time.perf_counter()
        output = lm_eval.simple_evaluate(model=model, tasks=names, num_fewshot=num_fewshot, limit=limit,
                                         log_samples=True, task_manager=manager, random_seed=0,
                                         numpy_random_seed=0, torch_random_seed=0, fewshot_random_seed=0)
        seconds = time.perf_counter() - began
    lls: dict[tuple[str, int], list[tuple[float, bool]]] = {}
    accuracy: dict[str, float] = {}
    for subject, name in zip(subjects, names):
        for entry in output["samples"][name]:
            lls[(subject, int(entry["doc_id"]))] = [(float(r[0][0]), bool(r[0][1])) for r in entry["resps"]]
        accuracy[subject] = float(output["results"][name]["acc,none"])
    return LmEvalRun(lls, accuracy, seconds)


def results_by_question(records: list[Any]) -> dict[tuple[str, int], list[float]]:
    """lmaudit's per-question log-likelihoods from SampleRecords of an mmlu task, keyed like LmEvalRun."""
    out = {}
    for record in records:
        subject, index = record.sample_id.split("/")
        out[(subject, int(index))] = [r["logprob"] for r in record.responses]
    return out
