"""Token pieces, alternative names and stop strings, on SmolLM2's real tokenizer and real multi-script text."""

from __future__ import annotations

import pytest

from lmaudit.serve.text import Detokenizer, StopScanner, TokenNames, spell

LANGUAGES = ["eng_Latn", "zho_Hans", "jpn_Jpan", "kor_Hang", "hin_Deva", "arb_Arab"]


@pytest.fixture(scope="module")
def tokenizer(smollm2):
    return smollm2.tokenizer


def flores_lines(data_dir, language: str, count: int = 5) -> list[str]:
    return (data_dir / "flores200" / "dev" / f"{language}.dev").read_text(encoding="utf-8").splitlines()[:count]


def decode(tokenizer, ids):
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


@pytest.mark.parametrize("language", LANGUAGES)
def test_pieces_spell_the_decoded_text(tokenizer, data_dir, language):
    for line in flores_lines(data_dir, language):
        ids = tokenizer.encode(line, add_special_tokens=False)
        pieces = spell(tokenizer, ids)
        assert len(pieces) == len(ids)
        assert "".join(pieces) == decode(tokenizer, ids) == line
        # Each piece ends where the decoded prefix ends, once that prefix is whole characters.
        position = 0
        for i, piece in enumerate(pieces):
            position += len(piece)
            prefix = decode(tokenizer, ids[:i + 1])
            if not prefix.endswith("\ufffd"):
                assert prefix == line[:position]


def test_a_character_split_over_tokens_goes_to_the_token_that_completes_it(tokenizer):
    ids = tokenizer.encode("你好", add_special_tokens=False)
    assert len(ids) > 2 and decode(tokenizer, ids[:1]).endswith("\ufffd")  # byte tokens: the premise of the test
    pieces = spell(tokenizer, ids)
    assert pieces[0] == "" and "".join(pieces) == "你好"
    assert all("\ufffd" not in piece for piece in pieces)


def test_generation_continues_a_prompt_as_the_whole_sequence_would_spell(tokenizer, data_dir):
    line = flores_lines(data_dir, "hin_Deva", 1)[0]
    ids = tokenizer.encode(line, add_special_tokens=False)
    cut = len(ids) // 2
    detokenizer = Detokenizer(tokenizer, ids[:cut])
    continued = [detokenizer.push(token) for token in ids[cut:]]
    continued[-1] += detokenizer.flush()
    assert "".join(continued) == decode(tokenizer, ids)[len(decode(tokenizer, ids[:cut])):]


def test_an_unfinished_character_at_the_end_is_not_lost(tokenizer):
    ids = tokenizer.encode("ok 你", add_special_tokens=False)
    pieces = spell(tokenizer, ids[:-1])  # stop in the middle of the character
    assert "".join(pieces) == decode(tokenizer, ids[:-1]) and pieces[-1].endswith("\ufffd")


def test_alternatives_are_named_with_their_leading_space(tokenizer):
    names = TokenNames(tokenizer)
    (paris,) = tokenizer.encode(" Paris", add_special_tokens=False)
    assert names(paris) == " Paris"
    assert names(tokenizer.eos_token_id) == tokenizer.eos_token


def test_stop_strings_hold_back_a_possible_start_and_cut_before_the_earliest():
    scanner = StopScanner(["o, w", "END"])
    assert scanner.feed("Hel") == ("Hel", False)
    assert scanner.feed("lo, ") == ("l", False)  # "o, " may begin "o, w"
    assert scanner.feed("world") == ("", True)
    assert scanner.text == "Hell"

    scanner = StopScanner(["END"])
    assert scanner.feed("abcE") == ("abc", False)
    assert scanner.feed("x") == ("Ex", False)  # it was not the stop string after all
    assert scanner.feed("EN") == ("", False)
    assert scanner.flush() == "EN"  # generation ended: the held-back text is ordinary text
    assert scanner.text == "abcExEN"

    scanner = StopScanner(["b", "ab"])
    assert scanner.feed("xab") == ("x", True)  # the earliest stop string wins
