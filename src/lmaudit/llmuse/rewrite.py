"""AI-modified text from human text: the two-stage rewrite (outline, then paragraph from the outline).

The model first reduces a paragraph to an outline, then writes a paragraph from that outline alone, so the AI text
covers the same content in the model's own words rather than copying sentences. Every call goes through the
run's `RunSession` (cached, resumable, seeded); the prompts are templates a user can replace with a TOML or JSON
file holding `outline` (with `{paragraph}`), `expand` (with `{outline}`) and optionally `system`.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lmaudit.core.errors import ConfigError
from lmaudit.core.types import GenerateRequest, Generation, Message, SampleRecord, to_dict

# The text first and a short instruction after it: a 135M model given the instruction first tends to repeat it.
OUTLINE_PROMPT = "{paragraph}\n\nSummarize the text above as a list of its key points."
EXPAND_PROMPT = "Key points:\n{outline}\n\nWrite the abstract of a scientific paper that makes these key points."
REWRITE_TASK = "llmuse.rewrite"


@dataclass(frozen=True)
class Prompts:
    outline: str = OUTLINE_PROMPT
    expand: str = EXPAND_PROMPT
    system: str | None = None

    @classmethod
    def from_file(cls, path: str | Path) -> "Prompts":
        """Templates from a TOML or JSON file; keys it leaves out keep the defaults."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"prompt file not found: {path}")
        try:
            raw = tomllib.loads(path.read_text()) if path.suffix == ".toml" else json.loads(path.read_text())
        except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not a valid {'TOML' if path.suffix == '.toml' else 'JSON'} file ({exc})")
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a table with keys outline, expand, system")
        unknown = sorted(set(raw) - {"outline", "expand", "system"})
        if unknown:
            raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)} (valid: outline, expand, system)")
        prompts = cls(**raw)
        prompts.check(str(path))
        return prompts

    def check(self, where: str = "prompts") -> None:
        for name, template, slot in (("outline", self.outline, "{paragraph}"), ("expand", self.expand, "{outline}")):
            if not isinstance(template, str) or slot not in template:
                raise ConfigError(f"{where}: the {name} template must be text containing {slot}")

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RewriteSettings:
    temperature: float = 0.0  # greedy by default: on a CPU the backend batches greedy requests, not sampled ones
    outline_tokens: int = 64
    paragraph_tokens: int = 160
    seed: int = 0

    def check(self) -> None:
        if self.temperature < 0:
            raise ConfigError(f"temperature must be 0 or more, got {self.temperature}")
        if self.outline_tokens < 8 or self.paragraph_tokens < 16:
            raise ConfigError("outline tokens must be >= 8 and paragraph tokens >= 16")


@dataclass(frozen=True)
class Rewrite:
    doc_id: str
    original: str
    outline: str
    text: str
    finish_reason: str


def _messages(system: str | None, user: str) -> tuple[Message, ...]:
    return ((Message("system", system),) if system else ()) + (Message("user", user),)


def request_seed(seed: int, doc_id: str) -> int:
    """A per-paragraph seed that depends only on the run seed and the paragraph's id (stable across resumes)."""
    return int(hashlib.sha256(f"{seed}:{doc_id}".encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


def outline_request(prompts: Prompts, settings: RewriteSettings, doc_id: str, paragraph: str) -> GenerateRequest:
    user = prompts.outline.replace("{paragraph}", " ".join(paragraph.split()))
    return GenerateRequest(messages=_messages(prompts.system, user), max_tokens=settings.outline_tokens,
                           temperature=settings.temperature, seed=request_seed(settings.seed, doc_id))


def expand_request(prompts: Prompts, settings: RewriteSettings, doc_id: str, outline: str) -> GenerateRequest:
    user = prompts.expand.replace("{outline}", outline.strip())
    return GenerateRequest(messages=_messages(prompts.system, user), max_tokens=settings.paragraph_tokens,
                           temperature=settings.temperature, seed=request_seed(settings.seed + 1, doc_id))


def rewrite_records(session: Any, documents: Sequence[tuple[str, str, dict[str, Any]]], prompts: Prompts,
                    settings: RewriteSettings, *, role: str = "target", chunk: int = 16,
                    on_chunk: Callable[[int], None] | None = None) -> list[SampleRecord]:
    """Rewrite (doc_id, paragraph, metadata) documents through `session`, appending one record per document.

    Documents already in the run's samples.jsonl are skipped, and work goes in chunks of `chunk` paragraphs (both
    stages of a chunk, then its records), so a killed run loses at most one chunk and a rerun resumes.
    """
    done = {r.sample_id for r in session.records() if r.task == REWRITE_TASK}
    todo = [d for d in documents if d[0] not in done]
    for start in range(0, len(todo), chunk):
        part = todo[start:start + chunk]
        outlines_asked = [outline_request(prompts, settings, doc_id, text) for doc_id, text, _ in part]
        outlines: list[Generation] = session.call(role, outlines_asked, label="outlines")  # type: ignore[assignment]
        expands_asked = [expand_request(prompts, settings, doc_id, o.text) for (doc_id, _, _), o in zip(part, outlines)]
        expands: list[Generation] = session.call(role, expands_asked, label="paragraphs")  # type: ignore[assignment]
        session.append([
            SampleRecord(task=REWRITE_TASK, sample_id=doc_id, target=text, metadata=dict(metadata),
                         requests=[to_dict(a), to_dict(b)], responses=[to_dict(o), to_dict(e)],
                         scores={"outline_chars": float(len(o.text)), "rewrite_chars": float(len(e.text))})
            for (doc_id, text, metadata), a, b, o, e in zip(part, outlines_asked, expands_asked, outlines, expands)])
        if on_chunk is not None:
            on_chunk(len(part))
    return [r for r in session.records() if r.task == REWRITE_TASK]


def rewrite_from_record(record: SampleRecord) -> Rewrite:
    outline, paragraph = record.responses
    return Rewrite(record.sample_id, record.target, outline["text"], paragraph["text"], paragraph["finish_reason"])
