"""Many sequences per llama.cpp decode step, for the `llamacpp` backend.

llama-cpp-python's high-level API decodes one sequence at a time, which leaves most of each step's cost (graph
building, thread wake-ups, weights streamed from memory) paid for one token. Here a group of requests shares one
llama.cpp context with a sequence id each and a KV stream each (not unified: a token attends to its own
sequence's cells only): the prompts go in together, then every step decodes one token of every live sequence.

Tokens are chosen as in the hf backend (`sampling.choose_tokens`): greedy rows take the argmax, sampled rows
draw from their own seeded generator by inverse CDF, so a request's text depends on its seed, not on its
batch-mates, up to the float rounding of batched kernels. The chosen tokens' log-probabilities come with the
text (under the quantised model, as llama.cpp computes it).
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from lmaudit.core.errors import ModelError
from lmaudit.core.types import Generation
from lmaudit.models.sampling import Row, choose_tokens, seed_rows

CELL_ROUNDING = 256  # each sequence's KV cells, rounded up so that similar groups reuse one context
MAX_BATCH = 512  # tokens per llama_decode call while the prompts go in


class BatchDecoder:
    """A llama.cpp context for up to `slots` sequences, rebuilt only when a group needs more room."""

    def __init__(self, llm: Any, *, threads: int, max_context: int):
        import llama_cpp

        self._api = llama_cpp
        self._llm = llm
        self._threads = threads
        self._max_context = max_context
        self._vocab = llama_cpp.llama_model_get_vocab(llm.model)
        self._n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
        self._ctx: Any = None
        self._shape = (0, 0)  # (slots, cells per sequence) of the current context
        self._batch: Any = None

    def close(self) -> None:
        if self._ctx is not None:
            self._api.llama_free(self._ctx)
            self._ctx = None
        if self._batch is not None:
            self._api.llama_batch_free(self._batch)
            self._batch = None

    def _context(self, slots: int, cells: int) -> Any:
        if self._ctx is not None and self._shape[0] >= slots and self._shape[1] >= cells:
            self._api.llama_memory_clear(self._api.llama_get_memory(self._ctx), True)
            return self._ctx
        self.close()
        params = self._api.llama_context_default_params()
        params.n_seq_max = slots
        params.n_ctx = slots * cells
        params.n_batch = params.n_ubatch = MAX_BATCH
        # Prompts on the same thread count as steps: llama.cpp's default for prompts (every CPU) makes ggml's
        # spinning threads wait for each other on a machine with other work.
        params.n_threads = params.n_threads_batch = self._threads
        params.kv_unified = False
        self._ctx = self._api.llama_init_from_model(self._llm.model, params)
        if not self._ctx:
            raise ModelError(f"llama.cpp could not make a context for {slots} sequences x {cells} tokens")
        self._batch = self._api.llama_batch_init(max(MAX_BATCH, slots), 0, 1)
        self._shape = (slots, cells)
        return self._ctx

    def _decode(self, entries: Sequence[tuple[int, int, int, bool]]) -> np.ndarray:
        """Decode (token, position, sequence, wants logits) entries; the logits of those that want them, in order."""
        batch = self._batch
        for k, (token, position, sequence, wanted) in enumerate(entries):
            batch.token[k] = token
            batch.pos[k] = position
            batch.n_seq_id[k] = 1
            batch.seq_id[k][0] = sequence
            batch.logits[k] = wanted
        batch.n_tokens = len(entries)
        status = self._api.llama_decode(self._ctx, batch)
        if status != 0:
            raise ModelError(f"llama.cpp failed to decode a batch of {len(entries)} tokens (status {status})")
        outputs = sum(1 for entry in entries if entry[3])
        pointer = self._api.llama_get_logits(self._ctx)
        array = np.ctypeslib.as_array(ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)),
                                      shape=(outputs, self._n_vocab))
        return array.copy()  # the next decode overwrites llama.cpp's buffer

    def generate(self, rows: Sequence[Row]) -> list[Generation]:
        """Every row at once: its prompt, then one token per step until its stop, max tokens or end of turn."""
        for row in rows:
            if len(row.prompt) >= self._max_context:
                raise ModelError(f"a prompt of {len(row.prompt)} tokens does not fit the context of "
                                 f"{self._max_context} tokens (raise n_ctx)")
            row.max_tokens = min(row.max_tokens, self._max_context - len(row.prompt))
        seed_rows(rows)
        need = max(len(r.prompt) + r.max_tokens for r in rows)
        self._context(len(rows), -(-need // CELL_ROUNDING) * CELL_ROUNDING)
        logits = self._prefill(rows)
        texts: dict[int, bytearray] = {index: bytearray() for index in range(len(rows))}
        cuts: dict[int, int] = {}
        for row in rows:
            if row.max_tokens <= 0:
                row.finish = "length"
        live = [index for index, row in enumerate(rows) if row.finish is None]
        logits = logits[live]
        while live:
            logprobs = torch.log_softmax(torch.from_numpy(logits), dim=-1)
            chosen = choose_tokens(logprobs, [rows[i] for i in live]).tolist()
            keep = []
            for slot, index in enumerate(live):
                row, token = rows[index], chosen[slot]
                if self._api.llama_vocab_is_eog(self._vocab, token):
                    row.finish = "stop"
                    continue
                row.tokens.append(token)
                row.logprobs.append(float(logprobs[slot, token]))
                texts[index] += self._llm.detokenize([token])
                cut = _first_stop(texts[index], row.stop)
                if cut is not None:
                    cuts[index], row.finish = cut, "stop"
                elif len(row.tokens) >= row.max_tokens:
                    row.finish = "length"
                else:
                    keep.append(slot)
            live = [live[slot] for slot in keep]
            if live:
                logits = self._decode([(rows[i].tokens[-1], len(rows[i].prompt) + len(rows[i].tokens) - 1, i, True)
                                       for i in live])
        return [Generation(bytes(texts[i][:cuts.get(i, len(texts[i]))]).decode("utf-8", errors="ignore"),
                           row.finish or "length", token_logprobs=tuple(row.logprobs))
                for i, row in enumerate(rows)]

    def _prefill(self, rows: Sequence[Row]) -> np.ndarray:
        """All prompts through the model, MAX_BATCH tokens per call; the logits after each prompt's last token."""
        entries = [(token, position, index, position == len(row.prompt) - 1)
                   for index, row in enumerate(rows) for position, token in enumerate(row.prompt)]
        last = np.empty((len(rows), self._n_vocab), np.float32)
        for start in range(0, len(entries), MAX_BATCH):
            chunk = entries[start:start + MAX_BATCH]
            produced = self._decode(chunk)
            for position, sequence in enumerate(entry[2] for entry in chunk if entry[3]):
                last[sequence] = produced[position]
        return last


def _first_stop(text: bytearray, stops: Sequence[str]) -> int | None:
    """Where the first stop string begins in the text so far (bytes, so a character split over tokens is safe)."""
    found = [text.find(stop.encode()) for stop in stops if stop]
    found = [at for at in found if at >= 0]
    return min(found) if found else None
