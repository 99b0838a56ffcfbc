"""A run directory: manifest.json, samples.jsonl (appended as samples finish) and results.json.

Everything is written so that a kill at any instant leaves valid files: JSON files are replaced atomically,
and a half-written last line of samples.jsonl (the only thing a kill can leave) is cut off on the next open.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from lmaudit.core.errors import DataError
from lmaudit.core.types import SampleRecord

MANIFEST, SAMPLES, RESULTS = "manifest.json", "samples.jsonl", "results.json"


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.samples_path = self.path / SAMPLES

    def read_json(self, name: str) -> dict[str, Any] | None:
        path = self.path / name
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from exc

    def write_json(self, name: str, data: Any) -> None:
        write_json_atomic(self.path / name, data)

    def records(self) -> list[SampleRecord]:
        """Finished records; a torn last line from a killed run is removed from the file."""
        if not self.samples_path.exists():
            return []
        raw = self.samples_path.read_bytes()
        complete = raw[: raw.rfind(b"\n") + 1]
        if len(complete) != len(raw):
            with open(self.samples_path, "r+b") as handle:
                handle.truncate(len(complete))
        records = []
        for number, line in enumerate(complete.decode("utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(SampleRecord.from_dict(json.loads(line)))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DataError(f"{self.samples_path}, line {number}: not a sample record ({exc})") from exc
        return records

    def append(self, records: list[SampleRecord]) -> None:
        if not records:
            return
        with open(self.samples_path, "a", encoding="utf-8") as handle:
            handle.write("".join(record.to_json() + "\n" for record in records))
            handle.flush()
            os.fsync(handle.fileno())
