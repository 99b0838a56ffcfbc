"""Reports of real run directories: every number recomputed equals results.json; A/B and maps agree with an
independent recomputation; any kind of run directory works; a bad one gives one clear line."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from lmaudit.contamination import Flag, write_flags
from lmaudit.core.results import MetricRow, aggregate_rows, envelope
from lmaudit.core.types import SampleRecord
from lmaudit.report import build_report, check, embedded_data, open_run, recompute
from lmaudit.report.recompute import normalized
from lmaudit.runner import RunSession, aggregate


def written_rows(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "results.json").read_text())["metrics"]


def raw_records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines() if line.strip()]


def cli(*args: str) -> subprocess.CompletedProcess:
    """The real `lmaudit` command in a fresh process."""
    return subprocess.run([sys.executable, "-m", "lmaudit", *args], capture_output=True, text=True, timeout=300)


def cli_here(*args: str):
    """The same command in this process (typer's runner), for the many quick error cases."""
    from typer.testing import CliRunner

    from lmaudit.cli.main import app

    return CliRunner().invoke(app, list(args))


# -- numbers ------------------------------------------------------------------------------------------

def test_eval_rows_recomputed_from_samples_equal_results_json(mmlu_runs, tmp_path):
    for run_dir in mmlu_runs:
        run = open_run(run_dir)
        again = recompute(run)
        assert again.method.startswith("eval_results")
        assert [normalized(r) for r in again.rows] == written_rows(run_dir)  # every value, stderr, CI and n
        assert {c.status for c in check(run, again)} == {"match"}
    report = build_report(list(mmlu_runs), tmp_path / "report.html")
    data = embedded_data((tmp_path / "report.html").read_text())
    for shown, run_dir in zip(data["runs"], mmlu_runs):
        assert len(shown["rows"]) == len(written_rows(run_dir))
        for row, written in zip(shown["rows"], written_rows(run_dir)):
            assert row[:3] == [written["task"], written["group"], written["metric"]]
            assert row[3] == pytest.approx(written["value"], abs=1e-10) and row[7] == written["n"]
            assert row[8] == "match"
    assert all(counts == {"match": len(written_rows(d))} for counts, d in zip(report.checks.values(), mmlu_runs))


def test_when_the_tasks_cannot_be_rebuilt_values_still_match_and_the_report_says_why(mmlu_runs, copy_run):
    damaged = copy_run(mmlu_runs[0])
    manifest = json.loads((damaged / "manifest.json").read_text())
    manifest["identity"]["tasks"]["mmlu"]["num_fewshot"] = 5  # no longer what the registry builds
    (damaged / "manifest.json").write_text(json.dumps(manifest))
    run = open_run(damaged)
    again = recompute(run)
    assert again.method.startswith("aggregate") and "may differ" in again.notes[0]
    mine = {(r.task, r.group, r.metric): r for r in again.rows}
    for written in written_rows(damaged):
        row = mine[(written["task"], written["group"], written["metric"])]
        assert (row.value, row.n) == (written["value"], written["n"])
        assert row.stderr == written["stderr"] or (math.isnan(row.stderr) and written["stderr"] is None)


def test_redteam_rows_recomputed_equal_results_json(redteam_run, tmp_path):
    run = open_run(redteam_run)
    again = recompute(run)
    assert [normalized(r) for r in again.rows] == written_rows(redteam_run)
    assert again.units and all(u.scores for units in again.units.values() for u in units)
    report = build_report([redteam_run], tmp_path / "redteam.html")
    assert report.checks["smollm2"] == {"match": len(written_rows(redteam_run))}
    assert [m.hierarchy.source for m in report.maps] == ["builtin:jbb", "builtin:jbb"]  # one map per attack
    data = embedded_data((tmp_path / "redteam.html").read_text())
    assert len(data["samples"]["run"]) == len(raw_records(redteam_run))
    verdicts = {data["strings"][v] for pairs in data["samples"]["judges"] for v in pairs[1::2]}
    assert verdicts <= {"jailbroken", "not jailbroken", "unparsed"} and verdicts
    assert any(name.endswith(".png") for run_info in data["runs"] for name in (f["name"] for f in run_info["figures"]))


def _generic_run(path: Path, kind: str = "tokens") -> Path:
    """A run of a kind the report has no special code for, written through the runner like any capability."""
    records = [SampleRecord("flores", f"{lang}/{i}", None, {"language": lang}, [], [],
                            {"bytes_per_token": 2.0 + (i % 5) / 3 + (lang == "deu"), "fits": float(i % 2)})
               for lang in ("eng", "deu", "fra") for i in range(12)]
    with RunSession.open(path, kind=kind, identity={"what": "generic"}, progress=False) as session:
        session.append(records)
        summary = aggregate(session.records(), ["bytes_per_token", "fits"], ["language"], seed=0)
        session.finish(envelope(kind, aggregate_rows(summary, task="flores") + [MetricRow("tokenizers_compared", 3.0)]))
    from lmaudit.core.output import pyplot, save_figure

    plt = pyplot()
    figure, axis = plt.subplots(figsize=(2, 2))
    axis.plot([1, 2, 3])
    save_figure(figure, path / "cost.png")
    return path


def test_a_kind_without_special_code_is_recomputed_row_by_row(tmp_path):
    run_dir = _generic_run(tmp_path / "tokens-run")
    run = open_run(run_dir)
    statuses = {(c.row.metric, c.row.group): c.status for c in check(run, recompute(run))}
    assert statuses[("tokenizers_compared", None)] == "as written"  # not a per-record score
    assert {s for key, s in statuses.items() if key[0] != "tokenizers_compared"} == {"match"}
    report = build_report([run_dir], tmp_path / "tokens.html")
    data = embedded_data((tmp_path / "tokens.html").read_text())
    assert [f["name"] for f in data["runs"][0]["figures"]] == ["cost.png"]
    assert report.samples == 36 and report.maps == []


def test_contamination_flags_mark_samples(mmlu_runs, tmp_path):
    records = raw_records(mmlu_runs[0])
    flags = [Flag("mmlu", r["sample_id"], "substring", index % 3 == 0, 0.5) for index, r in enumerate(records[:30])]
    path = write_flags(flags, tmp_path / "flags.jsonl")
    build_report([mmlu_runs[0]], tmp_path / "flagged.html", contamination=path)
    data = embedded_data((tmp_path / "flagged.html").read_text())
    by_id = dict(zip((data["strings"][i] for i in data["samples"]["id"]), data["samples"]["contaminated"]))
    assert sum(1 for v in by_id.values() if v == 1) == sum(1 for f in flags if f.contaminated)
    assert sum(1 for v in by_id.values() if v == 0) == sum(1 for f in flags if not f.contaminated)
    assert sum(1 for v in by_id.values() if v == -1) == len(records) - 30


# -- A/B and maps -------------------------------------------------------------------------------------

def test_ab_matches_an_independent_recomputation_from_samples_jsonl(mmlu_runs, tmp_path):
    report = build_report(list(mmlu_runs), tmp_path / "ab.html")
    comparison = report.comparisons[0]
    a = {r["sample_id"]: r for r in raw_records(mmlu_runs[0])}
    b = {r["sample_id"]: r for r in raw_records(mmlu_runs[1])}
    shared = sorted(set(a) & set(b))
    assert comparison.shared == len(shared) == len(a)
    overall = next(r for r in comparison.rows if r.group is None and r.metric == "acc")
    diffs = [b[s]["scores"]["acc"] - a[s]["scores"]["acc"] for s in shared]
    assert overall.diff == pytest.approx(sum(diffs) / len(diffs), abs=1e-12)
    assert (overall.b_only, overall.a_only) == (diffs.count(1.0), diffs.count(-1.0))
    assert overall.ci95[0] <= overall.diff <= overall.ci95[1]
    assert {(f.sample_id, f.a, f.b) for f in comparison.flips} == {
        (s, a[s]["scores"]["acc"], b[s]["scores"]["acc"]) for s in shared if diffs[shared.index(s)] != 0}
    for row in (r for r in comparison.rows if r.group and r.group.startswith("subject=")):
        subject = row.group.split("=", 1)[1]
        mine = [s for s in shared if a[s]["metadata"]["subject"] == subject]
        assert row.n_pairs == len(mine)
        assert row.mean_b - row.mean_a == pytest.approx(sum(b[s]["scores"]["acc"] - a[s]["scores"]["acc"]
                                                            for s in mine) / len(mine), abs=1e-12)


def test_map_leaves_and_root_are_results_json_rows(mmlu_runs, tmp_path):
    report = build_report(list(mmlu_runs), tmp_path / "map.html")
    kmap = report.maps[0]
    assert kmap.hierarchy.source == "builtin:mmlu" and kmap.runs == ("smollm2 (mmlu-0shot)", "smollm2 (mmlu-1shot)")
    for index, run_dir in enumerate(mmlu_runs):
        rows = {(r["group"], r["metric"]): r for r in written_rows(run_dir)}
        assert kmap.node("").stats[index].value == rows[(None, "acc")]["value"]
        for node in kmap.nodes:
            if node.depth == 3:
                written = rows[(f"subject={node.label}", "acc")]
                assert (node.stats[index].value, node.stats[index].n) == (written["value"], written["n"])
                assert node.stats[index].stderr == written["stderr"] or written["stderr"] is None


def test_lmaudit_map_writes_svg_png_table_and_html(mmlu_runs, tmp_path):
    out = tmp_path / "maps"
    result = cli("map", str(mmlu_runs[0]), str(mmlu_runs[1]), "--output-dir", str(out))
    assert result.returncode == 0, result.stderr
    for name in ("map.svg", "map.png", "map_nodes.csv", "map.html"):
        assert (out / name).stat().st_size > 0
    lines = (out / "map_nodes.csv").read_text().splitlines()
    assert lines[0].startswith("map,node,depth,label,run,metric,n,value")
    assert len(lines) == 1 + 2 * (1 + 4 + 17 + 57)
    toml = tmp_path / "two.toml"
    toml.write_text('key = "category"\n[paths]\nstem = "sciences"\nother = "sciences"\n')
    result = cli("map", str(mmlu_runs[0]), "--hierarchy", str(toml), "--output-dir", str(tmp_path / "own"))
    assert result.returncode == 0, result.stderr
    assert "(not in hierarchy)" in (tmp_path / "own" / "map_nodes.csv").read_text()


def test_a_model_built_hierarchy_goes_through_the_runner_and_is_a_reviewable_file(smollm2, one_thread, tmp_path):
    from lmaudit.maps import induce_hierarchy, load

    values = ["algebra", "poetry", "chemistry"]
    cache = tmp_path / "responses.sqlite"
    first = induce_hierarchy(values, "topic", smollm2, tmp_path / "h", spec="smollm2", progress=False,
                             cache_path=cache)
    assert first.requests_sent == 3
    again = induce_hierarchy(values, "topic", smollm2, tmp_path / "h", spec="smollm2", progress=False,
                             cache_path=cache)
    assert again.requests_sent == 0  # cached by the runner
    assert again.hierarchy.paths == first.hierarchy.paths
    reloaded = load(first.file)
    assert dict(reloaded.paths) == dict(first.hierarchy.paths) and reloaded.key == "topic"
    records = raw_records(first.run_dir)
    assert len(records) == 3 and all(r["roles"] == ["builder"] and r["responses"][0]["text"] for r in records)
    assert json.loads((first.run_dir / "results.json").read_text())["kind"] == "hierarchy"


# -- every kind, and bad directories -------------------------------------------------------------------

def test_show_and_report_work_on_every_kind(mmlu_runs, redteam_run, tmp_path):
    generic = _generic_run(tmp_path / "llmuse-run", kind="llmuse")
    for run_dir, word in ((mmlu_runs[0], "acc"), (redteam_run, "asr_rules"), (generic, "bytes_per_token")):
        shown = cli("show", str(run_dir))
        assert shown.returncode == 0 and word in shown.stdout, shown.stderr
    made = cli("report", str(mmlu_runs[0]), str(redteam_run), str(generic), "-o", str(tmp_path / "all.html"))
    assert made.returncode == 0, made.stderr
    assert "wrote" in made.stdout and (tmp_path / "all.html").stat().st_size > 0


def _bad_dirs(mmlu_dir: Path, copy_run, tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "empty").mkdir()
    (tmp_path / "a-file").write_text("x")
    unfinished = copy_run(mmlu_dir, "unfinished")
    (unfinished / "results.json").unlink()
    torn = copy_run(mmlu_dir, "torn")
    text = (torn / "results.json").read_text()
    (torn / "results.json").write_text(text[: len(text) // 2])
    old = copy_run(mmlu_dir, "old-schema")
    raw = json.loads((old / "results.json").read_text())
    raw["schema"] = "lmaudit.results/1"
    (old / "results.json").write_text(json.dumps(raw))
    broken = copy_run(mmlu_dir, "broken-line")
    lines = (broken / "samples.jsonl").read_text().splitlines()
    lines[3] = lines[3][:40]
    (broken / "samples.jsonl").write_text("\n".join(lines) + "\n")
    return {"does not exist": tmp_path / "missing", "not an lmaudit run directory": tmp_path / "empty",
            "is not a directory": tmp_path / "a-file", "unfinished run": unfinished, "not valid JSON": torn,
            "not an lmaudit results file": old, "line 4": broken}


def test_bad_run_directories_give_one_clear_line(mmlu_runs, copy_run, tmp_path):
    for problem, path in _bad_dirs(mmlu_runs[0], copy_run, tmp_path).items():
        commands = [("report", str(path), "-o", str(tmp_path / "x.html"))]
        if problem != "line 4":  # show reads results.json only
            commands.append(("show", str(path)))
        for command in commands:
            result = cli_here(*command)
            assert result.exit_code == 2, (command, result.stdout, result.stderr)
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and problem in lines[0] and "Traceback" not in result.stderr, (command, lines)
    assert not (tmp_path / "x.html").exists()
    unfinished = cli("show", str(tmp_path / "unfinished"))  # and once as a real process
    assert unfinished.returncode == 2 and unfinished.stderr.count("\n") == 1 and "Traceback" not in unfinished.stderr


def test_texts_with_unicode_line_separators_read_back_as_one_record(tmp_path):
    """U+0085 and U+2028 are in real data (an MMLU management question); records are split on newlines only."""
    text = "Functional structures\x85 help\u2028 create"
    record = SampleRecord("t", "0", text, {"topic": "x"}, [], [], {"fits": 1.0})
    with RunSession.open(tmp_path / "nel", kind="tokens", identity={}, progress=False) as session:
        session.append([record])
        session.finish(envelope("tokens", aggregate_rows(aggregate(session.records(), ["fits"]), task="t")))
    run = open_run(tmp_path / "nel")
    assert [r.target for r in run.records] == [text]


def test_records_read_as_json_reads_them_where_a_fast_parser_would_differ(tmp_path):
    """RunDir.records() may parse with orjson; NaN, integers beyond 64 bits, lone surrogates and blank or
    whitespace-only lines still come back exactly as json.loads gives them."""
    values = [float("nan"), 2**70, -(2**64) - 1, 12345678901234567890, "a\x85b", 5e-324]
    with RunSession.open(tmp_path / "odd", kind="tokens", identity={}, progress=False) as session:
        session.append([SampleRecord("t", str(i), value, {}, [], [], {"fits": 1.0}) for i, value in enumerate(values)])
        session.finish(envelope("tokens", aggregate_rows(aggregate(session.records(), ["fits"]), task="t")))
    # a lone surrogate, escaped (lmaudit's writer cannot write one, another writer can), then blank lines
    last = SampleRecord("t", "x", "SURROGATE", {}, [], [], {"fits": 1.0}).to_json().replace("SURROGATE", "\\ud800")
    with open(tmp_path / "odd" / "samples.jsonl", "a", encoding="utf-8") as handle:
        handle.write(last + "\n  \n\x85\n")
    targets = [r.target for r in open_run(tmp_path / "odd").records]
    assert repr(targets) == repr([*values, "\ud800"])
    assert [type(t) for t in targets] == [type(v) for v in [*values, ""]]


def test_the_payload_reads_back_as_json_wrote_it():
    """The encoder may be orjson; what it cannot write (an integer beyond 64 bits) goes through json."""
    from lmaudit.report.html import decode, encode

    payload = {"big": 2**70, "text": "é\u2028\x85", "keys": {1: "one"}, "float": 0.1, "none": None}
    assert decode(encode(payload)) == json.loads(json.dumps(payload))
