"""What a model has paid for: requests, tokens, retries, faults and (with prices) cost.

Counted on the loop thread as answers arrive and read from the caller's thread by `usage()`, so every update
and the report take one lock.
"""

from __future__ import annotations

import threading
from typing import Any


class Usage:
    def __init__(self, prices: dict[str, float], http_client: str):
        self._prices = prices
        self._http_client = http_client
        self._lock = threading.Lock()
        self.requests = 0  # answered requests (each paid once)
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.retries = 0
        self.faults: dict[str, int] = {}
        self._letter_masses: list[float] = []  # per letter-choice question: probability outside the letters
        self._letters_missing = 0

    def answered(self, raw: dict[str, Any]) -> None:
        """An answered request and the tokens its body reports."""
        usage = raw.get("usage") if isinstance(raw.get("usage"), dict) else {}
        with self._lock:
            self.requests += 1
            self.prompt_tokens += int(usage.get("prompt_tokens") or 0)
            self.completion_tokens += int(usage.get("completion_tokens") or 0)

    def fault(self, what: str) -> None:
        with self._lock:
            self.faults[what] = self.faults.get(what, 0) + 1

    def retry(self) -> None:
        with self._lock:
            self.retries += 1

    def letter_question(self, mass_outside: float, letters_missing: int) -> None:
        with self._lock:
            self._letter_masses.append(mass_outside)
            self._letters_missing += letters_missing

    def report(self, concurrency_cuts: int | None) -> dict[str, Any]:
        """Tokens and requests paid for so far (probes and retries of answered requests included)."""
        with self._lock:
            report: dict[str, Any] = {
                "requests": self.requests, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens, "retries": self.retries,
                "faults": dict(sorted(self.faults.items())), "http_client": self._http_client,
            }
            if concurrency_cuts is not None:
                report["concurrency_cuts"] = concurrency_cuts
            if self._prices:
                report["cost_usd"] = round((self.prompt_tokens * self._prices.get("prompt", 0.0)
                                            + self.completion_tokens * self._prices.get("completion", 0.0)) / 1e6, 6)
            if self._letter_masses:
                report["letter_choice"] = {
                    "questions": len(self._letter_masses),
                    "mean_mass_outside_letters": sum(self._letter_masses) / len(self._letter_masses),
                    "max_mass_outside_letters": max(self._letter_masses),
                    "letters_not_in_top_logprobs": self._letters_missing,
                }
            return report
