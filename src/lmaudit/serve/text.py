"""From token ids to the text clients read: pieces that spell it, names of alternatives, stop strings.

Clients locate things by text: lm-eval and lmaudit's own client find the continuation through `text_offset`,
streaming clients concatenate deltas. So the piece reported for each token is the text it adds to the decoded
sequence (decoded with a few tokens of left context, as leading spaces and byte merges depend on them), and the
pieces of a sequence always join into its decoded text. A token that ends inside a multi-byte character adds ""
and the token completing the character adds all of it, which is how vLLM reports such tokens.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

WINDOW = 4  # tokens of left context when decoding a piece: enough for leading spaces and byte merges
MAX_PENDING = 4  # a UTF-8 character spans at most 4 byte tokens; text is released after that regardless
INCOMPLETE = "\ufffd"  # what the tokenizer decodes a dangling partial character to


def _decode(tokenizer: Any, ids: Sequence[int]) -> str:
    # Special tokens stay literal: an echoed chat prompt shows its role markers, an EOS shows as itself.
    return tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)


class Detokenizer:
    """Turns tokens, one at a time, into the text each adds; `context` is text already shown (not re-emitted)."""

    def __init__(self, tokenizer: Any, context: Sequence[int] = ()):
        self._tokenizer = tokenizer
        self._ids = list(context[-WINDOW:])
        self._read = len(self._ids)  # tokens whose text has been handed out

    def push(self, token_id: int) -> str:
        self._ids.append(token_id)
        start = max(0, self._read - WINDOW)
        new = _decode(self._tokenizer, self._ids[start:])
        if new.endswith(INCOMPLETE) and len(self._ids) - self._read < MAX_PENDING:
            return ""
        return self._release(start, new)

    def flush(self) -> str:
        """Text still held back (a character left unfinished at the end of the sequence)."""
        if self._read == len(self._ids):
            return ""
        start = max(0, self._read - WINDOW)
        return self._release(start, _decode(self._tokenizer, self._ids[start:]))

    def _release(self, start: int, new: str) -> str:
        old = _decode(self._tokenizer, self._ids[start:self._read])
        if not new.startswith(old):  # the window was too short for this tokenizer: decode everything
            new, old = _decode(self._tokenizer, self._ids), _decode(self._tokenizer, self._ids[:self._read])
        self._read = len(self._ids)
        if len(self._ids) > 4 * WINDOW:  # keep only the context the next piece needs
            drop = len(self._ids) - WINDOW
            self._ids, self._read = self._ids[drop:], self._read - drop
        return new[len(old):]


def spell(tokenizer: Any, ids: Iterable[int]) -> list[str]:
    """The piece of every token of a whole sequence (a prompt); the last one absorbs any unfinished character."""
    detokenizer = Detokenizer(tokenizer)
    pieces = [detokenizer.push(token_id) for token_id in ids]
    if pieces:
        pieces[-1] += detokenizer.flush()
    return pieces


class TokenNames:
    """The text of a token on its own, as `top_logprobs` names alternatives (memoised per id).

    It is decoded after a fixed ordinary token, so tokenizers that drop a leading space at the start of a text
    (SentencePiece) still name " Paris" with its space.
    """

    def __init__(self, tokenizer: Any):
        self._tokenizer = tokenizer
        anchor = tokenizer.encode("a", add_special_tokens=False)
        self._anchor = anchor[-1:] if anchor else []
        self._anchor_text = _decode(tokenizer, self._anchor)
        self._names: dict[int, str] = {}

    def __call__(self, token_id: int) -> str:
        name = self._names.get(token_id)
        if name is None:
            joined = _decode(self._tokenizer, self._anchor + [token_id])
            if joined.startswith(self._anchor_text):
                name = joined[len(self._anchor_text):]
            else:
                name = _decode(self._tokenizer, [token_id])
            self._names[token_id] = name
        return name


class StopScanner:
    """Watches generated text for stop strings, holding back any tail that could be the start of one.

    `feed(piece)` returns the text that is safe to show now and whether a stop string was reached; the text
    is then cut before the earliest stop string, as the OpenAI API cuts it.
    """

    def __init__(self, stops: Sequence[str]):
        self._stops = tuple(stops)
        self._text = ""
        self._sent = 0  # characters handed out; no stop string can start before this point
        self.text = ""  # everything handed out so far

    def feed(self, piece: str) -> tuple[str, bool]:
        self._text += piece
        found = [i for i in (self._text.find(stop, self._sent) for stop in self._stops) if i >= 0]
        if found:
            return self._hand_out(min(found)), True
        hold = max((n for stop in self._stops for n in range(min(len(stop) - 1, len(self._text)), 0, -1)
                    if self._text.endswith(stop[:n])), default=0)
        return self._hand_out(len(self._text) - hold), False

    def flush(self) -> str:
        """At the end of generation the held-back tail is ordinary text."""
        return self._hand_out(len(self._text))

    def _hand_out(self, end: int) -> str:
        released = self._text[self._sent:end]
        self._sent = end
        self.text += released
        return released
