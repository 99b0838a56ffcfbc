"""The data a report carries: runs, checked metric rows, figures, samples (columnar), A/B and maps.

Texts go into one string table, so a prompt shared by two runs (or by the four answer letters of one MMLU
question) is stored once; samples are parallel arrays, so the browser filters 100k of them without building
100k objects. Every number here comes from report/recompute.py, report/ab.py or lmaudit.maps.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lmaudit.core.types import SampleRecord
from lmaudit.maps import KnowledgeMap, Layout, is_binary, svg
from lmaudit.report.ab import Comparison
from lmaudit.report.recompute import Checked, Recomputed
from lmaudit.report.runs import Run

MISSING = -1  # "no string" / "not applicable" in the integer columns


class Strings(dict):
    """Text -> its index in the table, None -> MISSING. A dict, so `strings[text]` (a few hundred thousand per
    report) is a lookup in C and only a new text runs Python; insertion order makes the keys the table."""

    def __init__(self) -> None:
        super().__init__({None: MISSING})

    def __missing__(self, text: str) -> int:
        index = self[text] = len(self) - 1
        return index

    @property
    def table(self) -> list[str]:
        return list(self)[1:]


def _number(value: Any, digits: int = 6) -> float | None:
    if value.__class__ is float:  # the common case first: this runs a few times per record
        return round(value, digits) if math.isfinite(value) else None
    if value is None or not isinstance(value, (int, float)):
        return None
    return round(float(value), digits)


def _prompt(request: dict[str, Any]) -> str:
    if request.get("messages"):
        return "\n\n".join(f"[{m.get('role')}] {m.get('content')}" for m in request["messages"])
    return request.get("prompt") or request.get("context") or request.get("text") or ""


LL, GEN, TOK = 0, 1, 2  # exchange kinds in the payload


def _exchanges(record: SampleRecord, strings: Strings) -> list[list[Any]]:
    """Per request [kind, role, input, second, number, note], as the browser shows them:
    log-likelihood [0, role, context, continuation, logprob, greedy 0/1]; generation [1, role, prompt, output,
    null, finish reason]; token log-probabilities [2, role, text, -1, their sum, token count]."""
    roles = record.roles or ()
    responses = record.responses
    out = []
    for index, request in enumerate(record.requests):
        response = responses[index] if index < len(responses) else {}
        kind = request.get("kind")
        role = strings[roles[index]] if index < len(roles) else MISSING
        if kind == "loglikelihood":
            out.append([LL, role, strings[request.get("context")], strings[request.get("continuation")],
                        _number(response.get("logprob"), 4), 1 if response.get("is_greedy") else 0])
        elif kind == "generate":
            out.append([GEN, role, strings[_prompt(request)], strings[response.get("text")], None,
                        strings[response.get("finish_reason")]])
        else:
            logprobs = response.get("logprobs") or []
            out.append([TOK, role, strings[request.get("text")], MISSING,
                        _number(sum(logprobs), 4) if logprobs else None, len(logprobs)])
    return out


def verdict_label(verdict: Any) -> str:
    """One word per judge verdict for the filter: jailbroken, safe, refused, complied, unparsed, or its label."""
    if not isinstance(verdict, dict):
        return str(verdict)
    if verdict.get("parsed") is False:
        return "unparsed"
    if verdict.get("jailbroken") is not None:
        return "jailbroken" if verdict["jailbroken"] else "not jailbroken"
    if verdict.get("refused") is not None:
        return "refused" if verdict["refused"] else "complied"
    return str(verdict.get("label"))


@dataclass
class SampleColumns:
    """Parallel arrays, one entry per browsed sample."""

    run: list[int]
    task: list[int]
    id: list[int]
    ok: list[int]  # 1 correct, 0 incorrect, -1 not a 0/1 score
    primary: list[float | None]
    contaminated: list[int]  # 1, 0, -1 unchecked
    groups: list[list[int]]  # string ids of "key=value"
    scores: list[list[Any]]  # [metric string id, value] pairs
    judges: list[list[int]]  # [judge string id, verdict string id] pairs
    detail: list[dict[str, Any]]

    @classmethod
    def empty(cls) -> "SampleColumns":
        return cls([], [], [], [], [], [], [], [], [], [])

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def primary_metrics(recomputed: Recomputed, records: Sequence[SampleRecord]) -> dict[str, str | None]:
    """Per task, the browsed records' score that decides correct / incorrect."""
    out: dict[str, str | None] = {}
    seen: dict[str, set[str]] = {}
    for record in records:
        seen.setdefault(record.task, set()).update(record.scores)
    for task, keys in seen.items():
        wanted = recomputed.record_metrics.get(task) or recomputed.metrics.get(task) or []
        out[task] = next((m for m in wanted if m in keys), min(keys) if keys else None)
    return out


def add_samples(columns: SampleColumns, run_index: int, run: Run, recomputed: Recomputed, strings: Strings,
                contamination: dict[tuple[str, str], bool | None]) -> dict[tuple[str, str], int]:
    """Append the run's records; returns (task, sample id) -> sample index."""
    primary = primary_metrics(recomputed, run.records)
    binary = {task: is_binary([r.scores[m] for r in run.records if r.task == task and m in r.scores])
              for task, m in primary.items() if m is not None}
    group_keys = {task: set(keys) for task, keys in recomputed.group_by.items()}
    where = {}
    for record in run.records:
        where[(record.task, record.sample_id)] = len(columns.run)
        metric = primary.get(record.task)
        value = record.scores.get(metric) if metric else None
        columns.run.append(run_index)
        columns.task.append(strings[record.task])
        columns.id.append(strings[record.sample_id])
        columns.ok.append(int(value) if value is not None and binary.get(record.task) else MISSING)
        columns.primary.append(_number(value))
        flag = contamination.get((record.task, record.sample_id))
        columns.contaminated.append(MISSING if flag is None else int(flag))
        keys = group_keys.get(record.task) or set(record.metadata)
        grouped = [k for k, v in record.metadata.items() if k in keys and isinstance(v, (str, int, float, bool))]
        columns.groups.append([strings[f"{k}={record.metadata[k]}"] for k in grouped])
        columns.scores.append([[strings[k], _number(v)] for k, v in record.scores.items()])
        columns.judges.append([x for name, v in (record.judges or {}).items()
                               for x in (strings[name], strings[verdict_label(v)])])
        # metadata the groups do not already carry
        rest = [[strings[k], strings[_text(v)]] for k, v in record.metadata.items() if k not in grouped]
        detail: dict[str, Any] = {"t": strings[_text(record.target)], "x": _exchanges(record, strings)}
        if rest:
            detail["m"] = rest
        if record.judges:  # [judge, verdict as JSON] string ids: the few distinct verdicts are stored once
            detail["j"] = [[strings[name], strings[json.dumps(v, ensure_ascii=False, sort_keys=True)]]
                           for name, v in record.judges.items()]
        if record.execution is not None:
            detail["e"] = record.execution
        if record.source_id:
            detail["src"] = strings[record.source_id]
        columns.detail.append(detail)
    return where


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if value.__class__ is int:  # an MMLU target, once per record: what json.dumps writes, without its cost
        return str(value)
    if isinstance(value, (bool, int, float)):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def row_list(checked: Sequence[Checked]) -> list[list[Any]]:
    """[task, group, metric, value, stderr, ci_low, ci_high, n, status] per row."""
    out = []
    for item in checked:
        row = item.row
        low, high = row.ci95 if row.ci95 is not None else (None, None)
        out.append([row.task, row.group, row.metric, _number(row.value, 10), _number(row.stderr, 10),
                    _number(low, 10), _number(high, 10), row.n, item.status])
    return out


def figure_list(run: Run) -> list[dict[str, str]]:
    return [{"name": path.name, "src": "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()}
            for path in run.figures]


def comparison_dict(comparison: Comparison, a: int, b: int, where: list[dict[tuple[str, str], int]]) -> dict:
    rows = [[r.task, r.group, r.metric, r.n_pairs, _number(r.mean_a, 10), _number(r.mean_b, 10),
             _number(r.diff, 10), _number(r.ci95[0], 10), _number(r.ci95[1], 10), _number(r.p_mcnemar, 12),
             r.b_only, r.a_only] for r in comparison.rows]
    flips = [[where[a].get((f.task, f.sample_id), MISSING), where[b].get((f.task, f.sample_id), MISSING), f.a, f.b]
             for f in comparison.flips]
    return {"a": a, "b": b, "rows": rows, "flips": flips, "shared": comparison.shared, "only_a": comparison.only_a,
            "only_b": comparison.only_b}


def map_dict(kmap: KnowledgeMap, plan: Layout, task: str, run_indices: list[int]) -> dict[str, Any]:
    """The map's SVG plus what a click needs: each node's leaves (group values) and the runs' indices."""
    return {"title": plan.title, "task": task, "key": kmap.hierarchy.key, "metric": kmap.metric,
            "runs": run_indices, "svg": svg(plan), "unmapped": list(kmap.unmapped),
            "nodes": {node.id: list(node.leaves) for node in kmap.nodes}, "rows": kmap.rows()}
