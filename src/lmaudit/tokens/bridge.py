"""Run a Hugging Face byte-level BPE tokenizer on tiktoken's engine, where that provably gives the same tokens.

tiktoken merges the adjacent pair whose joined bytes have the lowest rank; Hugging Face's BPE merges the adjacent
pair that comes first in its merge list. With ranks = token ids the two agree when (1) the merge list creates
tokens in id order, and (2) every way of writing a token as two lower-ranked tokens is itself a merge (so
tiktoken never joins a pair that the merge list lacks). Vocabularies converted from tiktoken (Llama 3, Qwen2)
meet both by construction; GPT-2's learned merge list does not meet (2), so it stays on Hugging Face's engine.
The pre-tokenizer must be a byte-level split by one regex, with no normalizer, and merges of whole words must be
"ignored" as tiktoken ignores them (a word that is a token is that token).
"""

from __future__ import annotations

import json
from typing import Any

# The GPT-2 split that ByteLevel(use_regex=True) applies.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def byte_alphabet() -> dict[str, int]:
    """The byte-level alphabet: each byte is written as one printable character (GPT-2's mapping)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    characters = list(printable)
    extra = 0
    for value in range(256):
        if value not in printable:
            printable.append(value)
            characters.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, characters)}


def split_pattern(config: dict[str, Any]) -> str | None:
    """The one regex a byte-level pre-tokenizer splits by, or None if it is anything else."""
    pre = config.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    if len(steps) == 1 and steps[0].get("type") == "ByteLevel" and steps[0].get("use_regex", True) \
            and not steps[0].get("add_prefix_space"):
        return GPT2_PATTERN
    if len(steps) == 2 and steps[0].get("type") == "Split" and steps[1].get("type") == "ByteLevel" \
            and not steps[1].get("use_regex", True) and not steps[1].get("add_prefix_space") \
            and steps[0].get("behavior") == "Isolated" and not steps[0].get("invert") \
            and "Regex" in steps[0].get("pattern", {}):
        return steps[0]["pattern"]["Regex"]
    return None


def is_byte_level(config: dict[str, Any]) -> bool:
    model = config.get("model") or {}
    return model.get("type") == "BPE" and not config.get("normalizer") and split_pattern(config) is not None


def as_tiktoken(config: dict[str, Any], name: str) -> Any | None:
    """A tiktoken Encoding with exactly this tokenizer's tokens, or None when that cannot be guaranteed."""
    model = config.get("model") or {}
    if not is_byte_level(config) or not model.get("ignore_merges") or model.get("byte_fallback") \
            or model.get("dropout") or model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
        return None
    vocabulary: dict[str, int] = model["vocab"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model.get("merges", [])]
    previous = -1
    for left, right in merges:  # (1) merges create tokens in id order
        token = vocabulary.get(left + right)
        if token is None or token < previous:
            return None
        previous = token
    merge_set = set(merges)
    for token, rank in vocabulary.items():  # (2) every split into lower-ranked tokens is a merge
        for cut in range(1, len(token)):
            left, right = token[:cut], token[cut:]
            if vocabulary.get(left, rank) < rank and vocabulary.get(right, rank) < rank \
                    and (left, right) not in merge_set:
                return None
    alphabet = byte_alphabet()
    try:
        ranks = {bytes(alphabet[c] for c in token): rank for token, rank in vocabulary.items()}
    except KeyError:  # a token outside the byte alphabet
        return None
    if len(ranks) != len(vocabulary) or any(bytes([b]) not in ranks for b in range(256)):
        return None
    import tiktoken

    try:
        return tiktoken.Encoding(name, pat_str=split_pattern(config), mergeable_ranks=ranks, special_tokens={})
    except ValueError:  # a pattern tiktoken's regex engine does not accept
        return None


def config_of(tokenizer: Any) -> dict[str, Any]:
    return json.loads(tokenizer.to_str())
