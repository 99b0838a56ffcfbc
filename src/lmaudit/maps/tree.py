"""A knowledge map: a metric over every node of a hierarchy, for one or more runs, plus paired differences.

Each node's value, standard error and n come from `lmaudit.runner.summarize_records` (or `core.stats.summarize`,
the function it calls), the code that writes the group rows of results.json, over the records whose group value
sits under the node: a leaf or root that is a results.json row (an MMLU subject, all questions) shows exactly
that row's numbers, taken from the run's recomputed rows. For 0/1 scores the node's CI is the Wilson interval
(sound for the small nodes of a map); for other scores, the bootstrap CI of summarize_records. A node with
fewer than `min_n` scored samples is marked low-n.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lmaudit.core.stats import summarize
from lmaudit.core.types import SampleRecord
from lmaudit.maps.hierarchy import UNMAPPED, Hierarchy
from lmaudit.maps.stats import is_binary, mcnemar_exact, paired_bootstrap, wilson
from lmaudit.runner import summarize_records

DEFAULT_MIN_N = 30
SEPARATOR = " / "


@dataclass(frozen=True)
class MapRun:
    """One run's records (the units its metric is a mean over), its label and the seed of its results.

    `known` holds summaries already computed by summarize_records over the same records in the same order
    (the rows of results.json as recomputed): "" for all records, "key=value" for a group. A node with the
    same members takes its numbers from there instead of bootstrapping again.
    """

    label: str
    records: Sequence[SampleRecord]
    seed: int = 0
    known: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeStats:
    n: int
    value: float | None
    stderr: float | None
    ci95: tuple[float | None, float | None]
    ci_method: str  # "wilson" (0/1 scores) or "bootstrap"
    low_n: bool


@dataclass(frozen=True)
class NodeDiff:
    """Run k minus the first run over the samples both scored, paired by (task, sample id)."""

    n_pairs: int
    value: float | None
    ci95: tuple[float | None, float | None]
    p_mcnemar: float | None  # 0/1 scores only


@dataclass(frozen=True)
class MapNode:
    id: str  # the path joined by " / "; "" is the root
    label: str
    depth: int
    parent: str | None
    leaves: tuple[str, ...]  # the group values under this node
    stats: tuple[NodeStats, ...]  # one per run
    diffs: tuple[NodeDiff | None, ...]  # one per run; None for the first


@dataclass(frozen=True)
class KnowledgeMap:
    hierarchy: Hierarchy
    metric: str
    runs: tuple[str, ...]
    nodes: tuple[MapNode, ...]  # pre-order: every parent before its children
    unmapped: tuple[str, ...]  # group values the hierarchy does not place
    min_n: int = DEFAULT_MIN_N
    children: dict[str, list[str]] = field(default_factory=dict)

    def node(self, node_id: str) -> MapNode:
        return next(n for n in self.nodes if n.id == node_id)

    def rows(self) -> list[dict[str, Any]]:
        """One row per node and run: the map as a table (stable columns, see ROW_COLUMNS)."""
        out = []
        for node in self.nodes:
            for label, stats, diff in zip(self.runs, node.stats, node.diffs):
                out.append({"node": node.id or "(all)", "depth": node.depth, "label": node.label, "run": label,
                            "metric": self.metric, "n": stats.n, "value": stats.value, "stderr": stats.stderr,
                            "ci_low": stats.ci95[0], "ci_high": stats.ci95[1], "ci_method": stats.ci_method,
                            "low_n": stats.low_n, "diff_vs_first": diff.value if diff else None,
                            "diff_ci_low": diff.ci95[0] if diff else None,
                            "diff_ci_high": diff.ci95[1] if diff else None,
                            "p_mcnemar": diff.p_mcnemar if diff else None})
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"hierarchy": self.hierarchy.to_dict(), "metric": self.metric, "runs": list(self.runs),
                "min_n": self.min_n, "unmapped": list(self.unmapped), "rows": self.rows()}


ROW_COLUMNS = ("node", "depth", "label", "run", "metric", "n", "value", "stderr", "ci_low", "ci_high", "ci_method",
               "low_n", "diff_vs_first", "diff_ci_low", "diff_ci_high", "p_mcnemar")


def _none_if_nan(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def node_stats(records: Sequence[SampleRecord], metric: str, seed: int, min_n: int,
               known: Mapping[str, Any] | None = None) -> NodeStats:
    values = [r.scores[metric] for r in records if metric in r.scores]
    binary = bool(values) and is_binary(values)
    if known is not None and known.get("n") == len(values):
        summary = known
    elif binary:
        # value, stderr and n from the function behind summarize_records; the CI of 0/1 scores is Wilson's,
        # so its bootstrap would be thrown away: one resample instead of 1,000
        summary = summarize(values, seed=seed, resamples=1).to_dict()
    else:
        summary = summarize_records(records, [metric], seed=seed)[metric]
    n = summary["n"]
    if binary:
        ci, method = wilson(sum(values), n), "wilson"
    else:
        ci, method = tuple(summary["ci95"]), "bootstrap"
    return NodeStats(n, _none_if_nan(summary["value"]), _none_if_nan(summary["stderr"]),
                     (_none_if_nan(ci[0]), _none_if_nan(ci[1])), method, n < min_n)


def node_diff(entries: Sequence[tuple[float, float, str] | None], seed: int, leaves: set[str]) -> NodeDiff:
    """`entries`: the node's records of a later run, each as (first run's score, its score, the first run's
    group value), None where the first run did not score that sample. Pairs are the samples both scored whose
    first-run record is under the node too."""
    pairs = [(e[0], e[1]) for e in entries if e is not None and e[2] in leaves]
    if not pairs:
        return NodeDiff(0, None, (None, None), None)
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    value, low, high = paired_bootstrap(a, b, seed=seed)
    p = None
    if is_binary(a) and is_binary(b):
        p = mcnemar_exact(sum(1 for x, y in pairs if y > x), sum(1 for x, y in pairs if x > y))
    return NodeDiff(len(pairs), value, (low, high), p)


def _paired(first: Mapping[tuple[str, str], tuple[float, str]], record: SampleRecord,
            metric: str) -> tuple[float, float, str] | None:
    mine = first.get((record.task, record.sample_id))
    if mine is None or metric not in record.scores:
        return None
    return mine[0], record.scores[metric], mine[1]


def build_map(runs: Sequence[MapRun], hierarchy: Hierarchy, metric: str, *,
              min_n: int = DEFAULT_MIN_N) -> KnowledgeMap:
    """The hierarchy's nodes that hold at least one record of any run, each with every run's statistics."""
    # (group value, record) in each run's record order: a node's members keep that order, so a node equal to a
    # results.json group gets the same bootstrap draws, hence the same CI, as that row.
    keyed = [[(str(r.metadata[hierarchy.key]), r) for r in run.records if hierarchy.key in r.metadata]
             for run in runs]
    present = {value for pairs in keyed for value, _ in pairs}
    positions: list[dict[str, list[int]]] = []  # per run: group value -> its records' positions in `keyed`
    for pairs in keyed:
        where: dict[str, list[int]] = {}
        for index, (value, _) in enumerate(pairs):
            where.setdefault(value, []).append(index)
        positions.append(where)
    first = {(r.task, r.sample_id): (r.scores[metric], value) for value, r in keyed[0] if metric in r.scores} \
        if keyed else {}
    # each later run's records paired with the first run's once, not once per node above them
    paired = [None] + [[_paired(first, r, metric) for _, r in pairs] for pairs in keyed[1:]]
    placed = [v for v in hierarchy.paths if v in present]
    unmapped = sorted(present - set(hierarchy.paths))
    ordered = placed + unmapped

    # Nodes in order of first appearance along the hierarchy's declared order (parents before children).
    node_leaves: dict[tuple[str, ...], list[str]] = {(): []}
    for value in ordered:
        path = hierarchy.path_of(value)
        for depth in range(len(path) + 1):
            node_leaves.setdefault(path[:depth], []).append(value)
    children: dict[str, list[str]] = {}
    nodes = []
    for path, leaves in node_leaves.items():
        node_id = SEPARATOR.join(path)
        parent = SEPARATOR.join(path[:-1]) if path else None
        if parent is not None:
            children.setdefault(parent, []).append(node_id)
        wanted = set(leaves)
        indices = [sorted(i for value in leaves for i in where.get(value, ())) for where in positions]
        members = [[pairs[i][1] for i in mine] for pairs, mine in zip(keyed, indices)]
        name = "" if not path else (f"{hierarchy.key}={path[-1]}" if path[-1] in present and len(leaves) == 1
                                    else None)
        stats = tuple(node_stats(m, metric, run.seed, min_n, run.known.get(name) if name is not None else None)
                      for m, run in zip(members, runs))
        diffs = tuple(None if index == 0 else node_diff([entries[i] for i in mine], runs[0].seed, wanted)
                      for index, (entries, mine) in enumerate(zip(paired, indices)))
        label = path[-1] if path else hierarchy.name.split(" (")[0]
        nodes.append(MapNode(node_id, label, len(path), parent, tuple(v for v in ordered if v in wanted),
                             stats, diffs))
    return KnowledgeMap(hierarchy, metric, tuple(r.label for r in runs), tuple(nodes), tuple(unmapped), min_n,
                        children)



