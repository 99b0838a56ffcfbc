"""How fast a report builds and opens, how big it is, and how much browser memory it takes.

    LMAUDIT_DATA_DIR=../shared/data OMP_NUM_THREADS=1 .venv/bin/python bench/report.py [--real 500]

1. Full MMLU (14,042 questions) x 2 runs, made by the real runner (`lmaudit.runner.evaluate`) on the real MMLU
   test set, so the records have MMLU's real prompts, ids and groups. The two "models" are deterministic hash
   scorers (log-probabilities from a hash of the request; the second agrees with the first on 80% of the
   questions): a 135M model takes hours for 2 x 14,042 questions on this 2-core machine, and the report's
   cost depends on the records, not on who scored them. Targets: build < 3 s, file < 5 MB, first screen in
   Chromium < 1.5 s.
2. 100,000 synthetic samples (prompts and answers cut from the arXiv abstracts in the data folder): opens in
   < 3 s with < 500 MB of browser memory. Memory is read three ways: the proportional set size (shared pages
   split among the processes that map them) of every Chromium process, of the page's renderer process, and
   the page's JS heap as Chromium reports it; and the same for an empty page, Chromium's own cost.
3. `--real N`: the bundled smollm2 on N MMLU questions 0-shot and a red-team run on JBB; their report is opened
   and checked in Chromium (row count = records, a group filter and a search narrow it exactly).
Runs are kept under runs/bench-report/ and reused; figures go to docs/bench-report.json. Each time is given as
wall time and as CPU time (the build's process, or the Chromium processes while the page opens), which a machine
shared with other jobs disturbs less.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

from machine import uptime

from lmaudit.core.results import aggregate_rows, envelope
from lmaudit.core.types import Generation, GenerateRequest, LoglikelihoodRequest, LoglikelihoodResult, SampleRecord
from lmaudit.data.tables import find_dataset
from lmaudit.report import build_report
from lmaudit.runner import RunSession, aggregate, evaluate
from lmaudit.tasks import get_task

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs" / "bench-report"
OUT = ROOT / "docs" / "bench-report.json"


class HashScorer:
    """Deterministic log-probabilities from a hash of the request; `agree` of the contexts score as `base`."""

    def __init__(self, seed: int, base: int | None = None, agree: float = 0.8):
        self.seed, self.base, self.agree = seed, base, agree
        self.name = f"hash-scorer-{seed}"

    @staticmethod
    def _hash(*parts: object) -> int:
        return int.from_bytes(hashlib.sha256("\x00".join(map(str, parts)).encode()).digest()[:8], "big")

    def fingerprint(self) -> str:
        return f"bench-hash-scorer/{self.seed}/{self.base}/{self.agree}"

    def loglikelihood(self, requests: list[LoglikelihoodRequest]) -> list[LoglikelihoodResult]:
        out = []
        for request in requests:
            seed = self.seed
            if self.base is not None and self._hash("agree", request.context) % 1000 < self.agree * 1000:
                seed = self.base
            value = -0.5 - (self._hash(seed, request.context, request.continuation) % 10_000) / 1000
            out.append(LoglikelihoodResult(value, False, 1))
        return out

    def generate(self, requests: list[GenerateRequest]) -> list[Generation]:
        raise NotImplementedError("the bench scorer answers log-likelihood requests only")


def full_mmlu_runs() -> list[Path]:
    dirs = [RUNS / "mmlu-full-a", RUNS / "mmlu-full-b"]
    models = [HashScorer(1), HashScorer(2, base=1)]
    for path, model in zip(dirs, models):
        if not (path / "results.json").exists():
            began = time.perf_counter()
            evaluate(model, [get_task("mmlu")], path, cache_path=RUNS / "cache.sqlite", model_spec=model.name,
                     options={"task_args": {}})
            print(f"made {path} in {time.perf_counter() - began:.0f} s", flush=True)
    return dirs


def synthetic_run(n: int) -> Path:
    path = RUNS / f"synthetic-{n}"
    if (path / "results.json").exists():
        return path
    folder = find_dataset("arXiv", "arxiv")
    texts = []
    for name, column in (("arxiv_data_3397_clopezvice.csv", "abstract"), ("arxiv_data_1000_tiagoft.csv", "summaries")):
        with open(folder / name, encoding="utf-8") as handle:
            texts += [" ".join(row[column].split()) for row in csv.DictReader(handle)]
    records = []
    for i in range(n):
        text = texts[i % len(texts)]
        start = (i // len(texts)) * 37 % max(1, len(text) - 260)
        prompt = f"Question {i}: what does this passage claim? {text[start:start + 200]}"
        answer = texts[(i * 7 + 3) % len(texts)][:100]
        records.append(SampleRecord(
            task="synthetic_qa", sample_id=str(i), target=answer[:20],
            metadata={"topic": f"topic_{i % 40}", "source": ("arxiv", "news", "forum")[i % 3]},
            requests=[{"key": f"{i:x}", "kind": "generate", "prompt": prompt, "messages": None,
                       "max_tokens": 64, "temperature": 0.0, "seed": None, "stop": []}],
            responses=[{"kind": "generate", "text": answer, "finish_reason": "stop", "token_logprobs": None}],
            scores={"exact": float(i % 3 == 0), "f1": round((i * 37 % 100) / 100, 2)},
            roles=["target"],
            judges={"rules": {"jailbroken": i % 5 == 0, "refused": None, "parsed": True, "label": "x", "score": None}}))
    with RunSession.open(path, kind="synthetic", identity={"n": n}, progress=False) as session:
        session.append(records)
        summary = aggregate(records, ["exact", "f1"], ["topic", "source"])
        session.finish(envelope("synthetic", aggregate_rows(summary, task="synthetic_qa")))
    return path


def real_runs(limit: int) -> list[Path]:
    from lmaudit.models import load_model
    from lmaudit.safety import RedTeamConfig, TargetSettings, load_prompts, make_attack, make_judges, run_redteam

    mmlu, redteam = RUNS / f"smollm2-mmlu-{limit}", RUNS / "smollm2-redteam"
    if (mmlu / "results.json").exists() and (redteam / "results.json").exists():
        return [mmlu, redteam]
    model = load_model("smollm2")
    evaluate(model, [get_task("mmlu")], mmlu, limit=limit, model_spec="smollm2", options={"task_args": {}})
    run_redteam(model, load_prompts("jbb"), make_judges(["rules", "rules_short"], "jailbroken"),
                [make_attack("present"), make_attack("past", max_tokens=40)], redteam, attacker=model,
                config=RedTeamConfig(attempts=1, target=TargetSettings(48, 0.0), limit=10),
                specs={"target": "smollm2", "attacker": "smollm2"})
    return [mmlu, redteam]


# -- the browser ------------------------------------------------------------------------------------

def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1500,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo += children.get(current, [])
    return out


def browser_pss_mb(driver) -> tuple[float, float]:
    """Proportional set size (shared pages split among the processes that map them) of all of chromedriver's
    Chromium processes, and of the largest renderer (the page's process)."""
    total, renderer = 0, 0
    for pid in descendants(driver.service.process.pid)[1:]:  # the driver itself is not the browser
        try:
            pss = sum(int(line.split()[1]) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
                      if line.startswith("Pss:"))
            kind = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        total += pss
        if b"--type=renderer" in kind:
            renderer = max(renderer, pss)
    return total / 1024, renderer / 1024


def browser_cpu_s(driver) -> float:
    """CPU seconds (user + system) the Chromium processes have used so far: on a machine shared with other
    jobs, less disturbed than wall time."""
    ticks = 0
    for pid in descendants(driver.service.process.pid)[1:]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def open_timed(driver, path: Path) -> dict[str, float]:
    cpu = browser_cpu_s(driver)
    began = time.perf_counter()
    driver.get(path.as_uri())
    while not driver.execute_script("return document.body.dataset.ready === '1'"):
        time.sleep(0.01)
    wall = time.perf_counter() - began
    cpu = browser_cpu_s(driver) - cpu
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    if errors:
        raise SystemExit(f"console errors in {path}: {errors}")
    ready = driver.execute_script("return window.lmReport.readyAt") / 1000
    driver.execute_cdp_cmd("Performance.enable", {})
    metrics = {m["name"]: m["value"] for m in driver.execute_cdp_cmd("Performance.getMetrics", {})["metrics"]}
    total, renderer = browser_pss_mb(driver)
    return {"wall_s": wall, "page_ready_s": ready, "browser_cpu_s": cpu,
            "js_heap_mb": metrics.get("JSHeapUsedSize", 0) / 2**20,
            "browser_pss_mb": total, "renderer_pss_mb": renderer,
            "page_timings_ms": driver.execute_script("return window.lmReport.timings || {}")}


def measure(runs: list[Path], name: str, repeats: int, builds_wanted: int | None = None) -> dict[str, object]:
    path = RUNS / f"{name}.html"
    load_before = uptime()
    builds, cpu = [], []
    for _ in range(builds_wanted or repeats):
        began = time.process_time()
        report = build_report(runs, path)
        builds.append(report.seconds)
        cpu.append(time.process_time() - began)
    opens = []
    for _ in range(repeats):
        driver = browser()
        try:
            opens.append(open_timed(driver, path))
        finally:
            driver.quit()
    return {"samples": report.samples, "runs": len(runs), "bytes": report.bytes, "mb": report.bytes / 1e6,
            "build_s": statistics.median(builds), "build_s_all": builds, "build_cpu_s": statistics.median(cpu),
            "first_screen_s": statistics.median(o["wall_s"] for o in opens),
            "first_screen_browser_cpu_s": statistics.median(o["browser_cpu_s"] for o in opens),
            "page_ready_s": statistics.median(o["page_ready_s"] for o in opens),
            "browser_pss_mb": max(o["browser_pss_mb"] for o in opens),
            "renderer_pss_mb": max(o["renderer_pss_mb"] for o in opens),
            "js_heap_mb": max(o["js_heap_mb"] for o in opens), "opens": opens, "checks": report.checks,
            "uptime": [load_before, uptime()]}


def empty_page_memory() -> dict[str, float]:
    """The same measurements on a page with nothing in it: what headless Chromium costs by itself."""
    path = RUNS / "empty.html"
    path.write_text("<html><body><script>window.lmReport = {readyAt: performance.now()};"
                    "document.body.dataset.ready = '1';</script></body></html>", encoding="utf-8")
    driver = browser()
    try:
        return open_timed(driver, path)
    finally:
        driver.quit()


def check_real(runs: list[Path]) -> dict[str, object]:
    """The acceptance checks on real runs: rows = records, a group filter and a search narrow the list."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    path = RUNS / "real.html"
    report = build_report(runs, path)
    records = [json.loads(line) for run in runs for line in (run / "samples.jsonl").read_text().splitlines()
               if line.strip()]
    driver = browser()
    try:
        timing = open_timed(driver, path)
        driver.find_element(By.ID, "tab-samples").click()
        total = int(driver.find_element(By.ID, "lm-count").text)
        Select(driver.find_element(By.ID, "f-group")).select_by_visible_text("subject=astronomy")
        astronomy = int(driver.find_element(By.ID, "lm-count").text)
        driver.find_element(By.ID, "f-reset").click()
        driver.find_element(By.ID, "f-search").send_keys("planet")
        time.sleep(0.5)
        searched = int(driver.find_element(By.ID, "lm-count").text)
    finally:
        driver.quit()
    expected_search = sum(1 for r in records if "planet" in json.dumps(r, ensure_ascii=False).lower())
    return {"records": len(records), "rows_listed": total,
            "astronomy": [astronomy, sum(1 for r in records if r["metadata"].get("subject") == "astronomy")],
            "search_planet": [searched, expected_search], "checks": report.checks, "bytes": report.bytes,
            **timing}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", type=int, default=0, help="also run smollm2 on this many MMLU questions")
    parser.add_argument("--synthetic", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mmlu-only", action="store_true",
                        help="only the 2 x 14,042 MMLU report (a minute, not ten); its entry in the figures file is "
                             "replaced and the others are kept")
    args = parser.parse_args()
    RUNS.mkdir(parents=True, exist_ok=True)
    if args.mmlu_only:
        figures = json.loads(OUT.read_text(encoding="utf-8")) if OUT.exists() else {}
    else:
        figures = {"uptime_before": uptime(), "python": sys.version.split()[0], "cpus": os.cpu_count(),
                   "empty_page": empty_page_memory()}
    figures["mmlu_full_x2"] = measure(full_mmlu_runs(), "mmlu-full-x2", args.repeats)
    print(json.dumps(figures["mmlu_full_x2"], indent=1), flush=True)
    if not args.mmlu_only:
        # the 100k build has no target (the recomputation bootstraps 100k scores per row, as the run did):
        # built once
        figures[f"synthetic_{args.synthetic}"] = measure([synthetic_run(args.synthetic)], "synthetic", args.repeats, 1)
        print(json.dumps(figures[f"synthetic_{args.synthetic}"], indent=1), flush=True)
        if args.real:
            figures[f"smollm2_mmlu_{args.real}_and_redteam"] = check_real(real_runs(args.real))
            print(json.dumps(figures[f"smollm2_mmlu_{args.real}_and_redteam"], indent=1), flush=True)
        figures["uptime_after"] = uptime()
    OUT.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
