"""One exception hierarchy: the CLI turns any LmauditError into one clear line and exit code 2."""

from __future__ import annotations

import difflib


class LmauditError(Exception):
    """Base class for errors a user can act on."""


class ConfigError(LmauditError):
    """A bad option, spec or name."""


class DataError(LmauditError):
    """A dataset file is missing or malformed."""


class ModelError(LmauditError):
    """A model could not be loaded or cannot serve a request kind."""


class UnknownNameError(ConfigError):
    """A name that is not in a registry; the message lists the valid ones and the closest match."""

    def __init__(self, what: str, name: str, valid: list[str]):
        close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        super().__init__(f"unknown {what} '{name}'.{hint} Valid: {', '.join(sorted(valid))}")
        self.name = name
        self.valid = valid


class RowError(DataError):
    """A malformed row: names the file, the line and the field."""

    def __init__(self, path: str, line: int, field: str | None, problem: str):
        where = f"{path}, line {line}" + (f", field '{field}'" if field else "")
        super().__init__(f"{where}: {problem}")
        self.path, self.line, self.field = path, line, field
