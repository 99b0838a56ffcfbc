"""Text as the estimators see it: paragraphs cut into sentences, sentences reduced to sets of words.

The estimators work on sentences as sets of lower-cased words: whether a word occurs in a sentence, not how
often. The "all" vocabulary takes every alphabetic word; the part-of-speech vocabularies (adjectives, adverbs,
verbs) keep the words a tagger labels so (`lmaudit.llmuse.pos`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# A full stop after one of these does not end a sentence ("e.g. the", "et al. show", "Fig. 3").
ABBREVIATIONS = frozenset("""
al approx cf dr eq eqs etc fig figs ie eg ibid incl ltd mr mrs ms no nos prof ref refs resp sec secs st
vol vs viz""".split())

_BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_LAST_WORD = re.compile(r"([A-Za-z]+)\.?[\"')\]]*$")
_WORD = re.compile(r"[a-z]+")
MIN_WORDS = 2  # a "sentence" of one word (a heading, a stray number) says nothing about style


def split_sentences(paragraph: str) -> list[str]:
    """Sentences of a paragraph: cut after . ! ? followed by space and a capital or digit, except after a known
    abbreviation or a single letter (an initial, "i.e.")."""
    text = " ".join(paragraph.split())
    if not text:
        return []
    sentences, start = [], 0
    for match in _BOUNDARY.finditer(text):
        head = text[start:match.start()]
        last = _LAST_WORD.search(head)
        if head.endswith(".") and last and (len(last.group(1)) == 1 or last.group(1).lower() in ABBREVIATIONS):
            continue
        sentences.append(head.strip())
        start = match.end()
    sentences.append(text[start:].strip())
    return [s for s in sentences if s]


def words(sentence: str) -> list[str]:
    """Lower-cased alphabetic words in order (digits, symbols and punctuation dropped; hyphens split)."""
    return _WORD.findall(sentence.lower())


def word_sets(sentences: Iterable[str]) -> list[frozenset[str]]:
    """Each sentence as the set of its words ("all" vocabulary)."""
    return [frozenset(words(s)) for s in sentences]


def long_enough(sentence: str) -> bool:
    return len(words(sentence)) >= MIN_WORDS


def paragraph_sentences(paragraphs: Iterable[str]) -> tuple[list[str], list[int]]:
    """All sentences of the paragraphs long enough to count, and for each the index of its paragraph."""
    sentences, owners = [], []
    for index, paragraph in enumerate(paragraphs):
        for sentence in split_sentences(paragraph):
            if long_enough(sentence):
                sentences.append(sentence)
                owners.append(index)
    return sentences, owners
