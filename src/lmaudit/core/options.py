"""Pass a shared option set to factories that each take only some of the options."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any


def accepted(factory: Callable[..., Any], options: dict[str, Any]) -> dict[str, Any]:
    """The options `factory` takes by name (all of them if it takes **kwargs)."""
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return dict(options)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return dict(options)
    return {k: v for k, v in options.items() if k in parameters}
