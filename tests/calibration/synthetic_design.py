"""Synthetic multiple-choice designs whose option probabilities are known exactly (shared by the calibration tests).

Groups of 40 items; in a group the model gives the top option probability c (the rest shared equally) and the gold
is the top option on exactly 40*c of the items: perfectly calibrated. Reporting c + delta instead of c makes it
over-confident by exactly delta. Values keep away from bin edges and each value group fills whole equal-mass bins.
"""

import json
import math
import re

from lmaudit.core.types import LoglikelihoodResult

GROUP = 40
LETTER_MASS = 0.8  # the synthetic models put 20% of the next-token mass outside the option letters
TOPS = {4: [0.325 + 0.05 * g for g in range(10)], 2: [0.525 + 0.05 * g for g in range(10)]}


def design(n_options, shift):
    """[(reported probabilities, gold)] for 10 groups of 40 items."""
    rows = []
    for c in TOPS[n_options]:
        top_right = round(GROUP * c)
        for k in range(GROUP):
            index = len(rows)
            top = index % n_options
            others = [o for o in range(n_options) if o != top]
            gold = top if k < top_right else others[k % len(others)]
            q = c + shift
            probs = [q if o == top else (1 - q) / (n_options - 1) for o in range(n_options)]
            rows.append((probs, gold))
    return rows


def write_items(path, rows):
    letters = "wxyzv"
    with open(path, "w") as handle:
        for index, (probs, gold) in enumerate(rows):
            handle.write(json.dumps({"id": f"s{index:03d}", "question": f"Synthetic item {index}: which is right?",
                                     "choices": [letters[o] * 3 for o in range(len(probs))], "answer": gold}) + "\n")
    return path


class SyntheticModel:
    """Answers each option letter with log(0.8 * p) for the designed p of the item named in the prompt."""

    def __init__(self, rows, tag):
        self.rows, self.name = rows, f"synthetic-{tag}"

    def fingerprint(self):
        return self.name

    def loglikelihood(self, requests):
        out = []
        for request in requests:
            probs, _ = self.rows[int(re.search(r"Synthetic item (\d+):", request.context).group(1))]
            p = probs["ABCDE".index(request.continuation.strip())]
            out.append(LoglikelihoodResult(math.log(LETTER_MASS * p), p == max(probs), 1))
        return out

    def generate(self, requests):
        raise AssertionError("not used")


def brier_expected(rows):
    """Brier from the design's counts: per item, sum over options of (p - [option is gold])^2."""
    total = 0.0
    for probs, gold in rows:
        total += sum((p - (o == gold)) ** 2 for o, p in enumerate(probs))
    return total / len(rows)
