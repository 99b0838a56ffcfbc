"""Sentences, words, and target tables read with their groups and periods (and the errors they raise)."""

import pytest

from lmaudit.core.errors import DataError, RowError
from lmaudit.llmuse.corpus import group_of, period_of, read_documents
from lmaudit.llmuse.text import paragraph_sentences, split_sentences, words


def test_sentences_split_at_full_stops_but_not_after_abbreviations_initials_or_decimals():
    text = ("We follow Smith et al. in using a 2.5 Hz filter, e.g. a Butterworth one. The results (see Fig. 3) "
            "improve by 4.2%. J. R. Doe proposed it! Does it work? Yes.")
    assert split_sentences(text) == [
        "We follow Smith et al. in using a 2.5 Hz filter, e.g. a Butterworth one.",
        "The results (see Fig. 3) improve by 4.2%.", "J. R. Doe proposed it!", "Does it work?", "Yes."]


def test_words_are_lower_case_letters_and_one_word_sentences_are_dropped(abstracts):
    assert words("State-of-the-Art CNNs reach 99.1% (ResNet-50).") == ["state", "of", "the", "art", "cnns",
                                                                        "reach", "resnet"]
    sentences, owners = paragraph_sentences(["Hello. This is a sentence.", "Another one here."])
    assert sentences == ["This is a sentence.", "Another one here."] and owners == [0, 1]
    real, _ = paragraph_sentences(abstracts["old"][:50])
    assert 300 < len(real) < 500  # about seven to eight sentences per abstract


def test_periods_and_list_valued_groups():
    assert period_of("2025-05-31", "month") == "2025-05"
    assert period_of("2025-05-31", "quarter") == "2025-Q2"
    assert period_of("2025-05", "year") == "2025"
    assert period_of("2025-5-7", "day") == "2025-05-07"
    assert period_of("May 2025", "month") is None and period_of("2025", "month") is None
    assert group_of("['math.ST', 'stat.ML']", prefix=False) == "math.ST"
    assert group_of("['math.ST', 'stat.ML']", prefix=True) == "math"
    assert group_of(["cs.CL"], prefix=False) == "cs.CL" and group_of("  ", prefix=False) is None


def test_target_table_reads_text_group_and_period(real_target):
    path, n_new = real_target
    docs = read_documents(path, text_column="abstract", group_column="category", date_column="date",
                          period="year", group_prefix=True)
    assert len(docs) == 150 and docs.groups.count("math") == n_new and set(docs.periods) == {"2020", "2025"}
    only = read_documents(path, text_column="abstract", group_column="category", groups=["math.AP"])
    assert len(only) == n_new


def test_bad_target_input_names_file_line_and_column(real_target, tmp_path):
    path, _ = real_target
    with pytest.raises(RowError, match=r"target\.csv, line \d+, field 'summary': no such column"):
        read_documents(path, text_column="summary")
    with pytest.raises(DataError, match="group.s. cs.XX have no documents"):
        read_documents(path, text_column="abstract", group_column="category", groups=["cs.XX", "math.AP"])
    bad = tmp_path / "dates.csv"
    bad.write_text("text,when\nsome words here,2024-01-02\nmore words there,soon\n")
    with pytest.raises(RowError, match=r"line 3, field 'when': not a date"):
        read_documents(bad, text_column="text", date_column="when")
    empty = tmp_path / "groups.csv"
    empty.write_text("text,venue\nsome words here,ACL\nmore words there,\n")
    with pytest.raises(RowError, match=r"line 3, field 'venue': empty group"):
        read_documents(empty, text_column="text", group_column="venue")
