"""Tokenizer specs: `tiktoken:<name>`, `hf:<file or folder>`, `model:<model spec>`, `openai:<model>@<url>`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lmaudit.core.errors import ConfigError, UnknownNameError
from lmaudit.tokens.endpoint import EndpointTokenizer
from lmaudit.tokens.tokenizers import (TIKTOKEN_NAMES, HFTokenizer, SentencePieceTokenizer, TiktokenTokenizer,
                                       Tokenizer, from_transformers, short_name)


SPEC_FORMS = {
    "tiktoken:<name>": f"an OpenAI encoding ({', '.join(TIKTOKEN_NAMES)}); the bare name works too",
    "hf:<file or folder>": "a tokenizer.json, a folder (tokenizer.json, vocab.json + merges.txt, vocab.txt, or a "
                           "SentencePiece .model), a SentencePiece .model file, or a hub id in the local cache",
    "model:<model spec>": "the tokenizer inside a model spec (model:smollm2, model:hf:<folder>, model:gguf:<file>); "
                          "smollm2 and gguf:<file> work without the prefix",
    "openai:<model>@<url>": "what an OpenAI-compatible endpoint bills: usage.prompt_tokens of each text",
}


def load_tokenizer(spec: str) -> Tokenizer:
    """A tokenizer from a spec (see SPEC_FORMS); one clear error naming the closest valid form otherwise."""
    prefix, _, rest = spec.partition(":")
    if spec in TIKTOKEN_NAMES or prefix == "tiktoken":
        name = rest if prefix == "tiktoken" else spec
        if name not in TIKTOKEN_NAMES:
            raise UnknownNameError("tiktoken encoding", name, list(TIKTOKEN_NAMES))
        return TiktokenTokenizer.named(name)
    if prefix == "hf" and rest:
        return _hf_tokenizer(rest)
    if prefix == "openai" and rest:
        return EndpointTokenizer.from_spec(rest)
    if spec == "smollm2" or prefix in {"model", "gguf"}:
        return model_tokenizer(rest if prefix == "model" else spec)
    valid = list(TIKTOKEN_NAMES) + [f"tiktoken:{n}" for n in TIKTOKEN_NAMES] + ["hf:", "model:", "openai:", "smollm2"]
    raise UnknownNameError("tokenizer (forms: tiktoken:<name>, hf:<file|folder>, model:<spec>, "
                           "openai:<model>@<url>)", spec, valid)


def _hf_tokenizer(target: str) -> Tokenizer:
    from tokenizers import Tokenizer as RustTokenizer

    path = Path(target).expanduser()
    name = f"hf:{short_name(path) if path.exists() else target}"
    if path.is_file():
        if path.suffix == ".json":
            return HFTokenizer(_read_rust(RustTokenizer, path), name)
        return SentencePieceTokenizer(path)
    if path.is_dir():
        if (path / "tokenizer.json").is_file():
            return HFTokenizer(_read_rust(RustTokenizer, path / "tokenizer.json"), name)
        if (path / "vocab.json").is_file() and (path / "merges.txt").is_file():
            from tokenizers import decoders, models, pre_tokenizers

            bpe = RustTokenizer(models.BPE.from_file(str(path / "vocab.json"), str(path / "merges.txt")))
            bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
            bpe.decoder = decoders.ByteLevel()
            return HFTokenizer(bpe, name)
        if (path / "vocab.txt").is_file():
            from tokenizers.implementations import BertWordPieceTokenizer

            return HFTokenizer(BertWordPieceTokenizer(str(path / "vocab.txt"))._tokenizer, name)
        models_found = sorted(path.glob("*.model"))
        if models_found:
            return SentencePieceTokenizer(models_found[0])
        raise ConfigError(f"tokenizer folder {path} has no tokenizer.json, vocab.json + merges.txt, vocab.txt or "
                          "SentencePiece .model file")
    try:  # a hub id already in the local cache (nothing is downloaded: HF_HUB_OFFLINE is set for the call)
        from transformers import AutoTokenizer

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        loaded = AutoTokenizer.from_pretrained(target)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"hf:{target}: not a file or folder here, and not a hub id in the local cache "
                          f"({type(exc).__name__})") from None
    return from_transformers(loaded, name, f"{name}:{getattr(loaded, 'name_or_path', target)}")


def _read_rust(rust: Any, path: Path) -> Any:
    try:
        return rust.from_file(str(path))
    except Exception as exc:  # the Rust library raises a bare Exception for a malformed file
        raise ConfigError(f"{path}: not a Hugging Face tokenizer.json ({str(exc)[:120]})") from None


def model_tokenizer(model_spec: str) -> Tokenizer:
    """The tokenizer of a local model, taken from the WhiteBoxModel contract (never from backend internals)."""
    from lmaudit.models import load_model
    from lmaudit.models.base import require_white_box

    model = require_white_box(load_model(model_spec), f"the tokenizer of model {model_spec}")
    return from_transformers(model.tokenizer, f"model:{model_spec}", f"model:{model.fingerprint()}")
