"""Option probabilities of a multiple-choice record, read from samples.jsonl.

The record shape read (what every letter-choice task writes, with any backend):
- `requests`: one loglikelihood request per option, all with the same `context`; each `continuation` is the
  option's label after the task's delimiter (" A", " B", ...; " 1", " a", " Yes", ...);
- `responses`: one loglikelihood response per request, `logprob` = log P(continuation | context);
- `target`: the gold option's index.
With the hf backend the logprob is the model's own; with the openai backend and `loglikelihood=letters` it is the
log of the first answer token's top_logprobs mass on that label (a label outside the top-k gets a bound), so API
runs give the same shape.

Probabilities are the softmax of the logprobs over the options. The mass outside the options is
1 - sum(exp(logprob)): the probability that the model's continuation starts with none of the labels. That is
exact when no label is a prefix of another (then the events are disjoint; with single-token labels exp(logprob)
is simply the token probability); otherwise it is not defined and left as None.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lmaudit.core.errors import DataError
from lmaudit.core.types import SampleRecord


@dataclass(frozen=True)
class OptionProbs:
    labels: tuple[str, ...]
    probs: tuple[float, ...]  # renormalised over the options
    gold: int
    outside_mass: float | None

    @property
    def chosen(self) -> int:
        return int(np.argmax(self.probs))


def _where(record: SampleRecord) -> str:
    return f"record task={record.task} sample_id={record.sample_id!r}"


def option_logprobs(record: SampleRecord) -> list[float]:
    """The per-option logprobs of a letter-choice record; a DataError naming the record and field otherwise."""
    if len(record.responses) < 2 or len(record.requests) != len(record.responses):
        raise DataError(f"{_where(record)}, field 'responses': expected one loglikelihood response per option "
                        f"(at least 2), got {len(record.responses)} for {len(record.requests)} requests")
    values = []
    for index, response in enumerate(record.responses):
        if response.get("kind") != "loglikelihood" or not isinstance(response.get("logprob"), (int, float)):
            raise DataError(f"{_where(record)}, field 'responses[{index}]': expected a loglikelihood response "
                            f"with a numeric 'logprob', got {response!r}")
        values.append(float(response["logprob"]))
    return values


def option_probs(record: SampleRecord) -> OptionProbs:
    logprobs = np.asarray(option_logprobs(record))
    gold = record.target
    if isinstance(gold, bool) or not isinstance(gold, int) or not 0 <= gold < len(logprobs):
        raise DataError(f"{_where(record)}, field 'target': expected the gold option's index 0-{len(logprobs) - 1}, "
                        f"got {gold!r}")
    if not np.isfinite(logprobs.max()):
        raise DataError(f"{_where(record)}, field 'responses': every option has log-probability -inf")
    shifted = np.exp(logprobs - logprobs.max())
    probs = shifted / shifted.sum()
    labels = tuple(str(r.get("continuation", "")) for r in record.requests)
    contexts = {r.get("context") for r in record.requests}
    prefix_free = not any(a != b and b.startswith(a) for a in labels for b in labels)
    outside = float(1.0 - np.exp(logprobs).sum()) if prefix_free and len(contexts) == 1 else None
    return OptionProbs(tuple(label.strip() for label in labels), tuple(float(p) for p in probs), gold, outside)
