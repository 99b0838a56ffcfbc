"""Counts: equal to Petrov et al.'s published FLORES-200 counts, and the piecewise engine equal to encoding whole."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from functools import lru_cache

from lmaudit.tokens import count, petrov_counts, segment
from lmaudit.tokens import load_tokenizer as _load_tokenizer
from lmaudit.tokens.corpora import LanguageText, ParallelCorpus
from lmaudit.tokens.counting import _arrow_words, words_of

load_tokenizer = lru_cache(maxsize=None)(_load_tokenizer)  # the Llama 3 bridge takes seconds to prove

SAMPLE_TOKENIZERS = {"GPT-2": "tiktoken:gpt2", "r50k_base": "r50k_base", "p50k_base": "p50k_base",
                     "cl100k_base": "cl100k_base"}


@pytest.fixture(scope="module")
def sample_corpus(flores, petrov_sample):
    return flores.select(sorted({language for language, _ in petrov_sample}))


@pytest.fixture(scope="module")
def sample_segmented(sample_corpus):
    return segment(sample_corpus)


@pytest.mark.parametrize("column", sorted(SAMPLE_TOKENIZERS))
def test_counts_equal_petrov_et_al(column, sample_corpus, sample_segmented, petrov_sample):
    """Acceptance: our counts equal the published ones (the shared sample file: 12 languages of every script)."""
    counts = count(load_tokenizer(SAMPLE_TOKENIZERS[column]), sample_corpus, sample_segmented)
    assert len(counts) == 12
    for language, result in counts.items():
        assert result.tokens == petrov_sample[(language, column)], (language, column)
        assert result.item_tokens.sum() == result.tokens  # per-sentence counts partition the total


def test_the_hugging_face_gpt2_tokenizer_counts_equal_the_published_gpt2_column(tokenizer_dir, sample_corpus,
                                                                               sample_segmented, petrov_sample):
    """The same vocabulary through Hugging Face's tokenizer: the published GPT-2 counts (the whole table, with
    RoBERTa's and Llama 2's columns, is checked by bench/tokens.py --petrov-table)."""
    counts = count(load_tokenizer(f"hf:{tokenizer_dir / 'gpt2_hf'}"), sample_corpus, sample_segmented)
    assert {code: c.tokens for code, c in counts.items()} == {code: petrov_sample[(code, "GPT-2")] for code in counts}


def test_published_counts_read_from_the_data_folder_or_a_given_table(petrov_sample, tmp_path):
    published = petrov_counts()
    assert all(published[column][language] == tokens for (language, column), tokens in petrov_sample.items())
    wide = tmp_path / "table.csv"
    wide.write_text("flores_code,Language,GPT-2\neng_Latn,English,52567\n")
    assert petrov_counts(wide) == {"GPT-2": {"eng_Latn": 52567}}


TRICKY = ["Plain text, with punctuation.", "  two leading spaces", "double  space and   triple", "tab\there",
          "no\u00a0break\u00a0 space then space", "trailing space ", "", "数字 123 4567 and émigré", "x",
          "ends with two spaces  ", " a", "Ethiopic ሰላም ዓለም", "<|endoftext|> is just text"]


@pytest.fixture(scope="module")
def tricky_corpus(flores):
    texts = {"tricky": LanguageText("tricky", tuple(TRICKY))}
    for code in ("eng_Latn", "amh_Ethi", "zho_Hans", "mya_Mymr"):
        texts[code] = LanguageText(code, flores.texts[code].items[:60])
    return ParallelCorpus("tricky", texts)


@pytest.mark.parametrize("spec", ["cl100k_base", "o200k_base", "p50k_base", "hf:gpt2_hf", "hf:llama3/tokenizer.json",
                                  "hf:llama2_spm/tokenizer.model", "hf:minilm_wordpiece"])
def test_piecewise_counts_equal_encoding_each_text_whole(spec, tokenizer_dir, tricky_corpus):
    """The engine's exactness claim, on whitespace edge cases and real scripts, for every kind of tokenizer."""
    if spec.startswith("hf:"):
        spec = f"hf:{tokenizer_dir / spec[3:]}"
    tokenizer = load_tokenizer(spec)
    assert tokenizer.separable
    counts = count(tokenizer, tricky_corpus)
    whole = tokenizer.measure([t.joined for t in tricky_corpus.texts.values()])
    assert [c.tokens for c in counts.values()] == whole.tokens.tolist()
    assert [c.unknown_chars for c in counts.values()] == whole.unknown_chars.tolist()
    assert [c.fallback_tokens for c in counts.values()] == whole.fallback_tokens.tolist()


def test_llama3_runs_on_tiktoken_and_gpt2_on_tokenizers(tokenizer_dir):
    """The bridge proves equivalence for a vocabulary converted from tiktoken and refuses GPT-2's learned merges."""
    assert load_tokenizer(f"hf:{tokenizer_dir / 'llama3' / 'tokenizer.json'}").engine == "tiktoken"
    assert load_tokenizer(f"hf:{tokenizer_dir / 'gpt2_hf'}").engine == "tokenizers"


def test_unknown_and_byte_fallback_shares(tokenizer_dir, tricky_corpus):
    bert = count(load_tokenizer(f"hf:{tokenizer_dir / 'minilm_wordpiece'}"), tricky_corpus)
    assert bert["amh_Ethi"].unknown_chars > 0.5 * bert["amh_Ethi"].chars  # Ethiopic is not in BERT's vocabulary
    assert bert["eng_Latn"].unknown_chars == 0
    llama2 = count(load_tokenizer(f"hf:{tokenizer_dir / 'llama2_spm' / 'tokenizer.model'}"), tricky_corpus)
    assert llama2["amh_Ethi"].fallback_tokens > 0 and llama2["eng_Latn"].fallback_tokens == 0


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab \u00a0\t.\x1c", max_size=40))
def test_cut_words_rebuild_the_text_and_end_cleanly(text):
    words = words_of(text)
    assert _arrow_words(text).to_pylist() == words  # the native cut used on corpora is the definition
    units = [words[0]] + [" " + w for w in words[1:]]
    assert "".join(units) == text
    for unit in units[1:-1]:  # middle units: a space after a non-space character, ending in a non-space one
        assert unit.startswith(" ") and not unit[-1].isspace()


def test_per_sentence_counts_belong_to_their_sentences(flores):
    corpus = flores.select(["eng_Latn"]).head(30)
    tokenizer = load_tokenizer("cl100k_base")
    result = count(tokenizer, corpus)["eng_Latn"]
    alone = tokenizer.measure([(" " if i else "") + item for i, item in enumerate(corpus.texts["eng_Latn"].items)])
    assert np.array_equal(result.item_tokens, alone.tokens)
