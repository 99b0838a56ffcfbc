"""Content digests of files, memoised by (path, size, mtime) so large weights are hashed once."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def cache_dir() -> Path:
    """Where lmaudit keeps caches: $LMAUDIT_CACHE_DIR, else ~/.cache/lmaudit."""
    root = Path(os.environ.get("LMAUDIT_CACHE_DIR") or Path.home() / ".cache" / "lmaudit")
    root.mkdir(parents=True, exist_ok=True)
    return root


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes."""
    path = Path(path).resolve()
    stat = path.stat()
    memo_path = cache_dir() / "digests.json"
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    try:
        memo = json.loads(memo_path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        memo = {}
    if key in memo:
        return memo[key]
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    memo[key] = digest.hexdigest()
    tmp = memo_path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(memo))
    os.replace(tmp, memo_path)
    return memo[key]


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
