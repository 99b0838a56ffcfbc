"""Real run directories made once per test session: smollm2 on MMLU 0-shot and 1-shot (same questions, so they
pair for A/B), and a red-team run on JBB-Behaviors; plus a headless Chromium driven by selenium.

Sizes keep the whole folder within a few minutes on a shared 2-core machine; bench/report.py does the
500-question and 14,042-sample figures.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

MMLU_LIMIT = 57  # one question per subject: every node of the MMLU map has samples
REDTEAM_LIMIT = 5  # five JBB categories, one behaviour each
ARTIFACTS = Path(os.environ.get("LMAUDIT_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "runs" /
                                "test-artifacts")) / "report"


@pytest.fixture(scope="session")
def one_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # shared 2-core runners: spinning OpenMP threads make tiny calls much slower
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("report-runs")


@pytest.fixture(scope="session")
def cache(artifacts) -> Path:
    """A response cache kept between sessions (under runs/, ignored by git): a rerun answers from it."""
    return artifacts / "responses.sqlite"


@pytest.fixture(scope="session")
def mmlu_runs(runs_root, cache, smollm2, one_thread, data_dir) -> tuple[Path, Path]:
    """(0-shot, 1-shot) eval runs of the real model on the same MMLU questions."""
    from lmaudit.runner import evaluate
    from lmaudit.tasks import get_task

    zero = evaluate(smollm2, [get_task("mmlu", num_fewshot=0)], runs_root / "mmlu-0shot", limit=MMLU_LIMIT,
                    cache_path=cache, progress=False, model_spec="smollm2",
                    options={"task_args": {"num_fewshot": 0}})
    one = evaluate(smollm2, [get_task("mmlu", num_fewshot=1)], runs_root / "mmlu-1shot", limit=MMLU_LIMIT,
                   cache_path=cache, progress=False, model_spec="smollm2",
                   options={"task_args": {"num_fewshot": 1}})
    return zero.run_dir, one.run_dir


@pytest.fixture(scope="session")
def redteam_run(runs_root, cache, smollm2, one_thread, data_dir) -> Path:
    """Present and past-tense attacks, one attempt, two judges, smollm2 as target and attacker."""
    from lmaudit.safety import RedTeamConfig, TargetSettings, load_prompts, make_attack, make_judges, run_redteam

    result = run_redteam(smollm2, load_prompts("jbb"), make_judges(["rules", "rules_short"], "jailbroken"),
                         [make_attack("present"), make_attack("past", max_tokens=32)], runs_root / "redteam",
                         attacker=smollm2, config=RedTeamConfig(attempts=1, target=TargetSettings(32, 0.0),
                                                                limit=REDTEAM_LIMIT),
                         specs={"target": "smollm2", "attacker": "smollm2"}, cache_path=cache)
    return result.run_dir


@pytest.fixture
def copy_run(tmp_path):
    """A copy of a run directory to damage."""
    def make(source: Path, name: str = "copy") -> Path:
        target = tmp_path / name
        shutil.copytree(source, target, ignore=shutil.ignore_patterns(".lock"))
        return target

    return make


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium from the Debian packages (scripts/system-deps.sh installs them)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for binary in ("/usr/bin/chromium", "/usr/bin/chromedriver"):
        if not Path(binary).exists():
            pytest.fail(f"{binary} is missing: run scripts/system-deps.sh (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1500,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    yield driver
    driver.quit()
