"""Training sequences and queries.

Training data comes through the contamination scans' corpus readers (JSONL, text, Parquet, gzip; files, globs
and folders). Each document is tokenized as the model reads a continuation of nothing (the backend's separator
token first, as the scaling trainer writes documents) and cut into sequences of at most `seq_len` tokens; a
sequence is named `<document id>#<index>`, the document id being its id field or `<file>:<line>`.

A query is a prompt and a completion; its measurement is log p(completion | prompt), tokenized exactly as the
hf backend scores a LoglikelihoodRequest.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmaudit.contamination import corpus_shards, read_batches
from lmaudit.core.errors import ConfigError, DataError
from lmaudit.core.hashing import file_digest, text_digest


@dataclass(frozen=True)
class TrainingSequence:
    sequence_id: str
    document_id: str
    tokens: tuple[int, ...]


@dataclass(frozen=True)
class Document:
    document_id: str
    text: str


@dataclass(frozen=True)
class Query:
    query_id: str
    prompt: str
    completion: str


@dataclass(frozen=True)
class EncodedQuery:
    query: Query
    tokens: tuple[int, ...]  # prompt tokens, then completion tokens
    completion_start: int  # index of the first completion token

    @property
    def completion_tokens(self) -> int:
        return len(self.tokens) - self.completion_start


def read_documents(patterns: Sequence[str | Path], *, text_field: str = "text",
                   id_field: str = "id") -> Iterator[Document]:
    """The corpus's documents in file order (errors name the file, line and field)."""
    for shard in corpus_shards(patterns):
        for batch in read_batches(shard, text_field=text_field, id_field=id_field):
            for index, text in enumerate(batch.texts):
                yield Document(batch.doc_id(index), text)


def sample_documents(documents: Iterable[Document], count: int, seed: int) -> list[Document]:
    """A seeded uniform sample of `count` documents in one pass (reservoir sampling), in corpus order."""
    if count < 1:
        raise ConfigError(f"the fitting sample needs at least one document, got {count}")
    rng = random.Random(seed)
    reservoir: list[tuple[int, Document]] = []
    for position, document in enumerate(documents):
        if len(reservoir) < count:
            reservoir.append((position, document))
        else:
            slot = rng.randint(0, position)
            if slot < count:
                reservoir[slot] = (position, document)
    return [document for _, document in sorted(reservoir, key=lambda item: item[0])]


def separator(model: Any) -> list[int]:
    """The token a document starts with, as the hf backend scores a continuation with no context."""
    tokenizer = model.tokenizer
    token = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    return [] if token is None else [int(token)]


def chunk_documents(model: Any, documents: Iterable[Document], seq_len: int, *,
                    min_tokens: int = 2) -> list[TrainingSequence]:
    """Each document's tokens cut into sequences of at most `seq_len` (shorter than `min_tokens`: dropped)."""
    if seq_len < 2:
        raise ConfigError(f"--seq-len must be at least 2 tokens, got {seq_len}")
    if seq_len > model.max_length:
        raise ConfigError(f"--seq-len {seq_len} is longer than the model's context ({model.max_length} tokens)")
    start = separator(model)
    sequences = []
    for document in documents:
        tokens = start + model.encode(document.text, add_special_tokens=False)
        for index, offset in enumerate(range(0, len(tokens), seq_len)):
            piece = tokens[offset:offset + seq_len]
            if len(piece) >= min_tokens:
                sequences.append(TrainingSequence(f"{document.document_id}#{index}", document.document_id,
                                                  tuple(int(t) for t in piece)))
    return sequences


def corpus_sequences(model: Any, patterns: Sequence[str | Path], seq_len: int, *, text_field: str = "text",
                     id_field: str = "id", sample: int | None = None, seed: int = 0) -> list[TrainingSequence]:
    """The corpus (or a seeded sample of `sample` documents) as training sequences; an empty corpus is an error."""
    documents: Iterable[Document] = read_documents(patterns, text_field=text_field, id_field=id_field)
    if sample is not None:
        documents = sample_documents(documents, sample, seed)
    sequences = chunk_documents(model, documents, seq_len)
    if not sequences:
        raise DataError(f"the corpus {', '.join(str(p) for p in patterns)} holds no document with at least two "
                        f"tokens: there is nothing to attribute to")
    return sequences


def corpus_digests(patterns: Sequence[str | Path]) -> dict[str, str]:
    """sha256 of every corpus file (memoised by path, size and mtime): a resumed run must read the same data."""
    return {shard.path: file_digest(shard.path) for shard in corpus_shards(patterns)}


def read_queries(path: str | Path, *, prompt_field: str = "prompt", completion_field: str = "completion",
                 id_field: str = "id") -> list[Query]:
    """Queries from a JSONL/JSON/CSV/Parquet table; each row needs a prompt and a non-empty completion."""
    from lmaudit.core.errors import RowError
    from lmaudit.data import read_rows, require_field

    queries, seen = [], set()
    for row in read_rows(path):
        prompt = require_field(row, prompt_field)
        completion = require_field(row, completion_field)
        if not completion:
            raise RowError(row.path, row.line, completion_field, "empty completion: there is nothing to measure")
        raw_id = row.values.get(id_field)
        query_id = str(raw_id) if raw_id not in (None, "") else f"q{len(queries)}"
        if query_id in seen:
            raise RowError(row.path, row.line, id_field, f"duplicate query id {query_id!r}")
        seen.add(query_id)
        queries.append(Query(query_id, prompt, completion))
    if not queries:
        raise DataError(f"{path} holds no query")
    return queries


def encode_queries(model: Any, queries: Sequence[Query]) -> list[EncodedQuery]:
    """Prompt and completion tokens as the backend scores them; a query longer than the context is refused."""
    encoded = []
    for query in queries:
        if not query.completion:
            raise ConfigError(f"query {query.query_id}: empty completion: there is nothing to measure")
        prompt_ids, completion_ids = model.encode_pair(query.prompt, query.completion)
        if not prompt_ids:
            prompt_ids = separator(model)
        tokens = tuple(int(t) for t in list(prompt_ids) + list(completion_ids))
        if len(tokens) > model.max_length:
            raise ConfigError(f"query {query.query_id}: prompt and completion are {len(tokens)} tokens, longer than "
                              f"the model's context ({model.max_length}); shorten the prompt")
        encoded.append(EncodedQuery(query, tokens, len(prompt_ids)))
    return encoded


def queries_digest(queries: Sequence[Query]) -> str:
    return text_digest("\n".join(f"{q.query_id}\0{q.prompt}\0{q.completion}" for q in queries))[:16]
