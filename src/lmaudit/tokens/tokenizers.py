"""Tokenizers behind one small contract, all offline: tiktoken encodings, Hugging Face tokenizers (a tokenizer.json,
a folder, a SentencePiece model), the tokenizer inside a model spec, and an endpoint's billed `usage`.

Every tokenizer counts without special tokens (no BOS, no EOS), as Petrov et al. count. `measure(texts)` encodes
each text on its own. A tokenizer that is `separable` never lets a token cross a single space that follows a
non-space character, so a text can be cut there and counted piece by piece (counting.py): `measure_units` then
counts many such pieces in a few long native calls, which is where lmaudit's speed comes from.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from lmaudit.core.errors import ModelError
from lmaudit.tokens import bridge

TIKTOKEN_NAMES = ("r50k_base", "p50k_base", "p50k_edit", "cl100k_base", "o200k_base", "gpt2")
CHUNK_UNITS = 20_000  # units per native call: long enough to amortise the call, short enough to spread over threads
THREADS = max(1, min(4, os.cpu_count() or 1))


MEASURED_FIELDS = ("tokens", "unknown_chars", "fallback_tokens")  # of Measured, in order


@dataclass
class Measured:
    """Per text: tokens, characters covered by unknown tokens, and byte-fallback tokens (one byte each)."""

    tokens: np.ndarray
    unknown_chars: np.ndarray
    fallback_tokens: np.ndarray

    @classmethod
    def zeros(cls, n: int) -> "Measured":
        return cls(np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64))

    @classmethod
    def concat(cls, parts: Sequence[Measured], n: int) -> Measured:
        """The parts one after another (n texts in all; zeros when there are no parts)."""
        if not parts:
            return cls.zeros(n)
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in MEASURED_FIELDS))


@runtime_checkable
class Tokenizer(Protocol):
    name: str
    separable: bool

    def fingerprint(self) -> str: ...

    def measure(self, texts: Sequence[str]) -> Measured: ...

    def measure_units(self, words: Sequence[str]) -> Measured:
        """Like measure, for the units " " + word of words that counting.py cut (a unit starts with a space that
        follows a non-space character in its text, and ends with a non-space one); only called when separable."""
        ...


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _chunks(units: Sequence[str]) -> list[Sequence[str]]:
    return [units[i:i + CHUNK_UNITS] for i in range(0, len(units), CHUNK_UNITS)]


def _attribute(token_starts: np.ndarray, unit_starts: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Sum (or count) tokens per unit, each token going to the unit its first byte or character lies in."""
    owner = np.searchsorted(unit_starts, token_starts, side="right") - 1
    keep = owner >= 0  # a sentinel before the first unit owns index -1
    return np.bincount(owner[keep], weights=None if weights is None else weights[keep],
                       minlength=len(unit_starts)).astype(np.int64)


# -- tiktoken -----------------------------------------------------------------------------------------------

class TiktokenTokenizer:
    """A tiktoken encoding: regex pieces, then byte-level BPE within each piece."""

    separable = True

    def __init__(self, encoding: Any, name: str):
        self.encoding, self.name = encoding, name
        vocabulary = encoding.n_vocab
        self._byte_lengths = np.zeros(vocabulary, np.int64)
        for token in range(vocabulary):
            try:
                self._byte_lengths[token] = len(encoding.decode_single_token_bytes(token))
            except KeyError:  # ids between the ranks and the special tokens
                pass

    @classmethod
    def named(cls, name: str) -> "TiktokenTokenizer":
        import tiktoken

        _offline_tiktoken()
        try:
            encoding = tiktoken.get_encoding(name)
        except Exception as exc:  # tiktoken raises plain exceptions (requests errors) when it cannot download
            raise ModelError(f"tiktoken encoding {name} is not available offline ({type(exc).__name__}): set "
                             "TIKTOKEN_CACHE_DIR to a folder holding tiktoken's cached files") from None
        return cls(encoding, f"tiktoken:{name}")

    def fingerprint(self) -> str:
        return f"{self.name}:{_digest(self.encoding._pat_str.encode())}:{self.encoding.n_vocab}"

    def measure(self, texts: Sequence[str]) -> Measured:
        tokens = np.array([len(ids) for ids in self.encoding.encode_ordinary_batch(list(texts), num_threads=THREADS)],
                          np.int64) if texts else np.zeros(0, np.int64)
        return Measured(tokens, np.zeros(len(texts), np.int64), np.zeros(len(texts), np.int64))

    def measure_units(self, words: Sequence[str]) -> Measured:
        parts = _chunks(words)
        encoded = self.encoding.encode_ordinary_batch([" " + " ".join(part) for part in parts], num_threads=THREADS)
        counts = []
        for part, ids in zip(parts, encoded):
            lengths = self._byte_lengths[np.asarray(ids, np.int64)]
            unit_starts = _starts(np.fromiter(map(len, map(str.encode, part)), np.int64, len(part)) + 1)
            counts.append(_attribute(np.cumsum(lengths) - lengths, unit_starts))
        tokens = np.concatenate(counts) if counts else np.zeros(0, np.int64)
        return Measured(tokens, np.zeros(len(words), np.int64), np.zeros(len(words), np.int64))


def _starts(lengths: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)


def _offline_tiktoken() -> None:
    """tiktoken reads its files from TIKTOKEN_CACHE_DIR; default it to the data folder's copy when there is one."""
    if os.environ.get("TIKTOKEN_CACHE_DIR") or not os.environ.get("LMAUDIT_DATA_DIR"):
        return
    cache = Path(os.environ["LMAUDIT_DATA_DIR"]) / "tokenizers" / "tiktoken" / "cache"
    if cache.is_dir():
        os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)


# -- Hugging Face tokenizers --------------------------------------------------------------------------------

_SEPARABLE_NORMALIZERS = {"NFC", "NFD", "NFKC", "NFKD", "Lowercase", "StripAccents", "BertNormalizer", "Prepend",
                          "Replace", "Sequence", "Strip"}
_SEPARABLE_PRETOKENIZERS = {"ByteLevel", "Split", "BertPreTokenizer", "Whitespace", "WhitespaceSplit", "Metaspace",
                            "Punctuation", "Digits", "Sequence", "UnicodeScripts"}
SENTINEL = "x"  # a plain word before the first unit, so that a prefix a tokenizer adds lands on it, not on a unit
# Normalizers that change no character across a space, and pre-tokenizers that split at every space and drop it:
# with these, a unit tokenizes as the same unit given alone as a pre-tokenized word.
_WORDWISE_NORMALIZERS = {"NFC", "NFD", "NFKC", "NFKD", "Lowercase", "StripAccents", "BertNormalizer", "Sequence"}
_WORDWISE_PRETOKENIZERS = {"BertPreTokenizer", "Whitespace", "WhitespaceSplit"}


def _types(node: Any) -> set[str]:
    if not isinstance(node, dict):
        return set()
    found = {node["type"]} if "type" in node else set()
    for value in node.values():
        for child in value if isinstance(value, list) else [value]:
            found |= _types(child)
    return found


class HFTokenizer:
    """A `tokenizers.Tokenizer` (the Rust library behind every fast Hugging Face tokenizer)."""

    def __init__(self, tokenizer: Any, name: str):
        tokenizer.no_padding()  # a tokenizer.json saved for training pads or cuts every text to a fixed length
        tokenizer.no_truncation()
        self.tokenizer = tokenizer
        self.name = name
        self._config = json.loads(tokenizer.to_str())
        model = self._config.get("model", {})
        vocabulary = tokenizer.get_vocab(with_added_tokens=True)
        self.unk_id = vocabulary.get(model.get("unk_token")) if model.get("unk_token") else None
        self._fallback = np.zeros(max(vocabulary.values()) + 1, bool)
        if model.get("byte_fallback"):
            for piece, token in vocabulary.items():
                if re.fullmatch(r"<0x[0-9A-F]{2}>", piece):
                    self._fallback[token] = True
        self.separable = self._is_separable(vocabulary)
        pre = self._config.get("pre_tokenizer") or {}
        self._wordwise = self.separable and pre.get("type") in _WORDWISE_PRETOKENIZERS and _types(
            self._config.get("normalizer")) <= _WORDWISE_NORMALIZERS
        self._byte_lengths = None
        if bridge.is_byte_level(self._config):
            lengths = np.zeros(len(self._fallback), np.int64)
            for piece, token in vocabulary.items():
                lengths[token] = len(piece)
            self._byte_lengths = lengths
        encoding = bridge.as_tiktoken(self._config, name) if self.separable else None
        self._bridge = TiktokenTokenizer(encoding, name) if encoding is not None else None
        self.engine = "tiktoken" if self._bridge is not None else "tokenizers"

    def _is_separable(self, vocabulary: dict[str, int]) -> bool:
        normalizers, pre = _types(self._config.get("normalizer")), _types(self._config.get("pre_tokenizer"))
        if not normalizers <= _SEPARABLE_NORMALIZERS or not pre <= _SEPARABLE_PRETOKENIZERS:
            return False
        if pre & {"ByteLevel", "Split", "BertPreTokenizer", "Whitespace", "WhitespaceSplit"}:
            return True  # every piece ends before a space that follows a non-space character
        # No splitting at spaces (SentencePiece-style, spaces as '▁'): safe when no token has '▁' after another char.
        return not any(re.search("[^▁ ]▁", piece) for piece in vocabulary)

    def fingerprint(self) -> str:
        return f"{self.name}:{_digest(self.tokenizer.to_str().encode())}"

    def measure(self, texts: Sequence[str]) -> Measured:
        if self._bridge is not None:
            return self._bridge.measure(texts)
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        result = Measured.zeros(len(texts))
        for index, encoding in enumerate(encodings):
            ids = np.asarray(encoding.ids, np.int64)
            result.tokens[index] = len(ids)
            result.fallback_tokens[index] = int(self._fallback[ids].sum()) if len(ids) else 0
            if self.unk_id is not None and (ids == self.unk_id).any():
                result.unknown_chars[index] = sum(e - s for t, (s, e) in zip(encoding.ids, encoding.offsets)
                                                  if t == self.unk_id)
        return result

    def measure_units(self, words: Sequence[str]) -> Measured:
        if self._bridge is not None:
            return self._bridge.measure_units(words)
        parts = _chunks(words)
        texts = [SENTINEL + " " + " ".join(part) for part in parts]
        measured = []
        if self._byte_lengths is not None:  # byte-level BPE: a token's string has one character per byte
            for part, encoding in zip(parts, self.tokenizer.encode_batch_fast(texts, add_special_tokens=False)):
                ids = np.asarray(encoding.ids, np.int64)
                lengths = self._byte_lengths[ids]
                unit_starts = len(SENTINEL) + _starts(np.fromiter(map(len, map(str.encode, part)), np.int64,
                                                                  len(part)) + 1)
                measured.append(Measured(_attribute(np.cumsum(lengths) - lengths, unit_starts),
                                         np.zeros(len(part), np.int64), np.zeros(len(part), np.int64)))
            return Measured.concat(measured, len(words))
        if self._wordwise:
            return Measured.concat([self._measure_words(part, encoding) for part, encoding in zip(
                parts, self.tokenizer.encode_batch(parts, is_pretokenized=True, add_special_tokens=False))], len(words))
        for part, encoding in zip(parts, self.tokenizer.encode_batch(texts, add_special_tokens=False)):
            ids = np.asarray(encoding.ids, np.int64)
            spans = np.asarray(encoding.offsets, np.int64).reshape(-1, 2)
            unit_starts = len(SENTINEL) + _starts(np.fromiter(map(len, part), np.int64, len(part)) + 1)
            unknown = (ids == self.unk_id) if self.unk_id is not None else np.zeros(len(ids), bool)
            measured.append(Measured(_attribute(spans[:, 0], unit_starts),
                                     _attribute(spans[:, 0], unit_starts, (spans[:, 1] - spans[:, 0]) * unknown),
                                     _attribute(spans[:, 0], unit_starts, self._fallback[ids].astype(np.int64))))
        return Measured.concat(measured, len(words))

    def _measure_words(self, part: Sequence[str], encoding: Any) -> Measured:
        """One chunk encoded as pre-tokenized words (one per unit): word ids give each token's unit, so the offsets
        of every token (slow to convert) are not needed, only those of unknown tokens."""
        owner = np.asarray(encoding.word_ids, np.int64)
        ids = np.asarray(encoding.ids, np.int64)
        unknown = np.zeros(len(part), np.int64)
        if self.unk_id is not None:
            for token in np.flatnonzero(ids == self.unk_id).tolist():
                start, end = encoding.token_to_chars(token)
                unknown[owner[token]] += end - start
        return Measured(np.bincount(owner, minlength=len(part)).astype(np.int64), unknown,
                        np.bincount(owner, weights=self._fallback[ids], minlength=len(part)).astype(np.int64))


def short_name(path: Path) -> str:
    """llama3/tokenizer.json -> llama3; gpt2_hf (a folder) -> gpt2_hf; m.model -> m."""
    return path.parent.name if path.is_file() and path.stem == "tokenizer" else (path.stem if path.is_file()
                                                                              else path.name)



# -- SentencePiece ------------------------------------------------------------------------------------------

class SentencePieceTokenizer:
    """A SentencePiece model file (Llama 2, Mistral v1-v3, T5 ...), through the sentencepiece library."""

    def __init__(self, path: Path):
        import sentencepiece

        self.path = path
        self.processor = sentencepiece.SentencePieceProcessor(model_file=str(path))
        self.name = f"spm:{short_name(path)}"
        size = self.processor.get_piece_size()
        pieces = [self.processor.id_to_piece(i) for i in range(size)]
        self._fallback = np.array([self.processor.is_byte(i) for i in range(size)], bool)
        self.unk_id = self.processor.unk_id()
        # With a dummy prefix, " word" inside a text is what "word" is on its own.
        self._dummy_prefix = self.processor.encode("a", out_type=str)[:1] == ["▁a"]
        self.separable = not any(re.search("[^▁]▁", piece) for piece in pieces)

    def fingerprint(self) -> str:
        return f"{self.name}:{_digest(self.path.read_bytes())}"

    def _measure(self, texts: list[str]) -> Measured:
        encoded = self.processor.encode(texts, num_threads=THREADS)
        lengths = np.fromiter(map(len, encoded), np.int64, len(encoded))
        flat = np.fromiter(itertools.chain.from_iterable(encoded), np.int64, int(lengths.sum()))
        owner = np.repeat(np.arange(len(texts)), lengths)  # one array op per call, not one per text
        result = Measured(lengths, np.zeros(len(texts), np.int64),
                          np.bincount(owner, weights=self._fallback[flat], minlength=len(texts)).astype(np.int64))
        for index in np.unique(owner[flat == self.unk_id]):
            proto = self.processor.encode(texts[index], out_type="immutable_proto")
            text_bytes = texts[index].encode()
            result.unknown_chars[index] = sum(len(text_bytes[p.begin:p.end].decode(errors="replace"))
                                              for p in proto.pieces if p.id == self.unk_id)
        return result

    def measure(self, texts: Sequence[str]) -> Measured:
        return self._measure(list(texts))

    def measure_units(self, words: Sequence[str]) -> Measured:
        return self._measure(list(words) if self._dummy_prefix else [" " + w for w in words])


# -- other tokenizers: generic transformers tokenizers ----------------------------------------------------

class TransformersTokenizer:
    """A slow transformers tokenizer (no Rust backend): counted text by text."""

    separable = False

    def __init__(self, tokenizer: Any, name: str, fingerprint: str):
        self.tokenizer, self.name, self._fingerprint = tokenizer, name, fingerprint

    def fingerprint(self) -> str:
        return self._fingerprint

    def measure(self, texts: Sequence[str]) -> Measured:
        return Measured(np.array([len(self.tokenizer.encode(t, add_special_tokens=False)) for t in texts], np.int64),
                        np.zeros(len(texts), np.int64), np.zeros(len(texts), np.int64))

    def measure_units(self, words: Sequence[str]) -> Measured:
        return self.measure([" " + w for w in words])


def from_transformers(tokenizer: Any, name: str, fingerprint: str) -> Tokenizer:
    """A transformers tokenizer: its Rust backend when it has one (fast, separable), else text by text."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return HFTokenizer(backend, name)
    return TransformersTokenizer(tokenizer, name, fingerprint)
