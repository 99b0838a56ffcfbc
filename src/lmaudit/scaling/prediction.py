"""A registered prediction: the target's predicted loss, hashed and timestamped before the target is trained.

The GPT-4 report's point is that the prediction exists before the result; the file's sha256 over its canonical
JSON makes an edit after the fact detectable, and a registered prediction is never overwritten.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lmaudit.core.errors import ConfigError, DataError
from lmaudit.core.hashing import text_digest
from lmaudit.scaling.fit import Estimate


@dataclass(frozen=True)
class RegisteredPrediction:
    """The target's predicted held-out loss, written (content hash + timestamp) before the target is trained."""

    target: str
    n_params: int
    tokens: int
    compute: float
    loss: Estimate
    created_at: str
    sha256: str
    path: Path

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "n_params": self.n_params, "tokens": self.tokens, "compute": self.compute,
                "loss": self.loss.to_dict(), "created_at": self.created_at, "sha256": self.sha256,
                "path": str(self.path)}


def _canonical(content: dict[str, Any]) -> str:
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def register_prediction(path: Path, content: dict[str, Any]) -> RegisteredPrediction:
    """Write the prediction with a UTC timestamp and the sha256 of its canonical JSON; never overwrite one."""
    if path.exists():
        raise ConfigError(f"{path} already holds a registered prediction; a registered prediction is never "
                          f"overwritten (delete it to start over)")
    body = dict(content, created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    digest = text_digest(_canonical(body))
    path.write_text(json.dumps({"prediction": body, "sha256": digest}, indent=1, sort_keys=True) + "\n")
    return read_prediction(path)


def read_prediction(path: str | Path) -> RegisteredPrediction:
    """Read a registered prediction and check that its content still matches its hash."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
        body, digest = raw["prediction"], raw["sha256"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a registered prediction ({exc})") from exc
    if text_digest(_canonical(body)) != digest:
        raise DataError(f"{path}: content does not match its sha256; the prediction was edited after registration")
    target = body["target"]
    return RegisteredPrediction(target["name"], target["n_params"], target["tokens"], target["compute"],
                                Estimate(**body["loss"]), body["created_at"], digest, path)
