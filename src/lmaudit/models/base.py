"""The model contracts and the registry of spec prefixes ("hf:", "gguf:", "openai:", ...).

`Model` is the contract every backend meets: three methods, as lm-eval's model class. The optional contracts
below are declared capabilities, checked with `isinstance` against these protocols, never discovered by probing
attributes:

- `StreamingModel`: answers requests one at a time and reports each the moment it arrives (HTTP backends), so
  the runner can persist it before the rest of the chunk is done;
- `MeteredModel`: reports token usage and cost;
- `WhiteBoxModel`: exposes its tokenizer, its torch module and a forward pass, for the analyses that need the
  weights or per-token log-probabilities (Min-K%, influence functions, serving, training).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from lmaudit.core.errors import ConfigError, ModelError, UnknownNameError
from lmaudit.core.types import (
    Generation,
    GenerateRequest,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    Message,
    Response,
    TokenLogprobs,
    TokenLogprobsRequest,
)

if TYPE_CHECKING:  # torch is imported only by backends that need it
    import torch

ResponseHook = Callable[[int, Response], None]


@runtime_checkable
class Model(Protocol):
    """Three methods, like lm-eval's model class, and a display name."""

    name: str

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]: ...

    def generate(self, requests: Sequence[GenerateRequest]) -> list[Generation]: ...

    def fingerprint(self) -> str:
        """Stable id of the weights and settings that determine responses: the response-cache key."""
        ...


@runtime_checkable
class StreamingModel(Model, Protocol):
    def set_response_hook(self, hook: ResponseHook | None) -> None:
        """`hook(index, response)` runs for each request of the current call as soon as it is answered."""
        ...


@runtime_checkable
class MeteredModel(Model, Protocol):
    def usage(self) -> dict[str, Any]:
        """Tokens and (where prices are known) cost so far: {"prompt_tokens", "completion_tokens", "cost_usd", ...}."""
        ...


@runtime_checkable
class WhiteBoxModel(Model, Protocol):
    """A local causal LM whose weights and tokenizer are open to analysis.

    `module` is the torch module (a transformers causal LM): its named parameters and submodules are what
    influence functions and fine-tuning track. `forward` returns logits as the model defines them (logit scale
    and soft-capping applied). `token_logprobs` answers the runner's per-token request kind.
    """

    max_length: int

    @property
    def module(self) -> "torch.nn.Module": ...

    @property
    def tokenizer(self) -> Any: ...

    @property
    def device(self) -> "torch.device": ...

    def encode(self, text: str, add_special_tokens: bool | None = None) -> list[int]: ...

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def chat_prompt(self, messages: Sequence[Message]) -> str:
        """The text the model reads for a chat (its chat template), ending where the assistant's answer begins."""
        ...

    def forward(self, input_ids: "torch.Tensor", attention_mask: "torch.Tensor | None" = None,
                positions: "torch.Tensor | None" = None) -> "torch.Tensor":
        """Logits of shape (batch, positions, vocabulary); with `positions` (a boolean mask of the ids' shape), the
        selected positions' only, (selected, vocabulary), so that the vocabulary projection runs only where
        logits are read. The same as `logits(hidden_states(...))`."""
        ...

    def hidden_states(self, input_ids: "torch.Tensor", attention_mask: "torch.Tensor | None" = None,
                      positions: "torch.Tensor | None" = None) -> "torch.Tensor":
        """The decoder's final hidden states (batch, positions, width), or the selected positions' (selected,
        width): what the output head reads. Keeps autograd."""
        ...

    def logits(self, hidden: "torch.Tensor") -> "torch.Tensor":
        """The output head on hidden states of any leading shape (logit scale and soft-capping applied), so that a
        caller can run the vocabulary projection over a few positions at a time."""
        ...

    def token_logprobs(self, requests: Sequence[TokenLogprobsRequest]) -> list[TokenLogprobs]: ...


def require_white_box(model: Model, purpose: str) -> WhiteBoxModel:
    """The model as a WhiteBoxModel, or one clear error naming what needs it."""
    if not isinstance(model, WhiteBoxModel):
        raise ModelError(f"{purpose} needs a white-box model (the hf backend: smollm2, hf:..., gguf:...); "
                         f"{model.name} is a {type(model).__name__}")
    return model


# -- spec registry ---------------------------------------------------------------------------------------

# prefix -> (module path, factory name, one-line help). Modules are imported only when used,
# so `lmaudit --help` never imports torch.
_BACKENDS: dict[str, tuple[str, str, str]] = {
    "smollm2": ("lmaudit.models.hf", "load_smollm2", "the bundled SmolLM2-135M-Instruct (GGUF Q4_1), the default"),
    "hf": ("lmaudit.models.hf", "load_hf", "hf:<folder or hub id> any transformers causal LM"),
    "gguf": ("lmaudit.models.hf", "load_gguf", "gguf:<path.gguf> a GGUF file through transformers"),
    "llamacpp": ("lmaudit.models.llamacpp", "load_llamacpp",
                 "llamacpp:<path.gguf> generation through llama.cpp in-process (CPU speed; the llamacpp extra)"),
}


def register_backend(prefix: str, module: str, factory: str, help_text: str) -> None:
    """Let a backend package add a spec prefix without the core importing it."""
    _BACKENDS[prefix] = (module, factory, help_text)


def backends() -> dict[str, str]:
    return {prefix: entry[2] for prefix, entry in _BACKENDS.items()}


def _split_spec(spec: str) -> tuple[str, str]:
    if not spec:
        raise ConfigError("empty model spec")
    prefix, _, rest = spec.partition(":")
    if prefix not in _BACKENDS:
        raise UnknownNameError("model spec prefix", prefix, list(_BACKENDS))
    if prefix == "smollm2" and rest:
        raise ConfigError("'smollm2' takes no argument; use hf:<path> or gguf:<path> for other models")
    if prefix != "smollm2" and not rest:
        raise ConfigError(f"model spec '{spec}' needs an argument after '{prefix}:'")
    return prefix, rest


def backend_factory(spec: str) -> Callable[..., Model]:
    """The factory a spec dispatches to (imports the backend's module)."""
    prefix, _ = _split_spec(spec)
    module_name, factory_name, _ = _BACKENDS[prefix]
    return getattr(importlib.import_module(module_name), factory_name)


def model_options(spec: str) -> list[str] | None:
    """The option names the spec's backend takes; None when it takes any (a **kwargs factory)."""
    parameters = inspect.signature(backend_factory(spec)).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return None
    return [name for name, p in parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]


def check_model_options(spec: str, options: dict[str, Any], flag: str = "--model-arg") -> None:
    """Refuse an option the backend does not take, naming the closest valid one."""
    valid = model_options(spec)
    if valid is None:
        return
    for key in options:
        if key not in valid:
            raise UnknownNameError(f"{flag} for '{spec.partition(':')[0]}'", key, valid)


def load_model(spec: str, **options: Any) -> Model:
    """Build a model from a spec string: `smollm2`, `hf:<path>`, `gguf:<path>`, `openai:<model>@<url>`."""
    _, rest = _split_spec(spec)
    check_model_options(spec, options, flag="option")
    factory = backend_factory(spec)
    return factory(rest, **options) if rest else factory(**options)
