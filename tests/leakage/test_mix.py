"""The training mix: what each leak setting puts in it, and where (whole items at window starts, exact counts)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lmaudit.core.errors import ConfigError, UnknownNameError
from lmaudit.leakage import HELDOUT, LEAKED, UNSEEN, build_mix, leak_items
from lmaudit.runner import select_samples
from lmaudit.scaling import load_corpus
from lmaudit.tasks import get_task

SEPARATOR = 256  # byte-level tokens: 0-255 are bytes, 256 separates documents


def encode(text: str) -> list[int]:
    return list(text.encode("utf-8"))


@pytest.fixture(scope="module")
def selected(data_dir):
    def pick(subject: str, limit: int):
        task = get_task(f"mmlu_{subject}", data_dir=str(data_dir))
        return task, select_samples(task.samples(), limit, "subject")

    return [pick("global_facts", 12)], [pick("public_relations", 10)]


@pytest.fixture(scope="module")
def clean(arxiv):
    corpus = load_corpus(arxiv, heldout_fraction=0.05, text_field="abstract")
    return [(doc.id, doc.text) for doc in corpus.train]


def test_answers_leak_the_scored_prompt_with_its_gold_answer(selected):
    leaked, control = selected
    items = leak_items(leaked, control, "answers")
    task, samples = leaked[0]
    by_key = {item.key: item for item in items}
    for sample in samples:
        requests = task.requests(sample)
        item = by_key[(task.name, sample.id)]
        assert item.subset == LEAKED
        assert item.leak_text == requests[0].context + requests[sample.target].continuation
        assert item.leak_text.endswith(f"Answer: {'ABCD'[sample.target]}")
        assert item.question == sample.data["question"]
    assert [i.subset for i in items].count(HELDOUT) == 10
    assert all(i.leak_text is None for i in items if i.subset == HELDOUT)


def test_prompts_leak_no_answer(selected):
    items = leak_items(*selected, "prompts")
    leaked = [i for i in items if i.subset == LEAKED]
    assert len(leaked) == 12 and all(i.leak_text.endswith("Answer:") for i in leaked)


def test_train_setting_leaks_a_seeded_half_and_scores_the_rest(selected):
    items = leak_items(*selected, "train", train_fraction=0.5, seed=3)
    seen = {i.sample_id for i in items if i.subset == LEAKED}
    unseen = {i.sample_id for i in items if i.subset == UNSEEN}
    assert len(seen) == 6 and len(unseen) == 6 and not seen & unseen
    assert all(i.leak_text is None for i in items if i.subset == UNSEEN)
    again = {i.sample_id for i in leak_items(*selected, "train", seed=3) if i.subset == LEAKED}
    other = {i.sample_id for i in leak_items(*selected, "train", seed=4) if i.subset == LEAKED}
    assert again == seen and other != seen


def test_unknown_setting_names_the_closest(selected):
    with pytest.raises(UnknownNameError, match="answers"):
        leak_items(*selected, "answer")


def test_every_leaked_copy_starts_a_window_whole(selected, clean):
    items = leak_items(*selected, "answers")
    mix = build_mix(items, clean, encode, SEPARATOR, windows=200, seq_len=256, leak_fraction=0.5, seed=1)
    assert len(mix.stream) == 200 * 256 + 1 and mix.windows == 200
    assert 0 < mix.leak_windows <= 100
    leaked = {i.key: i for i in items if i.leak_text}
    assert set(mix.copies) == set(leaked)
    assert max(mix.copies.values()) - min(mix.copies.values()) <= 1  # rounds: every item before any repeats
    starts = 0
    for window in range(mix.windows):
        tokens = mix.stream[window * 256:(window + 1) * 256 + 1]
        for item in leaked.values():
            unit = [SEPARATOR] + encode(item.leak_text) + [SEPARATOR]
            if list(tokens[:len(unit)]) == unit[:257]:  # a longer item runs on into the next window
                starts += 1
    assert starts == sum(mix.copies.values())  # each copy found at the start of its own window
    leak_docs = [d for d in mix.documents if d["source"] == "leak"]
    assert len(leak_docs) == sum(mix.copies.values())
    assert mix.summary()["leak_fraction"] == mix.leak_windows / 200


def test_the_clean_baseline_has_no_leak_and_the_same_length(selected, clean):
    items = leak_items(*selected, "answers")
    mix = build_mix(items, clean, encode, SEPARATOR, windows=200, seq_len=256, leak_fraction=0.0)
    assert mix.leak_windows == 0 and mix.copies == {}
    assert len(mix.stream) == 200 * 256 + 1
    assert {d["source"] for d in mix.documents} == {"clean"}
    text = bytes(int(t) for t in mix.stream if t != SEPARATOR).decode("utf-8", errors="replace")
    assert clean[0][1][:200] in text  # real text, read from the start of the corpus
    questions = [i.question for i in items]
    assert not any(q in text for q in questions)


def test_the_mix_is_deterministic_and_written_as_a_corpus(selected, clean, tmp_path):
    items = leak_items(*selected, "answers")
    first = build_mix(items, clean, encode, SEPARATOR, windows=120, seq_len=256, leak_fraction=0.4, seed=5)
    second = build_mix(items, clean, encode, SEPARATOR, windows=120, seq_len=256, leak_fraction=0.4, seed=5)
    assert np.array_equal(first.stream, second.stream) and first.digest() == second.digest()
    path = first.write_corpus(tmp_path / "mix" / "leak.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows == first.documents
    assert sum(r["source"] == "leak" for r in rows) == sum(first.copies.values())


def test_a_leak_needs_something_to_leak(selected, clean):
    _, control = selected
    items = leak_items([], control, "answers")
    with pytest.raises(ConfigError, match="nothing to leak"):
        build_mix(items, clean, encode, SEPARATOR, windows=10, seq_len=64, leak_fraction=0.5)
    with pytest.raises(ConfigError, match="leak_fraction"):
        build_mix(items, clean, encode, SEPARATOR, windows=10, seq_len=64, leak_fraction=1.5)
