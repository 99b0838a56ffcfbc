"""Built-in benchmarks from the Hugging Face hub through `datasets`, read here from folders in the hub's layout
(these machines have no hub), compared with the local copies they were made from."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lmaudit.codeeval.benchmarks import find_humaneval, find_mbpp, load_humaneval, load_mbpp
from lmaudit.core.errors import ConfigError, DataError, UnknownNameError
from lmaudit.data import DataSource, parse_source
from lmaudit.tasks import get_task
from lmaudit.tasks.mmlu import mmlu

REPO = Path(__file__).resolve().parents[2]


def _same_samples(a, b):
    assert [(s.id, s.data, s.target, s.metadata) for s in a] == [(s.id, s.data, s.target, s.metadata) for s in b]


def test_parse_source():
    assert parse_source(None) == parse_source("") == parse_source("auto") == DataSource("auto")
    assert parse_source("hub") == DataSource("hub")
    assert parse_source("hub:cais/mmlu") == DataSource("hub", "cais/mmlu")
    assert parse_source("hub:cais/mmlu@c30699e") == DataSource("hub", "cais/mmlu", "c30699e")
    assert parse_source("hub:cais/mmlu@c30699e").describe() == "hub:cais/mmlu@c30699e"
    with pytest.raises(UnknownNameError, match="Did you mean 'hub'"):
        parse_source("hubb")
    with pytest.raises(ConfigError, match="give a dataset id after 'hub:'"):
        parse_source("hub:")
    with pytest.raises(ConfigError, match="give a revision after '@'"):
        parse_source("hub:cais/mmlu@")


def test_mmlu_from_the_hub_layout_equals_the_local_copy(data_dir, mmlu_hub, mmlu_hub_subjects, hub_caches):
    hub = mmlu(num_fewshot=5, subjects=mmlu_hub_subjects, data_source=f"hub:{mmlu_hub}")
    local = mmlu(num_fewshot=5, subjects=mmlu_hub_subjects)
    config = hub.config()
    assert config["source"] == f"hub:{mmlu_hub}" and local.config()["source"] == "local"
    # two snapshots (test, dev) of the 'all' configuration, in lmaudit's cache, hashed before samples() ran
    assert len(config["data_files"]) == 2
    assert all(Path(p).is_relative_to(hub_caches / "lmaudit-cache") for p in config["data_files"])
    samples = hub.samples()
    assert hub.config() == config
    _same_samples(samples, local.samples())
    assert len(samples) == 135 + 152 + 166  # anatomy, astronomy, virology test questions
    for sample in samples[::40]:
        assert hub.requests(sample) == local.requests(sample)  # the same five shots, in the same order


def test_one_mmlu_subject_reads_its_own_hub_configuration(data_dir, mmlu_hub, hub_caches):
    hub = get_task("mmlu_virology", data_source=f"hub:{mmlu_hub}")
    assert all("/virology-test.jsonl" in p for p in hub.config()["data_files"])
    _same_samples(hub.samples(), get_task("mmlu_virology").samples())


def test_hub_snapshot_is_rewritten_only_when_rows_change(data_dir, mmlu_hub, hub_caches):
    first = mmlu(subjects=["anatomy", "virology"], data_source=f"hub:{mmlu_hub}").config()["data_files"]
    (path,) = first
    mtime = os.stat(path).st_mtime_ns
    again = mmlu(subjects=["anatomy", "virology"], data_source=f"hub:{mmlu_hub}").config()["data_files"]
    assert again == first and os.stat(path).st_mtime_ns == mtime


def test_a_hub_dataset_without_some_subjects_names_them(data_dir, mmlu_hub, hub_caches):
    with pytest.raises(DataError, match=r"no test questions for abstract_algebra, astronomy|"
                                        r"no test questions for abstract_algebra, business_ethics"):
        mmlu(data_source=f"hub:{mmlu_hub}")


def test_truthfulqa_from_the_hub_layout_equals_the_local_copy(data_dir, truthfulqa_hub, hub_caches):
    for variant in ("truthfulqa_mc1", "truthfulqa_mc2"):
        hub = get_task(variant, data_source=f"hub:{truthfulqa_hub}")
        assert hub.config()["source"] == f"hub:{truthfulqa_hub}"
        _same_samples(hub.samples(), get_task(variant).samples())


def test_code_benchmarks_from_the_hub_layout_equal_the_local_copies(data_dir, humaneval_hub, mbpp_hub, hub_caches):
    _same_samples(load_humaneval(find_humaneval(f"hub:{humaneval_hub}", None)),
                  load_humaneval(find_humaneval(None, None)))
    hub_mbpp = load_mbpp(find_mbpp(f"hub:{mbpp_hub}", None))
    _same_samples(hub_mbpp, load_mbpp(find_mbpp(None, None)))
    assert [s.id for s in hub_mbpp[:2]] == ["MBPP/1", "MBPP/2"] and len(hub_mbpp) == 974


def test_unreachable_hub_and_no_local_copy_is_one_message(tmp_path, hub_caches, monkeypatch):
    monkeypatch.delenv("LMAUDIT_DATA_DIR", raising=False)
    missing = tmp_path / "no-such-dataset"
    with pytest.raises(DataError) as info:
        get_task("truthfulqa_mc1", data_source=f"hub:{missing}")
    message = str(info.value)
    assert message.startswith(f"TruthfulQA: could not load '{missing}' (config 'generation', split 'validation') "
                              "from the Hugging Face hub: ")
    assert "point $LMAUDIT_DATA_DIR (or --data-dir) at a folder with 'truthfulqa/TruthfulQA.csv'" in message
    assert "\n" not in message


def test_no_local_copy_says_where_it_looked_and_names_the_hub(tmp_path, monkeypatch):
    monkeypatch.delenv("LMAUDIT_DATA_DIR", raising=False)
    with pytest.raises(DataError, match=r"looked in: .*truthfulqa/TruthfulQA.csv.*data_source=hub "
                                        r"\(truthfulqa/truthful_qa"):
        get_task("truthfulqa_mc2", data_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="TruthfulQA has no sample shipped"):
        get_task("truthfulqa_mc2", data_source="shipped")


def test_hub_without_the_datasets_package_says_what_to_install(data_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(DataError, match=r"needs the datasets package \(pip install 'lmaudit\[hub\]'\)\. "
                                        r"A local copy is at .*TruthfulQA.csv"):
        get_task("truthfulqa_mc1", data_source="hub")


@pytest.mark.slow
def test_cli_offline_hub_is_one_line_and_exit_2(data_dir, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "LMAUDIT_CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-m", "lmaudit", "eval", "--tasks", "mmlu", "--limit", "2",
                             "--task-arg", "data_source=hub", "--output-dir", str(tmp_path / "run")],
                            capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("error:")]
    assert len(starts) == 1, result.stderr
    message = " ".join(lines[starts[0]:])  # a console narrower than the message wraps it; the words are what count
    assert "MMLU: could not load 'cais/mmlu' (config 'all', split 'test') from the Hugging Face hub" in message
    assert f"A local copy is at {data_dir / 'mmlu'}: drop data_source=hub to use it." in message
