"""A hierarchy proposed by a model, for a dataset that has none: each group value is assigned a broad area.

One short greedy question per value goes through the runner (`RunSession.call`, role "builder"), so answers
are cached and a rerun costs nothing; the run directory keeps every prompt and answer in samples.jsonl and the
hierarchy as `hierarchy.json`, a file to review, edit and pass back with `--hierarchy hierarchy.json`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lmaudit.core.errors import ConfigError
from lmaudit.core.output import write_json_atomic
from lmaudit.core.results import MetricRow, envelope
from lmaudit.core.types import GenerateRequest, Message, SampleRecord, request_key, to_dict
from lmaudit.maps.hierarchy import Hierarchy
from lmaudit.models.base import Model
from lmaudit.runner import ModelRole, RunSession

ROLE = "builder"
PROMPT_VERSION = 1
HIERARCHY_FILE = "hierarchy.json"
FALLBACK_AREA = "Other"
# Our own wording: name the field, in one to three words, so that similar topics land in the same area.
QUESTION = ("Here are topics from one test: {others}.\n"
            "Which broad field of knowledge does the topic \"{value}\" belong to? "
            "Answer with the name of the field only, in one to three words.")


@dataclass(frozen=True)
class InducedHierarchy:
    hierarchy: Hierarchy
    run_dir: Path
    file: Path
    requests_sent: int


def area_name(text: str) -> str:
    """The first line of an answer as an area name: no quotes, labels or trailing punctuation, title case."""
    line = next((part for part in text.strip().splitlines() if part.strip()), "")
    line = re.sub(r"^(answer|field|the field is)\s*[:\-]\s*", "", line.strip(), flags=re.IGNORECASE)
    line = re.sub(r"[\"'*`.]+", "", line).strip(" :-")
    words = line.split()[:3]
    return " ".join(w if w.isupper() else w.capitalize() for w in words) or FALLBACK_AREA


def _request(value: str, values: Sequence[str]) -> GenerateRequest:
    others = ", ".join(v for v in values[:40] if v != value)
    return GenerateRequest(messages=(Message("user", QUESTION.format(value=value, others=others)),),
                           max_tokens=12, temperature=0.0)


def induce_hierarchy(values: Sequence[str], key: str, model: Model, output_dir: str | Path, *,
                     spec: str | None = None, progress: bool = True,
                     cache_path: str | Path | None = None) -> InducedHierarchy:
    """Ask `model` for an area per value; write the run directory and its hierarchy.json.

    Answers come from the shared response cache when they are there (or from `cache_path`)."""
    values = sorted({str(v) for v in values})
    if not values:
        raise ConfigError(f"no values of '{key}' to build a hierarchy from")
    session = RunSession.open(output_dir, kind="hierarchy",
                              identity={"key": key, "values": values, "prompt_version": PROMPT_VERSION},
                              roles=[ModelRole(ROLE, model, spec)], progress=progress, name=f"hierarchy-{key}",
                              cache_path=cache_path)
    with session:
        requests = [_request(value, values) for value in values]
        answers = session.call(ROLE, requests, label="hierarchy questions")
        done = {r.sample_id for r in session.records()}
        areas = {value: area_name(answer.text) for value, answer in zip(values, answers)}  # type: ignore[union-attr]
        session.append([SampleRecord(task="hierarchy", sample_id=value, target=None,
                                     metadata={key: value, "area": areas[value]},
                                     requests=[{"key": request_key(request), **to_dict(request)}],
                                     responses=[to_dict(answer)], scores={}, roles=[ROLE])
                        for value, request, answer in zip(values, requests, answers) if value not in done])
        hierarchy = Hierarchy(f"{key} (areas proposed by {spec or model.name})", key,
                              {value: (area,) for value, area in areas.items()}, f"model:{spec or model.name}")
        file = write_json_atomic(session.run.path / HIERARCHY_FILE, {**hierarchy.to_dict(), "source": hierarchy.source})
        session.finish(envelope("hierarchy", [MetricRow("values", float(len(values))),
                                              MetricRow("areas", float(len(set(areas.values()))))],
                                key=key, file=HIERARCHY_FILE))
        sent = session.sent[ROLE]
    return InducedHierarchy(hierarchy, session.run.path, file, sent)
