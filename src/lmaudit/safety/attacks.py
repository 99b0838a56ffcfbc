"""Tense reformulation attacks: an attacker model rewrites a request as a question about the past or future.

"present" sends the request as it is. "past" and "future" sample a fresh rewrite per attempt (temperature
1.0, a seed per behaviour and attempt, so every attempt is reproducible and cacheable).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmaudit.core.errors import ConfigError, UnknownNameError
from lmaudit.core.hashing import text_digest
from lmaudit.core.types import GenerateRequest, Message
from lmaudit.safety.templates import PromptTemplate, bundled

ATTACKS = ("present", "past", "future")
ATTACKER_TEMPERATURE = 1.0
ATTACKER_STOP = ("\n",)
_LABEL = re.compile(r"^(?:the\s+)?(?:past|future|present|rewritten|reformulated|new|question|request|answer)"
                    r"(?:\s+(?:tense|question|request|version))?\s*:\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Attack:
    name: str
    template: PromptTemplate | None  # None: the request is sent unchanged
    max_tokens: int = 100

    def attacker_request(self, goal: str, seed: int) -> GenerateRequest | None:
        if self.template is None:
            return None
        prompt = self.template.fill(request=goal)
        # Only the first line is used (clean_reformulation), so generation stops at the first newline.
        return GenerateRequest(messages=(Message("user", prompt),), max_tokens=self.max_tokens,
                               temperature=ATTACKER_TEMPERATURE, seed=seed, stop=ATTACKER_STOP)

    def config(self) -> dict[str, Any]:
        if self.template is None:
            return {"name": self.name}
        return {"name": self.name, "template": self.template.source, "template_sha": self.template.digest(),
                "max_tokens": self.max_tokens, "temperature": ATTACKER_TEMPERATURE, "stop": list(ATTACKER_STOP)}


def make_attack(name: str, *, template: str | Path | None = None, max_tokens: int = 100) -> Attack:
    if name not in ATTACKS:
        raise UnknownNameError("attack", name, list(ATTACKS))
    if name == "present":
        if template is not None:
            raise ConfigError("the 'present' attack sends requests unchanged and takes no template")
        return Attack(name, None)
    if max_tokens <= 0:
        raise ConfigError(f"attacker max tokens must be positive, got {max_tokens}")
    return Attack(name, PromptTemplate.load(template or bundled(f"attack_{name}.txt"), ("request",)), max_tokens)


def attempt_seed(seed: int, attack: str, sample_id: str, attempt: int) -> int:
    """A seed that differs per run seed, attack, behaviour and attempt, and never changes between runs."""
    return int(text_digest(f"{seed}/{attack}/{sample_id}/{attempt}")[:8], 16)


def clean_reformulation(text: str) -> str:
    """The rewritten request from the attacker's output: its first non-empty line, without a leading label
    ("Question:", "Past tense:") or surrounding quotes. Empty if the attacker wrote nothing usable."""
    for line in text.splitlines():
        line = _LABEL.sub("", line.strip()).strip().strip("\"'“”‘’`").strip()
        if line:
            return line
    return ""
