"""A run directory: manifest.json, samples.jsonl (appended as samples finish) and results.json.

Invariant: a kill at any instant leaves valid files. JSON files are replaced atomically and durably (file, then
directory, fsynced); records are appended and fsynced; a half-written last line of samples.jsonl (the only thing
a kill can leave) is cut off on the next open.

One writer at a time: `lock()` takes an exclusive lock on `.lock` inside the directory for as long as the
writer lives (the kernel drops it when the process dies, so a killed run never leaves a stale lock); a second
writer is refused with one line naming the holder's pid.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

from lmaudit.core.errors import ConfigError, DataError
from lmaudit.core.output import append_jsonl, write_json_atomic
from lmaudit.core.types import SampleRecord

try:  # where installed (the api extra), orjson reads records about twice as fast; json stays the reference
    import orjson
except ImportError:
    orjson = None

MANIFEST, SAMPLES, RESULTS, LOCK = "manifest.json", "samples.jsonl", "results.json", ".lock"


def prepare_dir(path: str | Path) -> Path:
    """Create `path` if needed and check that it is a writable directory; one clear error otherwise."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"output directory {path} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create output directory {path}: {exc.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"output directory {path} is not writable")
    return path


class RunDir:
    def __init__(self, path: str | Path):
        self.path = prepare_dir(path)
        self.samples_path = self.path / SAMPLES
        self._lock_handle: Any = None

    def lock(self) -> None:
        """Become the directory's only writer, or raise ConfigError naming the process that is."""
        if self._lock_handle is not None:
            return
        handle = open(self.path / LOCK, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise ConfigError(f"{self.path} is being written by another lmaudit process (pid {holder}); "
                              f"wait for it to finish or use another --output-dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_handle = handle

    def unlock(self) -> None:
        if self._lock_handle is not None:
            fcntl.flock(self._lock_handle, fcntl.LOCK_UN)
            self._lock_handle.close()
            self._lock_handle = None

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
        if len(complete) != len(raw) and self._lock_handle is not None:  # only the writer repairs the file
            with open(self.samples_path, "r+b") as handle:
                handle.truncate(len(complete))
        records = []
        # split on "\n" only: records keep non-ASCII as is, and str.splitlines() would also cut at U+0085 and
        # U+2028, which real texts hold (an MMLU management question has U+0085)
        for number, line in enumerate(complete.split(b"\n"), start=1):
            try:
                raw = _parse(line)
                if raw is not _BLANK:
                    records.append(SampleRecord.from_dict(raw))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                complete.decode("utf-8")  # a file that is not UTF-8 fails as such, before any record, as it did
                raise DataError(f"{self.samples_path}, line {number}: not a sample record ({exc})") from exc
        return records

    def append(self, records: list[SampleRecord]) -> None:
        append_jsonl(self.samples_path, [record.to_json() for record in records])


_BLANK = object()
# orjson reads an integer beyond 64 bits as a float where json keeps it exact: lines with a run of 19 or more
# digits (in a number or, harmlessly, inside a string such as a hex key) go to json
_DIGITS, _LONG_NUMBER = bytes.maketrans(b"123456789", b"0" * 9), b"0" * 19


def _parse(line: bytes) -> Any:
    """One line as json.loads reads it (_BLANK for a blank line); orjson first where it gives the same."""
    if orjson is not None and _LONG_NUMBER not in line.translate(_DIGITS):
        try:
            return orjson.loads(line)
        except orjson.JSONDecodeError:  # blank, NaN, lone surrogates, invalid UTF-8: json decides as before
            pass
    text = line.decode("utf-8")
    return json.loads(text) if text.strip() else _BLANK
