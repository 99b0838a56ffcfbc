"""Corpora and tokenizer specs, and the one-line errors for bad input."""

from __future__ import annotations

import json

import pytest

from lmaudit.core.errors import ConfigError, DataError, UnknownNameError
from lmaudit.tokens import load_corpus, load_tokenizer, to_flores


def test_flores_has_204_languages_aligned_in_petrovs_order(flores):
    assert len(flores.languages) == 204
    assert flores.size == 997 + 1 + 1012 + 1  # each file's trailing newline leaves an empty item, as they read it
    english = flores.texts["eng_Latn"]
    assert english.items[997] == "" and english.joined.endswith(" ")


def test_ntrex_codes_map_to_flores_codes(data_dir):
    ntrex = load_corpus("ntrex128", data_dir=data_dir)
    assert {"eng_Latn", "deu_Latn", "azj_Latn", "zho_Hans"} <= set(ntrex.languages)
    assert ntrex.size == 1998


def test_language_codes_resolve():
    assert [to_flores(c) for c in ("hin_Deva", "hin", "DE_DE", "zh", "arb", "aze-Latn")] == [
        "hin_Deva", "hin_Deva", "deu_Latn", "zho_Hans", "arb_Arab", "azj_Latn"]


def test_folder_corpus_with_parts(tmp_path):
    for part, lines in (("a", ["one", "two"]), ("b", ["three"])):
        (tmp_path / part).mkdir()
        (tmp_path / part / f"eng_Latn.{part}").write_text("\n".join(lines), encoding="utf-8")
        (tmp_path / part / f"deu.{part}").write_text("\n".join(l.upper() for l in lines), encoding="utf-8")
    corpus = load_corpus(str(tmp_path))
    assert corpus.languages == ["deu_Latn", "eng_Latn"]
    assert corpus.texts["eng_Latn"].joined == "one two three"


def test_folder_whose_files_are_not_line_aligned_names_the_file_and_counts(tmp_path):
    (tmp_path / "eng_Latn.txt").write_text("a\nb\nc\n", encoding="utf-8")
    (tmp_path / "fra_Latn.txt").write_text("a\nb\nc\n", encoding="utf-8")
    (tmp_path / "deu_Latn.txt").write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"deu_Latn\.txt has 3 lines, but the other files .* have 4"):
        load_corpus(str(tmp_path))


def test_jsonl_corpus_and_its_alignment(tmp_path):
    path = tmp_path / "corpus.jsonl"
    rows = [{"language": "eng", "text": "hello"}, {"language": "fra", "text": "bonjour"},
            {"language": "eng", "text": "bye"}, {"language": "fra", "text": "au revoir"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert load_corpus(str(path)).texts["fra_Latn"].items == ("bonjour", "au revoir")
    path.write_text("".join(json.dumps(r) + "\n" for r in rows[:3]), encoding="utf-8")
    with pytest.raises(DataError, match="different numbers of rows .fra_Latn 1, eng_Latn 2"):
        load_corpus(str(path))


def test_reference_missing_from_the_corpus(flores):
    with pytest.raises(UnknownNameError, match="unknown language of corpus flores200 'xxx_Latn'"):
        flores.select(["deu_Latn"], "xxx_Latn")


def test_unknown_tokenizer_names_the_closest():
    with pytest.raises(UnknownNameError, match="Did you mean 'cl100k_base'"):
        load_tokenizer("cl100k")
    with pytest.raises(UnknownNameError, match="tiktoken encoding"):
        load_tokenizer("tiktoken:o300k_base")


def test_bad_tokenizer_files(tmp_path):
    with pytest.raises(ConfigError, match="has no tokenizer.json"):
        load_tokenizer(f"hf:{tmp_path}")
    broken = tmp_path / "tokenizer.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="not a Hugging Face tokenizer.json"):
        load_tokenizer(f"hf:{broken}")
