"""`lmaudit influence fit|scores` end to end on the tiny model: the run directory's files, `lmaudit show`, a rerun
that resumes, factors from another model or other modules, and one clear line for each bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lmaudit.cli.main import main


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _scores_argv(tiny_dir, corpus, queries_file, out, *extra: str) -> list[str]:
    return ["influence", "scores", "--model", f"hf:{tiny_dir}", "--modules", "layers.*.mlp.*", "--corpus", str(corpus),
            "--queries", str(queries_file), "--seq-len", "16", "--top-k", "3", "--output-dir", str(out), "--quiet",
            "--private-cache", *extra]


@pytest.fixture(scope="module")
def scored(tiny_dir, tiny_corpus, queries_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("scores") / "run"
    code = main(_scores_argv(tiny_dir, tiny_corpus, queries_file, out))
    assert code == 0
    return out


def test_a_scores_run_writes_every_file_with_a_stable_schema(scored, queries):
    import pyarrow.parquet as pq

    for name in ("manifest.json", "samples.jsonl", "results.json", "scores.parquet", "tokens.jsonl", "influence.png",
                 "influence.html", "factors/factors.json", "factors/factors.safetensors"):
        assert (scored / name).is_file(), name
    results = json.loads((scored / "results.json").read_text())
    assert results["schema"] == "lmaudit.results/2" and results["kind"] == "influence"
    assert [q["query_id"] for q in results["queries"]] == [q.query_id for q in queries]
    assert all(len(q["top"]) == 3 for q in results["queries"]) and "log-probability" in results["how_to_read"]
    table = pq.read_table(scored / "scores.parquet").to_pandas()
    layers = [c for c in table.columns if c.startswith("layer:")]
    assert list(table.columns[:6]) == ["query_id", "sequence_id", "document_id", "score", "rank", "tfidf"]
    assert len(layers) == 6 and len(table) == len(queries) * table["sequence_id"].nunique()
    np.testing.assert_allclose(table["score"], table[layers].sum(axis=1), rtol=1e-12, atol=1e-15)
    for query in results["queries"]:
        mine = table[table["query_id"] == query["query_id"]].sort_values("rank")
        assert sorted(mine["rank"]) == list(range(1, len(mine) + 1))
        assert [e["sequence_id"] for e in query["top"]] == list(mine["sequence_id"][:3])
        assert mine["score"].is_monotonic_decreasing
    records = [json.loads(line) for line in (scored / "samples.jsonl").read_text().splitlines()]
    by_id = {r["sample_id"]: r["scores"]["logprob"] for r in records}
    assert all(by_id[q["query_id"]] == pytest.approx(q["logprob"]) for q in results["queries"])
    manifest = json.loads((scored / "manifest.json").read_text())
    assert manifest["kind"] == "influence" and manifest["invocations"][-1]["measurement_gap"] < 1e-3


def test_tokens_sum_to_their_sequence_score(scored):
    lines = [json.loads(line) for line in (scored / "tokens.jsonl").read_text().splitlines()]
    assert len(lines) == 6 * 3
    for line in lines:
        assert sum(t["score"] for t in line["tokens"]) == pytest.approx(line["score"], rel=1e-4, abs=1e-9)
        assert line["token_sum"] == pytest.approx(line["score"], rel=1e-4, abs=1e-9)
        assert "".join(t["text"] for t in line["tokens"][1:])  # the sequence's text, token by token
    page = (scored / "influence.html").read_text()
    assert page.count("<pre>") == 18 and "title='" in page


def test_show_prints_the_top_k_table(scored, capsys):
    code, out, err = _run(capsys, "show", str(scored))
    assert code == 0, err
    assert "rank=1" in out and "q0" in out and "score" in out


def test_the_same_command_resumes_and_gives_the_same_results(scored, tiny_dir, tiny_corpus, queries_file, capsys):
    before = (scored / "results.json").read_bytes()
    parts = sorted((scored / "scores").glob("part-*.npy"))
    stamps = [p.stat().st_mtime_ns for p in parts]
    code, _, err = _run(capsys, *_scores_argv(tiny_dir, tiny_corpus, queries_file, scored))
    assert code == 0, err
    assert (scored / "results.json").read_bytes() == before
    assert [p.stat().st_mtime_ns for p in parts] == stamps  # finished chunks are not recomputed
    code, _, err = _run(capsys, *_scores_argv(tiny_dir, tiny_corpus, queries_file, scored, "--top-k", "2"))
    assert code == 2 and "holds a different run" in err and "top_k" in err


def test_factors_from_fit_are_used_and_checked(tiny_dir, tiny_corpus, queries_file, tmp_path, capsys):
    fitted = tmp_path / "fit"
    code, _, err = _run(capsys, "influence", "fit", "--model", f"hf:{tiny_dir}", "--modules", "layers.*.mlp.*",
                        "--corpus", str(tiny_corpus), "--seq-len", "16", "--output-dir", str(fitted), "--quiet",
                        "--private-cache")
    assert code == 0, err
    assert "memory for fitting (covariance)" in err and "memory for fitting (lambda)" in err
    assert json.loads((fitted / "results.json").read_text())["stage"] == "fit"
    code, out, err = _run(capsys, *_scores_argv(tiny_dir, tiny_corpus, queries_file, tmp_path / "s1", "--factors",
                                                str(fitted)))
    assert code == 0, err
    assert not (tmp_path / "s1" / "factors").exists() and "rank" in out
    code, _, err = _run(capsys, *_scores_argv(tiny_dir, tiny_corpus, queries_file, tmp_path / "s2", "--factors",
                                              str(fitted), "--model-arg", "dtype=float64"))
    assert code == 2 and "fitted on another model" in _one_line(err)
    argv = _scores_argv(tiny_dir, tiny_corpus, queries_file, tmp_path / "s3", "--factors", str(fitted))
    argv[argv.index("layers.*.mlp.*")] = "layers.0.mlp.*"
    code, _, err = _run(capsys, *argv)
    assert code == 2 and "fitted on other modules" in err and "layers.1.mlp" in err


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("loading model")
             and not line.startswith("memory for") and "Loading weights" not in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_bad_inputs_are_one_clear_line_and_exit_2(tiny_dir, tiny_corpus, queries_file, tmp_path, capsys):
    argv = _scores_argv(tiny_dir, tiny_corpus, queries_file, tmp_path / "a")
    argv[argv.index("layers.*.mlp.*")] = "blocks.*.ffn"
    code, _, err = _run(capsys, *argv)
    assert code == 2 and "match no linear layer" in _one_line(err)
    assert "model.layers.{0..1}.mlp.down_proj" in err and "lm_head" in err

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    code, _, err = _run(capsys, *_scores_argv(tiny_dir, empty, queries_file, tmp_path / "b"))
    assert code == 2 and "holds no document" in _one_line(err)

    long_query = tmp_path / "long.jsonl"
    long_query.write_text(json.dumps({"prompt": "the " * 20, "completion": "end"}) + "\n")
    code, _, err = _run(capsys, *_scores_argv(tiny_dir, tiny_corpus, long_query, tmp_path / "c"))
    assert code == 2 and "longer than the model's context (32)" in _one_line(err)

    code, _, err = _run(capsys, *_scores_argv(tiny_dir, tmp_path / "nowhere.jsonl", queries_file, tmp_path / "d"))
    assert code == 2 and "not found" in _one_line(err) and "loading model" not in err

    code, _, err = _run(capsys, *_scores_argv(tiny_dir, tiny_corpus, queries_file, tmp_path / "e", "--strategy",
                                              "ekfca"))
    assert code == 2 and "Did you mean 'ekfac'?" in _one_line(err) and "loading model" not in err
