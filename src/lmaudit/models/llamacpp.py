"""The `llamacpp` backend: generation from a GGUF file through llama.cpp in this process (`llama-cpp-python`).

For CPU speed: llama.cpp runs the quantised weights as they are, with quantised kernels, so its texts are
close to the hf backend's but not the same (on SmolLM2 a long system prompt is enough to change a greedy
answer). Requests are decoded together, up to `parallel` sequences per llama.cpp step (llamacpp_batch.py), and
tokens are chosen as the hf backend chooses them: argmax at temperature 0, otherwise one seeded inverse-CDF draw
per step from the softmax at the request's temperature, with nothing else in the way (no top-k, top-p, min-p or
repeat penalty). Chat requests are formatted with the chat template stored in the GGUF file. llama.cpp's extra
CPU buffer types (repacked weights) are off where the CPU has AMX, whose kernels crash there (llamacpp_cpu.py).
Log-likelihoods stay with the hf backend: llama.cpp's prompt log-probabilities disagree with the fp32 model (see
docs/architecture.md), so `loglikelihood` refuses and names the backend that answers it; generated tokens do
carry their log-probabilities under the quantised model.

Install with the `llamacpp` extra (`pip install 'lmaudit[llamacpp]'`, which compiles llama.cpp).
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lmaudit.core.errors import ConfigError, ModelError
from lmaudit.core.hashing import file_digest
from lmaudit.core.types import (
    GenerateRequest,
    Generation,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    request_key,
)
from lmaudit.models.llamacpp_batch import BatchDecoder
from lmaudit.models.llamacpp_cpu import extra_buffers, use_extra_buffers
from lmaudit.models.sampling import Row

# Part of the fingerprint: answers cached from llama.cpp's own sampler (before batching) are not these.
SAMPLER = "batched-inverse-cdf"


class LlamaCppModel:
    def __init__(self, path: Path, *, n_ctx: int = 2048, threads: int | None = None, name: str | None = None,
                 parallel: int = 16, repacked: bool | None = None):
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise ModelError("the llamacpp backend needs llama-cpp-python: pip install 'lmaudit[llamacpp]'") from exc
        self.name = name or f"llamacpp:{path.name}"
        self._digest = file_digest(path)[:16]
        threads = threads or min(2, os.cpu_count() or 1)
        # This object's own context only serves tokenizing (generation has its own, in BatchDecoder): kept small,
        # as the logits buffer it allocates is n_batch x vocabulary floats.
        self.repacked = use_extra_buffers(repacked)
        with extra_buffers(self.repacked):
            self._llm = Llama(model_path=str(path), n_ctx=64, n_batch=16, n_threads=threads,
                              n_threads_batch=threads, verbose=False)
        self._parallel = parallel
        self._decoder = BatchDecoder(self._llm, threads=threads, max_context=n_ctx)
        self._formatter: Any = None
        # Freed when this model goes, or at exit while llama.cpp's library is still loaded (llama-cpp-python's
        # own clean-up at interpreter shutdown finds it unloaded and prints a traceback).
        weakref.finalize(self, _free, self._decoder, self._llm)

    def fingerprint(self) -> str:
        # Weights llama.cpp did not repack run other kernels, whose float rounding differs.
        return f"llamacpp:{self._digest}:{SAMPLER}" + ("" if self.repacked else ":plain")

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        raise ModelError(f"{self.name} does not score log-likelihoods: llama.cpp's prompt log-probabilities are "
                         f"not the model's; use the hf backend (smollm2, gguf:<file>) for log-likelihood tasks")

    def generate(self, requests: Sequence[GenerateRequest]) -> list[Generation]:
        rows = [self._row(request) for request in requests]
        out: list[Generation] = []
        for start in range(0, len(rows), self._parallel):
            out += self._decoder.generate(rows[start:start + self._parallel])
        return out

    def _row(self, request: GenerateRequest) -> Row:
        stop = list(request.stop)
        prompt = request.prompt or ""
        if request.messages is not None:
            formatted = self._chat([{"role": m.role, "content": m.content} for m in request.messages])
            prompt = formatted.prompt
            ends = [formatted.stop] if isinstance(formatted.stop, str) else list(formatted.stop or [])
            stop += [end for end in ends if end]
        tokens = self._llm.tokenize(prompt.encode("utf-8"), special=True) or [self._llm.token_bos()]
        seed = None
        if request.temperature > 0:
            seed = request.seed if request.seed is not None else int(request_key(request)[:8], 16)
        return Row(tokens, request.max_tokens, request.temperature, tuple(stop), seed)

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


def _free(decoder: BatchDecoder, llm: Any) -> None:
    decoder.close()
    llm.close()


def load_llamacpp(path: str, *, n_ctx: int = 2048, threads: int | None = None, parallel: int = 16,
                  extra_buffers: bool | None = None) -> LlamaCppModel:
    """llamacpp:<file.gguf>; `parallel`: sequences decoded together (each has n_ctx tokens of KV cache at most);
    `extra_buffers`: let llama.cpp repack weights into its extra CPU buffer types (default: not on AMX CPUs)."""
    gguf = Path(path).expanduser()
    if not gguf.is_file():
        raise ModelError(f"GGUF file not found: {gguf}")
    if n_ctx < 16:
        raise ConfigError(f"n_ctx must be at least 16 tokens, got {n_ctx}")
    if parallel < 1:
        raise ConfigError(f"parallel must be at least 1, got {parallel}")
    return LlamaCppModel(gguf.resolve(), n_ctx=n_ctx, threads=threads, parallel=parallel, repacked=extra_buffers)
