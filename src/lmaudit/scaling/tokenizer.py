"""A byte-level BPE tokenizer trained on the corpus, wrapped so it saves and loads with transformers."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from lmaudit.core.errors import ConfigError

EOS = "<|endoftext|>"


def train_tokenizer(texts: Iterable[str], vocab_size: int = 4096) -> Any:
    """A byte-level BPE (no unknown tokens) with one special token that separates and starts documents."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 300 or vocab_size > 65535:
        raise ConfigError(f"vocab_size must be in [300, 65535] (byte alphabet + merges, uint16 ids), got {vocab_size}")
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token=EOS, eos_token=EOS, pad_token=EOS)


def load_tokenizer(folder: str | Path) -> Any:
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(str(folder))


def encode_documents(tokenizer: Any, texts: list[str]) -> np.ndarray:
    """One token stream: each document preceded by the separator, as the model sees text at training time."""
    eos = tokenizer.eos_token_id
    encoded = tokenizer.backend_tokenizer.encode_batch(texts, add_special_tokens=False)
    total = sum(len(e.ids) + 1 for e in encoded)
    stream = np.empty(total, dtype=np.uint16)
    pos = 0
    for e in encoded:
        stream[pos] = eos
        stream[pos + 1:pos + 1 + len(e.ids)] = e.ids
        pos += 1 + len(e.ids)
    return stream
