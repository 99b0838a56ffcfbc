"""Accuracy against premium: do the languages a tokenizer charges more for also score worse?

Per-language scores come from the built-in GPT-4 Figure 5 table, from any lmaudit run directory whose groups (or
tasks, `mmmlu_<locale>`) are languages, or from a CSV (language, accuracy). Against log2 of the premium we
report Spearman's and Pearson's correlation and the least-squares slope in accuracy points per doubling of the
premium, each with a 95% bootstrap CI over languages.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lmaudit.core.errors import ConfigError, DataError, RowError, UnknownNameError
from lmaudit.core.results import read_envelope
from lmaudit.tokens.languages import language_name, to_flores
from lmaudit.tokens.published import GPT4_MMLU_3SHOT

BUILTIN = {"gpt4-mmlu": "GPT-4, 3-shot MMLU translated by Azure Translate (GPT-4 report, Figure 5)"}


@dataclass(frozen=True)
class Point:
    language: str
    name: str
    premium: float
    accuracy: float  # points (0-100)


@dataclass
class AccuracyFit:
    n: int
    spearman: float
    spearman_ci: tuple[float, float]
    pearson: float
    pearson_ci: tuple[float, float]
    slope: float  # accuracy points per doubling of the premium
    slope_ci: tuple[float, float]
    intercept: float
    points: list[Point]
    unmatched: list[str] = field(default_factory=list)  # languages with a score but no premium

    def to_dict(self) -> dict:
        return asdict(self)


def builtin_scores(name: str) -> dict[str, float]:
    if name != "gpt4-mmlu":
        raise UnknownNameError("built-in score table", name, list(BUILTIN))
    return {code: value for code, _, value in GPT4_MMLU_3SHOT}


def run_scores(run_dir: Path, metric: str = "acc", group_key: str = "language") -> dict[str, float]:
    """Per-language scores of a run directory: rows grouped `<group_key>=<language>`, or one task per language."""
    path = run_dir / "results.json"
    if not path.is_file():
        raise DataError(f"{run_dir} has no results.json: not a finished lmaudit run directory")
    _, rows = read_envelope(json.loads(path.read_text(encoding="utf-8")), str(path))
    scores: dict[str, float] = {}
    for row in rows:
        if row.metric != metric or row.value is None:
            continue
        if row.group and row.group.startswith(f"{group_key}="):
            scores[to_flores(row.group.split("=", 1)[1])] = row.value
        elif row.group is None and row.task and row.task.startswith("mmmlu_"):
            scores[to_flores(row.task[len("mmmlu_"):])] = row.value
    if not scores:
        raise DataError(f"{path}: no '{metric}' rows grouped by {group_key}=<language> (nor mmmlu_<locale> tasks)")
    if max(scores.values()) <= 1.0:  # fractions -> points
        scores = {code: 100 * value for code, value in scores.items()}
    return scores


def csv_scores(path: Path) -> dict[str, float]:
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"language", "accuracy"} <= set(reader.fieldnames):
            raise DataError(f"{path}: expected columns language and accuracy (found {reader.fieldnames})")
        scores = {}
        for number, row in enumerate(reader, start=2):
            try:
                scores[to_flores(row["language"])] = float(row["accuracy"])
            except ValueError:
                raise RowError(str(path), number, "accuracy", f"not a number: {row['accuracy']!r}") from None
    return scores


def load_scores(source: str, metric: str = "acc", group_key: str = "language") -> dict[str, float]:
    if source in BUILTIN:
        return builtin_scores(source)
    path = Path(source)
    if path.is_dir():
        return run_scores(path, metric, group_key)
    if path.is_file():
        return csv_scores(path)
    raise ConfigError(f"scores '{source}': not a built-in table ({', '.join(BUILTIN)}), a run directory or a CSV")


def _statistics(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    from scipy import stats

    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan"), float("nan"), float("nan")
    slope, intercept = np.polyfit(x, y, 1)
    return float(stats.spearmanr(x, y).statistic), float(stats.pearsonr(x, y).statistic), float(slope), float(
        intercept)


def fit(premiums: dict[str, float], scores: dict[str, float], *, seed: int = 0, resamples: int = 2000) -> AccuracyFit:
    """Correlations and slope of accuracy on log2 premium, with bootstrap CIs over the languages both have."""
    common = [code for code in scores if code in premiums]
    if len(common) < 3:
        raise DataError(f"only {len(common)} languages have both a score and a premium (need 3): "
                        f"scores for {', '.join(sorted(scores)[:8])}...; premiums for {', '.join(sorted(premiums)[:8])}...")
    points = [Point(code, language_name(code), premiums[code], scores[code]) for code in common]
    x = np.log2([p.premium for p in points])
    y = np.array([p.accuracy for p in points])
    spearman, pearson, slope, intercept = _statistics(x, y)
    rng = np.random.default_rng(seed)
    draws = np.array([_statistics(x[idx], y[idx])[:3] for idx in rng.integers(0, len(x), (resamples, len(x)))])

    def interval(column: int) -> tuple[float, float]:
        low, high = np.nanpercentile(draws[:, column], [2.5, 97.5])
        return float(low), float(high)

    return AccuracyFit(len(points), spearman, interval(0), pearson, interval(1), slope, interval(2), intercept,
                       points, sorted(code for code in scores if code not in premiums))


def scatter(result: AccuracyFit, path: Path, *, title: str) -> Path:
    """Accuracy against premium (log scale), each language labelled, with the least-squares line."""
    from lmaudit.core.output import pyplot, save_figure

    plt = pyplot()
    figure, axis = plt.subplots(figsize=(8, 5.5))
    premiums = np.array([p.premium for p in result.points])
    accuracy = np.array([p.accuracy for p in result.points])
    axis.scatter(premiums, accuracy, s=18, color="tab:blue", zorder=3)
    for point in result.points:
        axis.annotate(point.name, (point.premium, point.accuracy), fontsize=7, xytext=(3, 2),
                      textcoords="offset points")
    grid = np.geomspace(premiums.min(), premiums.max(), 50)
    axis.plot(grid, result.intercept + result.slope * np.log2(grid), color="tab:red",
              label=f"{result.slope:+.1f} points per doubling [{result.slope_ci[0]:+.1f}, {result.slope_ci[1]:+.1f}]")
    axis.set_xscale("log", base=2)
    axis.set_xlabel("tokenization premium against the reference language (log scale)")
    axis.set_ylabel("accuracy (%)")
    axis.set_title(f"{title}\nSpearman {result.spearman:.2f} [{result.spearman_ci[0]:.2f}, {result.spearman_ci[1]:.2f}], "
                   f"Pearson {result.pearson:.2f} [{result.pearson_ci[0]:.2f}, {result.pearson_ci[1]:.2f}], "
                   f"n={result.n}", fontsize=9)
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    return save_figure(figure, path)[0]
