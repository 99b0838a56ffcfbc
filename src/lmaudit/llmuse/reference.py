"""Reference corpora: human text written before LLMs (P) and AI-modified text made from held-out human text (Q).

`build_reference` splits a human corpus into a reference part and a held-out part (seeded), rewrites a number of
paragraphs of each with the two-stage procedure, and writes `reference.jsonl` into the run directory: one row per
paragraph with its source (human or ai) and split (reference or heldout). The estimators read P and Q from the
reference split; `validate` mixes held-out human paragraphs (never rewritten, never in P) with the rewrites of
held-out paragraphs (never in Q).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmaudit.core.errors import ConfigError, DataError, RowError
from lmaudit.core.output import write_text_atomic
from lmaudit.data import read_rows
from lmaudit.llmuse.rewrite import Prompts, RewriteSettings, rewrite_from_record, rewrite_records
from lmaudit.llmuse.text import paragraph_sentences

REFERENCE_FILE = "reference.jsonl"
SOURCES = ("human", "ai")
SPLITS = ("reference", "heldout")


@dataclass(frozen=True)
class Paragraph:
    doc_id: str
    source: str  # human | ai
    split: str  # reference | heldout
    text: str


@dataclass
class Reference:
    """The paragraphs of a reference file, with where they came from."""

    paragraphs: list[Paragraph]
    path: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def texts(self, source: str, split: str = "reference", *, paired: bool = False) -> list[str]:
        """The paragraphs of one part; `paired` keeps only human paragraphs that have a rewrite in the split."""
        rewritten = {p.doc_id for p in self.paragraphs if p.source == "ai" and p.split == split} if paired else None
        return [p.text for p in self.paragraphs if p.source == source and p.split == split
                and (rewritten is None or source == "ai" or p.doc_id in rewritten)]

    def sentences(self, source: str, split: str = "reference", *, paired: bool = False) -> list[str]:
        """The sentences of one part; a sentence repeated within a paragraph counts once (a small model that
        falls into a loop repeats whole sentences, which would otherwise weigh on q)."""
        sentences, owners = paragraph_sentences(self.texts(source, split, paired=paired))
        return [sentence for _, sentence in dict.fromkeys(zip(owners, sentences))]

    def counts(self) -> dict[str, int]:
        return {f"{source}_{split}": sum(1 for p in self.paragraphs if p.source == source and p.split == split)
                for source in SOURCES for split in SPLITS}


def read_documents(path: str | Path, text_column: str, id_column: str | None = None) -> list[tuple[str, str]]:
    """(doc_id, text) of every row of a table file with non-empty text; a missing column is named with its row."""
    documents = []
    for row in read_rows(path):
        if text_column not in row.values:
            raise RowError(row.path, row.line, text_column,
                           f"no such column (columns: {', '.join(row.values) or 'none'})")
        text = row.values[text_column]
        if text is None or not str(text).strip():
            continue
        doc_id = str(row.values.get(id_column) if id_column else row.line)
        if id_column and row.values.get(id_column) is None:
            raise RowError(row.path, row.line, id_column, "missing id")
        documents.append((doc_id, str(text)))
    if not documents:
        raise DataError(f"{path}: no rows with text in column '{text_column}'")
    return documents


@dataclass(frozen=True)
class SplitPlan:
    heldout_fraction: float = 0.3
    rewrite_reference: int = 75  # reference paragraphs rewritten: Q
    rewrite_heldout: int = 25  # held-out paragraphs rewritten: the AI side of validation mixtures
    seed: int = 0

    def check(self, n_documents: int) -> None:
        if not 0 < self.heldout_fraction < 1:
            raise ConfigError(f"heldout fraction must be between 0 and 1, got {self.heldout_fraction}")
        heldout = round(n_documents * self.heldout_fraction)
        if self.rewrite_reference < 1 or self.rewrite_reference > n_documents - heldout:
            raise ConfigError(f"cannot rewrite {self.rewrite_reference} of {n_documents - heldout} reference "
                              f"paragraphs")
        if self.rewrite_heldout < 0 or self.rewrite_heldout >= heldout:
            raise ConfigError(f"cannot rewrite {self.rewrite_heldout} of {heldout} held-out paragraphs and keep "
                              f"some human ones")


def plan_split(documents: Sequence[tuple[str, str]], plan: SplitPlan) -> list[tuple[str, str, dict[str, Any]]]:
    """Each document with its split, whether it is rewritten and (if so) its turn, in a seeded order."""
    plan.check(len(documents))
    order = list(range(len(documents)))
    random.Random(plan.seed).shuffle(order)
    heldout = round(len(documents) * plan.heldout_fraction)
    planned = []
    for rank, index in enumerate(order):
        split = "heldout" if rank < heldout else "reference"
        position = rank if split == "heldout" else rank - heldout
        quota = plan.rewrite_heldout if split == "heldout" else plan.rewrite_reference
        doc_id, text = documents[index]
        # Turns interleave the two splits in proportion to their quotas, so a run stopped early has both.
        planned.append((doc_id, text, {"split": split, "rewrite": position < quota,
                                       "turn": (position + 0.5) / max(quota, 1)}))
    return planned


def build_reference(session: Any, documents: Sequence[tuple[str, str]], plan: SplitPlan, prompts: Prompts,
                    settings: RewriteSettings, *, role: str = "target") -> Reference:
    """Rewrite the planned paragraphs through `session` and write reference.jsonl into its run directory."""
    planned = plan_split(documents, plan)
    chosen = sorted((d for d in planned if d[2]["rewrite"]), key=lambda d: d[2]["turn"])
    records = rewrite_records(session, [(i, t, {"split": m["split"]}) for i, t, m in chosen], prompts, settings,
                              role=role)
    rewrites = {r.sample_id: rewrite_from_record(r) for r in records}
    paragraphs = []
    for doc_id, text, meta in planned:
        # A held-out paragraph that is rewritten is used only as AI text, never also as human text.
        if meta["split"] == "reference" or not meta["rewrite"]:
            paragraphs.append(Paragraph(doc_id, "human", meta["split"], text))
        if meta["rewrite"]:
            paragraphs.append(Paragraph(doc_id, "ai", meta["split"], rewrites[doc_id].text))
    reference = Reference(paragraphs, str(session.run.path / REFERENCE_FILE))
    write_reference(reference, session.run.path / REFERENCE_FILE)
    return reference


def write_reference(reference: Reference, path: str | Path) -> Path:
    lines = [json.dumps({"doc_id": p.doc_id, "source": p.source, "split": p.split, "text": p.text},
                        ensure_ascii=False) for p in reference.paragraphs]
    return write_text_atomic(path, "".join(line + "\n" for line in lines))


def load_reference(path: str | Path) -> Reference:
    """A reference file, or the reference.jsonl of a build-reference run directory."""
    path = Path(path)
    if path.is_dir():
        path = path / REFERENCE_FILE
    if not path.is_file():
        raise DataError(f"no reference file at {path} (make one with `lmaudit llmuse build-reference`)")
    paragraphs = []
    for row in read_rows(path):
        values = {}
        for name in ("doc_id", "source", "split", "text"):
            if not isinstance(row.values.get(name), str):
                raise RowError(row.path, row.line, name, "missing or not text")
            values[name] = row.values[name]
        if values["source"] not in SOURCES:
            raise RowError(row.path, row.line, "source", f"expected one of {', '.join(SOURCES)}")
        if values["split"] not in SPLITS:
            raise RowError(row.path, row.line, "split", f"expected one of {', '.join(SPLITS)}")
        paragraphs.append(Paragraph(**values))
    reference = Reference(paragraphs, str(path))
    for source in SOURCES:
        if not reference.texts(source):
            raise DataError(f"{path}: no {source} paragraphs in the reference split")
    return reference
