"""The report in a real browser (headless Chromium from Debian, through selenium): it opens from file:// with
no console errors, lists every record, its filters and search narrow the list exactly, a map node opens its
samples, and the A/B table shows the recomputed numbers. Screenshots go to runs/test-artifacts/report/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from lmaudit.maps import builtin
from lmaudit.report import build_report


def records_of(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines() if line.strip()]


def open_report(browser, path: Path) -> None:
    browser.get(path.as_uri())
    WebDriverWait(browser, 60).until(lambda d: d.execute_script("return document.body.dataset.ready === '1'"))
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == [], errors


def count(browser) -> int:
    return int(browser.find_element(By.ID, "lm-count").text)


def choose(browser, element_id: str, text: str) -> None:
    Select(browser.find_element(By.ID, element_id)).select_by_visible_text(text)


def tab(browser, name: str) -> None:
    browser.find_element(By.ID, f"tab-{name}").click()


def searchable(record: dict) -> str:
    """What the browser's search looks in: task, id, target, metadata, and every request and response text."""
    parts = [record["task"], record["sample_id"], json.dumps(record["target"]) if record["target"] is not None else ""]
    parts += [str(k) for k in record["metadata"]] + [str(v) for v in record["metadata"].values()]
    for request in record["requests"]:
        parts += [request.get("context") or "", request.get("continuation") or "", request.get("text") or ""]
        parts.append("\n\n".join(f"[{m['role']}] {m['content']}" for m in request.get("messages") or [])
                     or request.get("prompt") or "")
    parts += [response.get("text") or "" for response in record["responses"]]
    return "\n".join(parts).lower()


@pytest.fixture(scope="module")
def mmlu_report(mmlu_runs, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("html") / "mmlu.html"
    build_report(list(mmlu_runs), path)
    return path


def test_mmlu_report_opens_lists_every_record_and_filters_exactly(browser, mmlu_report, mmlu_runs, artifacts):
    a, b = records_of(mmlu_runs[0]), records_of(mmlu_runs[1])
    open_report(browser, mmlu_report)
    written = json.loads((mmlu_runs[0] / "results.json").read_text())["metrics"][0]
    first_row = browser.find_elements(By.CSS_SELECTOR, ".run-card[data-run='0'] table.lm-summary tbody tr td")
    assert [c.text for c in first_row[:4]] == ["mmlu", "all", "acc", f"{written['value']:.4f}"]
    browser.save_screenshot(str(artifacts / "mmlu-summary.png"))

    tab(browser, "samples")
    assert int(browser.find_element(By.ID, "lm-total").text) == count(browser) == len(a) + len(b)
    rendered = browser.find_elements(By.CSS_SELECTOR, "#lm-rows .row")
    assert 0 < len(rendered) < count(browser)  # virtualised: only the rows in view exist
    choose(browser, "f-run", "1. smollm2 (mmlu-0shot)")
    choose(browser, "f-group", "subject=anatomy")
    anatomy = [r for r in a if r["metadata"]["subject"] == "anatomy"]
    assert count(browser) == len(anatomy)
    choose(browser, "f-outcome", "correct")
    assert count(browser) == sum(1 for r in anatomy if r["scores"]["acc"] == 1.0)
    browser.find_element(By.ID, "f-reset").click()
    assert count(browser) == len(a) + len(b)
    choose(browser, "f-metric", "acc")
    browser.find_element(By.ID, "f-min").send_keys("0.5")
    assert count(browser) == sum(1 for r in a + b if r["scores"]["acc"] >= 0.5)
    browser.find_element(By.ID, "f-reset").click()

    question = a[5]["requests"][0]["context"].split("\n\n")[-1]
    word = max((w.strip(".,?:;()").lower() for w in question.split()), key=len)
    expected = sum(1 for r in a + b if word in searchable(r))
    browser.find_element(By.ID, "f-search").send_keys(word)
    WebDriverWait(browser, 10).until(lambda d: count(d) == expected)
    assert 0 < expected < len(a) + len(b)
    browser.find_element(By.CSS_SELECTOR, "#lm-rows .row").click()
    assert "·" in browser.find_element(By.ID, "detail-id").text
    assert "log-likelihood of" in browser.find_element(By.ID, "lm-detail").text
    browser.save_screenshot(str(artifacts / "mmlu-samples.png"))

    browser.find_element(By.ID, "f-reset").click()
    browser.execute_script("document.getElementById('lm-list').scrollTop = 1e9")
    last = WebDriverWait(browser, 10).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, f"#lm-rows .row[data-i='{len(a) + len(b) - 1}']"))
    assert last[0].is_displayed()


def test_ab_table_matches_a_recomputation_and_flips_open_in_the_browser(browser, mmlu_report, mmlu_runs, artifacts):
    a = {r["sample_id"]: r["scores"]["acc"] for r in records_of(mmlu_runs[0])}
    b = {r["sample_id"]: r["scores"]["acc"] for r in records_of(mmlu_runs[1])}
    diffs = [b[s] - a[s] for s in a]
    open_report(browser, mmlu_report)
    tab(browser, "ab")
    cells = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "table.lm-ab tbody tr")[0].find_elements(
        By.TAG_NAME, "td")]
    assert cells[:4] == ["mmlu", "all", "acc", str(len(a))]
    assert cells[4] == f"{sum(a.values()) / len(a):.4f}" and cells[5] == f"{sum(b.values()) / len(b):.4f}"
    assert cells[6] == f"{sum(diffs) / len(diffs):.4f}"
    assert cells[9:] == [str(diffs.count(1.0)), str(diffs.count(-1.0))]
    browser.save_screenshot(str(artifacts / "mmlu-ab.png"))
    flipped = sum(1 for d in diffs if d != 0)
    browser.find_element(By.ID, "ab-show-0").click()
    assert count(browser) == 2 * flipped  # each flipped question, in both runs


def test_a_map_node_opens_its_samples(browser, mmlu_report, mmlu_runs, artifacts):
    a, b = records_of(mmlu_runs[0]), records_of(mmlu_runs[1])
    math_subjects = {s for s, path in builtin("mmlu").paths.items() if path[1] == "math"}
    open_report(browser, mmlu_report)
    tab(browser, "map")
    browser.save_screenshot(str(artifacts / "mmlu-map.png"))
    browser.find_element(By.CSS_SELECTOR, "g.lm-label[data-node='STEM / math']").click()
    assert browser.find_element(By.ID, "view-samples").is_displayed()
    assert count(browser) == sum(1 for r in a + b if r["metadata"]["subject"] in math_subjects)
    tab(browser, "map")
    browser.find_element(By.CSS_SELECTOR, "g.lm-value[data-node='STEM / math'][data-run='1']").click()
    assert count(browser) == sum(1 for r in b if r["metadata"]["subject"] in math_subjects)
    browser.find_element(By.ID, "chip-node").click()
    assert count(browser) == len(a) + len(b)


def test_redteam_report_filters_by_judge_verdict(browser, redteam_run, tmp_path, artifacts):
    records = records_of(redteam_run)
    path = tmp_path / "redteam.html"
    build_report([redteam_run], path)
    open_report(browser, path)
    browser.save_screenshot(str(artifacts / "redteam-summary.png"))
    tab(browser, "samples")
    assert count(browser) == len(records)
    choose(browser, "f-judge", "rules")
    # Which verdicts occur depends on what the 135M model wrote; every one that occurs must filter exactly.
    verdicts = {r["judges"]["rules"]["jailbroken"] for r in records}
    shown = 0
    for verdict in sorted(verdicts):
        choose(browser, "f-verdict", "jailbroken" if verdict else "not jailbroken")
        assert count(browser) == sum(1 for r in records if r["judges"]["rules"]["jailbroken"] is verdict)
        shown += count(browser)
    assert shown == len(records)
    last = sorted(verdicts)[-1]
    task = next(r["task"] for r in records if r["judges"]["rules"]["jailbroken"] is last)
    choose(browser, "f-task", task)
    assert count(browser) == sum(1 for r in records if r["task"] == task
                                 and r["judges"]["rules"]["jailbroken"] is last) > 0
    browser.find_element(By.CSS_SELECTOR, "#lm-rows .row").click()
    assert "Judge verdicts" in browser.find_element(By.ID, "lm-detail").text
    browser.save_screenshot(str(artifacts / "redteam-samples.png"))
