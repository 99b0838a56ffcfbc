"""The Model contract and the registry of spec prefixes ("hf:", "gguf:", "openai:", ...)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from lmaudit.core.errors import ConfigError, UnknownNameError
from lmaudit.core.types import Generation, GenerateRequest, LoglikelihoodRequest, LoglikelihoodResult


@runtime_checkable
class Model(Protocol):
    """Three methods, like lm-eval's model class; backends may add white-box extras."""

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]: ...

    def generate(self, requests: Sequence[GenerateRequest]) -> list[Generation]: ...

    def fingerprint(self) -> str:
        """Stable id of the weights and settings that determine responses: the response-cache key."""
        ...


# prefix -> (module path, factory name, one-line help). Modules are imported only when used,
# so `lmaudit --help` never imports torch.
_BACKENDS: dict[str, tuple[str, str, str]] = {
    "smollm2": ("lmaudit.models.hf", "load_smollm2", "the bundled SmolLM2-135M-Instruct (GGUF Q4_1), the default"),
    "hf": ("lmaudit.models.hf", "load_hf", "hf:<folder or hub id> any transformers causal LM"),
    "gguf": ("lmaudit.models.hf", "load_gguf", "gguf:<path.gguf> a GGUF file through transformers"),
}


def register_backend(prefix: str, module: str, factory: str, help_text: str) -> None:
    """Let a capability package add a backend without the core importing it."""
    _BACKENDS[prefix] = (module, factory, help_text)


def backends() -> dict[str, str]:
    return {prefix: entry[2] for prefix, entry in _BACKENDS.items()}


def load_model(spec: str, **options: Any) -> Model:
    """Build a model from a spec string: `smollm2`, `hf:<path>`, `gguf:<path>`, `openai:<model>@<url>`."""
    if not spec:
        raise ConfigError("empty model spec")
    prefix, _, rest = spec.partition(":")
    if prefix not in _BACKENDS:
        raise UnknownNameError("model spec prefix", prefix, list(_BACKENDS))
    module_name, factory_name, _ = _BACKENDS[prefix]
    if prefix == "smollm2" and rest:
        raise ConfigError("'smollm2' takes no argument; use hf:<path> or gguf:<path> for other models")
    if prefix != "smollm2" and not rest:
        raise ConfigError(f"model spec '{spec}' needs an argument after '{prefix}:'")
    factory: Callable[..., Model] = getattr(importlib.import_module(module_name), factory_name)
    try:
        return factory(rest, **options) if rest else factory(**options)
    except TypeError as exc:
        if "unexpected keyword argument" in str(exc):
            raise ConfigError(f"model spec '{prefix}' does not take that option: {exc}") from exc
        raise
