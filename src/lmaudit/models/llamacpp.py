"""The `llamacpp` backend: generation from a GGUF file through llama.cpp in this process (`llama-cpp-python`).

For CPU speed: llama.cpp runs the quantised weights as they are, with quantised kernels, so its texts are
close to the hf backend's but not the same (on SmolLM2 a long system prompt is enough to change a greedy
answer). Sampling is llama.cpp's own at the request's temperature with nothing else in the way (top-k, top-p,
min-p and repeat penalties off), seeded per request. Chat requests are formatted with the chat template stored
in the GGUF file. Log-likelihoods stay with the hf backend: llama.cpp's prompt log-probabilities disagree with
the fp32 model (see docs/architecture.md), so `loglikelihood` refuses and names the backend that answers it;
generated tokens carry no log-probabilities (llama.cpp keeps them only when every position's logits are kept,
which costs the speed this backend is for).

Install with the `llamacpp` extra (`pip install 'lmaudit[llamacpp]'`, which compiles llama.cpp).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lmaudit.core.errors import ConfigError, ModelError
from lmaudit.core.hashing import file_digest
from lmaudit.core.types import Generation, GenerateRequest, LoglikelihoodRequest, LoglikelihoodResult, request_key

NO_FILTERS = {"top_k": 0, "top_p": 1.0, "min_p": 0.0, "typical_p": 1.0, "repeat_penalty": 1.0}


class LlamaCppModel:
    def __init__(self, path: Path, *, n_ctx: int = 2048, threads: int | None = None, name: str | None = None):
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ModelError("the llamacpp backend needs llama-cpp-python: pip install 'lmaudit[llamacpp]'") from exc
        self.name = name or f"llamacpp:{path.name}"
        self._digest = file_digest(path)[:16]
        threads = threads or min(2, os.cpu_count() or 1)
        # Prompt evaluation on the same thread count: llama-cpp-python's default (every CPU) makes ggml's spinning
        # threads wait for each other on a machine with other work (a 10-token prompt: 0.66 s against 0.12 s).
        self._llm = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                          verbose=False)
        self._formatter: Any = None

    def fingerprint(self) -> str:
        return f"llamacpp:{self._digest}"

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        raise ModelError(f"{self.name} does not score log-likelihoods: llama.cpp's prompt log-probabilities are "
                         f"not the model's; use the hf backend (smollm2, gguf:<file>) for log-likelihood tasks")

    def generate(self, requests: Sequence[GenerateRequest]) -> list[Generation]:
        return [self._one(request) for request in requests]

    def _one(self, request: GenerateRequest) -> Generation:
        seed = request.seed if request.seed is not None else int(request_key(request)[:8], 16)
        stop = list(request.stop)
        prompt = request.prompt or ""
        if request.messages is not None:
            formatted = self._chat([{"role": m.role, "content": m.content} for m in request.messages])
            prompt = formatted.prompt
            ends = [formatted.stop] if isinstance(formatted.stop, str) else list(formatted.stop or [])
            stop += [end for end in ends if end]
        self._llm.reset()  # the whole prompt is evaluated afresh: a reused KV prefix shifts logits, and seeded draws
        raw = self._llm.create_completion(prompt, max_tokens=request.max_tokens, temperature=request.temperature,
                                          stop=stop, seed=seed, **NO_FILTERS)
        choice = raw["choices"][0]
        return Generation(choice["text"], "length" if choice.get("finish_reason") == "length" else "stop")

    def _chat(self, messages: list[dict[str, str]]) -> Any:
        if self._formatter is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            template = self._llm.metadata.get("tokenizer.chat_template")
            if not template:
                raise ModelError(f"{self.name} has no chat template; send a plain prompt instead of messages")
            llm = self._llm
            eos, bos = (llm.detokenize([t], special=True).decode() for t in (llm.token_eos(), llm.token_bos()))
            self._formatter = Jinja2ChatFormatter(template, eos_token=eos, bos_token=bos)
        return self._formatter(messages=messages)


def load_llamacpp(path: str, *, n_ctx: int = 2048, threads: int | None = None) -> LlamaCppModel:
    """llamacpp:<file.gguf>."""
    gguf = Path(path).expanduser()
    if not gguf.is_file():
        raise ModelError(f"GGUF file not found: {gguf}")
    if n_ctx < 16:
        raise ConfigError(f"n_ctx must be at least 16 tokens, got {n_ctx}")
    return LlamaCppModel(gguf.resolve(), n_ctx=n_ctx, threads=threads)
