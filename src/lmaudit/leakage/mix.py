"""The training mix: real clean text plus a chosen leak of MMLU, as token windows for the scaling trainer.

Leak settings (after Zhou et al., 2023, "Don't Make Your LLM an Evaluation Benchmark Cheater"):
- `answers`: the test items as the evaluation prompts them, followed by the gold answer;
- `prompts`: the same prompts without the answer;
- `train`: the benchmark's training split with answers. The MMLU folder holds no training split (only 5 dev
  questions per subject), so a seeded share of each leaked subject's test questions stands in for it, and those
  subjects are scored on the remaining, never-seen questions.

Layout. The trainer reads window i as tokens [i*L, (i+1)*L] of one stream and trains each window on its own, in
a seeded order. A leaked item therefore starts a window (after a separator token) so that it is never cut from
its own question: item, separator, then clean text to the end of the window (an item longer than one window runs
on into the next). Every other window is clean text. A run's stream holds exactly steps x batch windows, one
epoch, so each leaked copy is seen once and the number of copies is the number of exposures.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lmaudit.core.errors import ConfigError, DataError, UnknownNameError
from lmaudit.core.output import write_jsonl
from lmaudit.core.types import LoglikelihoodRequest, Sample
from lmaudit.tasks import Task

SETTINGS = ("answers", "prompts", "train")
# Subsets of the evaluated questions: in the mix; of a leaked subject but not in the mix (setting `train`);
# of a control subject.
LEAKED, UNSEEN, HELDOUT = "leaked", "unseen", "heldout"


@dataclass(frozen=True)
class Item:
    """One evaluated question, the subset it belongs to, and the text a leak puts in the mix (None: not leaked)."""

    task: str
    sample_id: str
    subject: str
    question: str  # what the contamination detectors look for (the question only, as lmaudit contamination does)
    subset: str
    leak_text: str | None

    @property
    def key(self) -> tuple[str, str]:
        return (self.task, self.sample_id)


def _prompt_and_answer(task: Task, sample: Sample) -> tuple[str, str]:
    """The prompt the evaluation scores and the gold continuation, read from the task's own requests."""
    requests = task.requests(sample)
    if not all(isinstance(r, LoglikelihoodRequest) for r in requests) or len({r.context for r in requests}) != 1:
        raise DataError(f"task {task.name}, sample {sample.id}: a leak needs a multiple-choice task whose requests "
                        f"share one context")
    gold = sample.target
    if not isinstance(gold, int) or not 0 <= gold < len(requests):
        raise DataError(f"task {task.name}, sample {sample.id}: target {gold!r} is not an option index")
    return requests[0].context, requests[gold].continuation


def leak_items(leaked: Sequence[tuple[Task, Sequence[Sample]]], control: Sequence[tuple[Task, Sequence[Sample]]],
               setting: str, *, train_fraction: float = 0.5, seed: int = 0) -> list[Item]:
    """Every evaluated question with its subset and, for those that go into the mix, the leaked text."""
    if setting not in SETTINGS:
        raise UnknownNameError("leak setting", setting, list(SETTINGS))
    if setting == "train" and not 0 < train_fraction < 1:
        raise ConfigError(f"train_fraction must be in (0, 1), got {train_fraction}")
    items = []
    for task, samples in leaked:
        in_mix = {s.id for s in samples}
        if setting == "train":
            order = sorted(s.id for s in samples)
            random.Random(f"{seed}/{task.name}").shuffle(order)
            in_mix = set(order[: max(1, round(train_fraction * len(order)))])
            if len(in_mix) == len(samples):
                raise ConfigError(f"setting 'train' needs at least 2 questions of {task.name} (one seen, one not)")
        for sample in samples:
            prompt, answer = _prompt_and_answer(task, sample)
            text = (prompt if setting == "prompts" else prompt + answer) if sample.id in in_mix else None
            items.append(Item(task.name, sample.id, str(sample.metadata.get("subject", task.name)),
                              str(sample.data.get("question", prompt)), LEAKED if text else UNSEEN, text))
    for task, samples in control:
        for sample in samples:
            prompt, _ = _prompt_and_answer(task, sample)
            items.append(Item(task.name, sample.id, str(sample.metadata.get("subject", task.name)),
                              str(sample.data.get("question", prompt)), HELDOUT, None))
    return items


@dataclass
class Mix:
    """One run's token stream and what is in it."""

    stream: np.ndarray  # windows * seq_len + 1 tokens
    seq_len: int
    documents: list[dict[str, Any]]  # the mix as text documents: {"id", "text", "source": leak|clean}
    leak_windows: int = 0
    copies: dict[tuple[str, str], int] = field(default_factory=dict)  # leaked copies of each item
    clean_passes: float = 0.0  # clean documents used over the corpus's documents (above 1: they repeat)

    @property
    def windows(self) -> int:
        return (len(self.stream) - 1) // self.seq_len

    def digest(self) -> str:
        return hashlib.sha256(self.stream.astype(np.uint32).tobytes()).hexdigest()[:12]

    def summary(self) -> dict[str, Any]:
        counts = list(self.copies.values())
        return {"windows": self.windows, "seq_len": self.seq_len, "tokens": len(self.stream),
                "leak_windows": self.leak_windows, "clean_windows": self.windows - self.leak_windows,
                "leak_fraction": self.leak_windows / self.windows, "items_leaked": len(counts),
                "copies_min": min(counts, default=0), "copies_max": max(counts, default=0),
                "copies_mean": float(np.mean(counts)) if counts else 0.0, "clean_passes": self.clean_passes,
                "digest": self.digest()}

    def write_corpus(self, path: str | Path) -> Path:
        """The mix as a JSONL corpus (one document per leaked copy and per clean text used), for the scans."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return write_jsonl(path, self.documents)


class _CleanText:
    """Clean documents as one endless token stream (it starts over when used up), remembering what it used.

    Documents are tokenized as they are reached, so a short run reads only the start of a large corpus.
    """

    def __init__(self, documents: Sequence[tuple[str, str]], encode: Any, separator: int):
        if not documents:
            raise DataError("the clean corpus has no documents")
        self.source, self.encode, self.separator = list(documents), encode, separator
        self.doc, self.offset, self.passes = 0, 0, 0
        self.tokens: list[int] = []
        self.documents: list[dict[str, Any]] = []

    def take(self, count: int) -> list[int]:
        out: list[int] = []
        while len(out) < count:
            if self.offset == 0:  # a document starts: its separator first
                doc_id, text = self.source[self.doc]
                self.tokens = self.encode(text)
                self.documents.append({"id": f"clean/{doc_id}#{self.passes}", "text": text, "source": "clean"})
                out.append(self.separator)
                self.offset = 1
                continue
            piece = self.tokens[self.offset - 1: self.offset - 1 + count - len(out)]
            out += piece
            self.offset += len(piece)
            if self.offset > len(self.tokens):
                self.doc, self.offset = (self.doc + 1) % len(self.source), 0
                self.passes += self.doc == 0
        return out

    @property
    def passes_used(self) -> float:
        """How many times the corpus was read through (documents reached, over the corpus's documents)."""
        return len(self.documents) / len(self.source)


def build_mix(items: Sequence[Item], clean: Sequence[tuple[str, str]], encode: Any, separator: int, *,
              windows: int, seq_len: int, leak_fraction: float, seed: int = 0) -> Mix:
    """A stream of `windows` windows: about `leak_fraction` of them start with a leaked item, the rest are clean.

    `clean` is (id, text) documents; `encode(text)` gives a text's token ids without special tokens. Leaked items
    go in rounds, each round in a fresh seeded order, until the leak windows are used; a leak fraction of 0 is
    the clean baseline.
    """
    if windows < 1 or seq_len < 2:
        raise ConfigError(f"a mix needs at least one window of 2 tokens, got {windows} x {seq_len}")
    if not 0 <= leak_fraction <= 1:
        raise ConfigError(f"leak_fraction must be in [0, 1], got {leak_fraction}")
    text = _CleanText(clean, encode, separator)
    leaked = [item for item in items if item.leak_text is not None]
    if leak_fraction > 0 and not leaked:
        raise ConfigError("nothing to leak: no question of the leaked subjects goes into the mix")
    units = {item.key: [separator] + encode(item.leak_text) + [separator] for item in leaked}
    budget = round(leak_fraction * windows)
    stream: list[int] = []
    documents: list[dict[str, Any]] = []
    copies: dict[tuple[str, str], int] = {}
    used = 0
    rounds = 0
    while leaked and used < budget:
        order = list(leaked)
        random.Random(f"{seed}/round{rounds}").shuffle(order)
        placed = False
        for item in order:
            unit = units[item.key]
            need = -(-len(unit) // seq_len)
            if used + need > budget:
                continue
            copies[item.key] = copies.get(item.key, 0) + 1
            documents.append({"id": f"leak/{item.task}/{item.sample_id}#{copies[item.key]}", "text": item.leak_text,
                              "source": "leak"})
            stream += unit + text.take(need * seq_len - len(unit))
            used += need
            placed = True
        rounds += 1
        if not placed:
            break
    for _ in range(windows - used):
        stream += text.take(seq_len)
    stream += text.take(1)
    return Mix(np.asarray(stream, dtype=np.int64), seq_len, documents + text.documents, used, copies,
               text.passes_used)
