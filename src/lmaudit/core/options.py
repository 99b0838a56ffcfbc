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


def parameter_names(factory: Callable[..., Any]) -> list[str] | None:
    """The keyword options `factory` takes by name; None when it takes any (**kwargs, or no signature)."""
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return None
    return [name for name, p in parameters.items()
            if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
