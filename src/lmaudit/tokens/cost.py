"""What the same work costs per language: a price table, a workload defined in English, and context capacity.

A workload is so many input and output tokens *of English* under a model's own tokenizer. In language L the same
content takes premium(L) times as many tokens (its translation's token count over English's), so it costs
premium(L) times as much and leaves 1/premium(L) as many few-shot examples room in the context window (Ahia et
al. 2023's point: speakers of high-premium languages pay more for less in-context learning).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from lmaudit.core.errors import ConfigError, DataError, UnknownNameError
from lmaudit.tokens.measures import PremiumRow

EXAMPLE_PRICES = "prices-2024-10.toml"


@dataclass(frozen=True)
class Price:
    model: str
    tokenizer: str
    input_per_million: float
    output_per_million: float
    context_window: int | None
    date: str
    source: str


@dataclass(frozen=True)
class Workload:
    input_tokens: int = 1_000_000  # English tokens sent
    output_tokens: int = 200_000  # English tokens received
    example_tokens: int = 200  # English tokens per few-shot example


@dataclass(frozen=True)
class CostRow:
    language: str
    name: str
    model: str
    tokenizer: str
    premium: float
    premium_ci_low: float
    premium_ci_high: float
    input_tokens: int
    output_tokens: int
    cost_usd: float
    cost_ci_low: float
    cost_ci_high: float
    context_window: int | None
    examples_in_context: int | None
    sentences_in_context: int | None
    price_date: str

    def to_dict(self) -> dict:
        return asdict(self)


COST_COLUMNS = list(CostRow.__dataclass_fields__)


def example_prices_path() -> Path:
    return Path(str(resources.files("lmaudit.tokens").joinpath(f"data/{EXAMPLE_PRICES}")))


def read_prices(path: str | Path | None = None) -> list[Price]:
    """A price table (TOML, [[model]] entries); the shipped dated example when `path` is None."""
    path = Path(path) if path is not None else example_prices_path()
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"price table {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise DataError(f"price table {path}: not valid TOML ({exc})") from None
    entries = table.get("model")
    if not isinstance(entries, list) or not entries:
        raise DataError(f"price table {path} defines no model: add [[model]] entries with name, tokenizer, "
                        "input_per_million and output_per_million")
    prices = []
    for number, entry in enumerate(entries, start=1):
        def field(name: str, kind: type | tuple[type, ...], default: object = None) -> object:
            value = entry.get(name, table.get(name) if name in {"date", "source"} else default)
            if value is None or not isinstance(value, kind) or isinstance(value, bool):
                raise DataError(f"price table {path}: [[model]] number {number} "
                                f"({entry.get('name', 'no name')}) needs '{name}' ({getattr(kind, '__name__', 'a number')})")
            return value

        prices.append(Price(str(field("name", str)), str(field("tokenizer", str)),
                            float(field("input_per_million", (int, float))),  # type: ignore[arg-type]
                            float(field("output_per_million", (int, float))),  # type: ignore[arg-type]
                            int(entry["context_window"]) if "context_window" in entry else None,
                            str(field("date", str)), str(field("source", str))))
    names = [p.model for p in prices]
    if len(set(names)) != len(names):
        raise DataError(f"price table {path}: a model is listed twice ({', '.join(sorted(names))})")
    return prices


def choose(prices: list[Price], models: list[str] | None) -> list[Price]:
    if not models:
        return prices
    by_name = {p.model: p for p in prices}
    for name in models:
        if name not in by_name:
            raise UnknownNameError("model of the price table", name, list(by_name))
    return [by_name[name] for name in models]


def cost_rows(price: Price, rows: list[PremiumRow], reference: str, workload: Workload) -> list[CostRow]:
    """The workload's cost in every language, from one tokenizer's premiums."""
    per_unit = (workload.input_tokens * price.input_per_million
                + workload.output_tokens * price.output_per_million) / 1e6  # the English cost
    out = []
    for row in rows:
        examples = None
        if price.context_window:
            examples = math.floor(price.context_window / (workload.example_tokens * row.premium))
        sentences = row.sentences_in_context if price.context_window == row.context_window else None
        out.append(CostRow(
            language=row.language, name=row.name, model=price.model, tokenizer=row.tokenizer, premium=row.premium,
            premium_ci_low=row.premium_ci_low, premium_ci_high=row.premium_ci_high,
            input_tokens=round(workload.input_tokens * row.premium),
            output_tokens=round(workload.output_tokens * row.premium),
            cost_usd=per_unit * row.premium, cost_ci_low=per_unit * row.premium_ci_low,
            cost_ci_high=per_unit * row.premium_ci_high, context_window=price.context_window,
            examples_in_context=examples, sentences_in_context=sentences, price_date=price.date))
    if not any(r.language == reference for r in out):
        raise ConfigError(f"reference language {reference} has no premium row")
    return out
