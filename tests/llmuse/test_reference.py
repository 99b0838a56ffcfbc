"""build-reference with the bundled model through the runner (cached, resumable), prompt files, the split, and the
part-of-speech tagger running offline."""

import csv
import json

import pytest

from lmaudit.core.errors import ConfigError, DataError
from lmaudit.llmuse.building import run_build_reference
from lmaudit.llmuse.pos import tagged_word_sets
from lmaudit.llmuse.reference import SplitPlan, load_reference, plan_split
from lmaudit.llmuse.rewrite import Prompts, RewriteSettings
from lmaudit.testing.counting import CountingModel


def test_split_is_seeded_disjoint_and_interleaves_the_rewrites():
    docs = [(f"d{i}", f"text {i}") for i in range(40)]
    plan = SplitPlan(heldout_fraction=0.25, rewrite_reference=6, rewrite_heldout=2, seed=3)
    planned = plan_split(docs, plan)
    assert planned == plan_split(docs, plan) and planned != plan_split(docs, SplitPlan(0.25, 6, 2, seed=4))
    held = [d for d in planned if d[2]["split"] == "heldout"]
    assert len(held) == 10 and sum(d[2]["rewrite"] for d in held) == 2
    turns = sorted((d[2]["turn"], d[2]["split"]) for d in planned if d[2]["rewrite"])
    assert turns[0][1] != turns[-1][1] or {s for _, s in turns[:4]} == {"reference", "heldout"}
    with pytest.raises(ConfigError, match="cannot rewrite 31"):
        SplitPlan(0.25, 31, 2).check(40)


def test_prompt_files_replace_the_templates_and_bad_ones_are_named(tmp_path):
    good = tmp_path / "p.toml"
    good.write_text('outline = "Points of: {paragraph}"\nsystem = "You are terse."\n')
    prompts = Prompts.from_file(good)
    assert prompts.outline == "Points of: {paragraph}" and prompts.expand == Prompts().expand
    assert prompts.fingerprint() != Prompts().fingerprint()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"expand": "no slot here"}))
    with pytest.raises(ConfigError, match=r"bad\.json: the expand template must be text containing \{outline\}"):
        Prompts.from_file(bad)
    (tmp_path / "odd.toml").write_text('outlines = "x {paragraph}"\n')
    with pytest.raises(ConfigError, match="unknown key.s. outlines"):
        Prompts.from_file(tmp_path / "odd.toml")


@pytest.mark.slow
def test_build_reference_with_the_bundled_model_resumes_without_model_calls(smollm2, abstracts, tmp_path):
    human = tmp_path / "old.csv"
    with open(human, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "summaries"])
        writer.writeheader()
        writer.writerows({"id": f"a{i}", "summaries": t} for i, t in enumerate(abstracts["old"][:12]))
    counting = CountingModel(smollm2)
    plan = SplitPlan(heldout_fraction=0.25, rewrite_reference=2, rewrite_heldout=1, seed=0)
    settings = RewriteSettings(temperature=0.0, outline_tokens=12, paragraph_tokens=24, seed=5)
    run_dir = tmp_path / "ref"
    first = run_build_reference(counting, human, text_column="summaries", id_column="id", output_dir=run_dir,
                                plan=plan, settings=settings, model_spec="smollm2", shared_cache=False,
                                progress=False)
    assert len(counting.sent) == 6  # two stages for three paragraphs
    records = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 3 and all(r["task"] == "llmuse.rewrite" for r in records)
    outline, paragraph = records[0]["requests"]
    assert outline["kind"] == "generate" and outline["seed"] is not None and outline["max_tokens"] == 12
    assert records[0]["responses"][0]["text"].strip() in paragraph["messages"][-1]["content"]  # stage 2 reads stage 1
    reference = load_reference(run_dir)
    counts = reference.counts()
    assert counts == {"human_reference": 9, "human_heldout": 2, "ai_reference": 2, "ai_heldout": 1}
    assert first.results["kind"] == "llmuse" and first.results["counts"] == counts
    again = run_build_reference(counting, human, text_column="summaries", id_column="id", output_dir=run_dir,
                                plan=plan, settings=settings, model_spec="smollm2", shared_cache=False,
                                progress=False)
    assert len(counting.sent) == 6 and again.requests_sent == 0  # resumed: nothing asked twice
    assert again.reference.paragraphs == reference.paragraphs


def test_a_reference_file_without_ai_text_is_refused(tmp_path):
    path = tmp_path / "reference.jsonl"
    path.write_text(json.dumps({"doc_id": "1", "source": "human", "split": "reference", "text": "Some words."}) + "\n")
    with pytest.raises(DataError, match="no ai paragraphs in the reference split"):
        load_reference(path)
    path.write_text(json.dumps({"doc_id": "1", "source": "robot", "split": "reference", "text": "x"}) + "\n")
    with pytest.raises(DataError, match="line 1, field 'source'"):
        load_reference(path)


def test_part_of_speech_vocabularies_run_offline():
    sentences = ["We propose a novel and remarkably simple method that quickly outperforms strong baselines."]
    adjectives, = tagged_word_sets(sentences, "adjectives")
    adverbs, = tagged_word_sets(sentences, "adverbs")
    verbs, = tagged_word_sets(sentences, "verbs")
    assert {"simple", "strong"} <= adjectives and "method" not in adjectives
    assert {"remarkably", "quickly"} <= adverbs
    assert {"propose", "outperforms"} <= verbs


def test_paired_human_text_is_the_originals_of_the_rewrites():
    from lmaudit.llmuse.reference import Paragraph, Reference

    reference = Reference([Paragraph("a", "human", "reference", "Text a is here."),
                           Paragraph("b", "human", "reference", "Text b is here. It repeats. It repeats."),
                           Paragraph("b", "ai", "reference", "A rewrite of it. A rewrite of it."),
                           Paragraph("c", "human", "heldout", "Text c is here.")])
    assert reference.texts("human", paired=True) == ["Text b is here. It repeats. It repeats."]
    assert len(reference.texts("human")) == 2
    assert reference.sentences("ai") == ["A rewrite of it."]  # a sentence repeated within a rewrite counts once
