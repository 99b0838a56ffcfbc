"""SQLite response cache keyed by (model fingerprint, request key); safe with several writing processes."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lmaudit.core.hashing import cache_dir


def default_cache_path() -> Path:
    return cache_dir() / "responses.sqlite"


class ResponseCache:
    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # WAL lets readers and one writer proceed together; busy_timeout makes concurrent writers wait, not fail.
        self._db = sqlite3.connect(self.path, timeout=60, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=60000")
        self._db.execute("CREATE TABLE IF NOT EXISTS responses (fingerprint TEXT NOT NULL, key TEXT NOT NULL, "
                         "response TEXT NOT NULL, PRIMARY KEY (fingerprint, key))")

    def get_many(self, fingerprint: str, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        keys = list(keys)
        found: dict[str, dict[str, Any]] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                batch = keys[start:start + 500]
                marks = ",".join("?" * len(batch))
                rows = self._db.execute(
                    f"SELECT key, response FROM responses WHERE fingerprint = ? AND key IN ({marks})",
                    [fingerprint, *batch]).fetchall()
                found.update((key, json.loads(text)) for key, text in rows)
        return found

    def put_many(self, fingerprint: str, items: Iterable[tuple[str, dict[str, Any]]]) -> None:
        rows = [(fingerprint, key, json.dumps(response, sort_keys=True)) for key, response in items]
        if not rows:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT OR IGNORE INTO responses VALUES (?, ?, ?)", rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def count(self, fingerprint: str | None = None) -> int:
        with self._lock:
            if fingerprint is None:
                return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
            return self._db.execute("SELECT COUNT(*) FROM responses WHERE fingerprint = ?", [fingerprint]).fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
