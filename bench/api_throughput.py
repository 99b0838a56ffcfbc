"""Throughput of the `openai` backend against a server that answers after a fixed latency, beside lm-eval.

A server that takes `latency` seconds per request and runs any number at once can answer at most
in_flight / latency requests per second; this reports each client's throughput as a share of that ideal, at
1, 8, 64 and 256 requests in flight: lmaudit's backend (model.generate over one call) with each of its HTTP
clients (http=aiohttp, the default, and http=sdk, the official openai SDK; the last column compares the default
with lm-eval) and lm-eval 0.4.13's `local-completions` model
(generate_until, num_concurrent = in flight) on the same server, in the same run.

The server is lmaudit.testing.stubserver in its own process on 127.0.0.1 (no model: deterministic words).

Each client runs --repeats times per level (the order rotating) and its median rate counts, since a single run
of a few seconds moves by about a point on a shared machine.

`--against SRC` instead compares this tree's default client with the one in another source tree (SRC is its
`src` folder, e.g. an export of the previous commit): each trial runs in a fresh interpreter, the two trees
alternate, and the medians of the share of the ideal and of the client's CPU time per request are reported. On a
loaded machine the absolute shares fall with the load; an A/B in the same minutes is what tells a code change
from the load.

    python bench/api_throughput.py [--latency 0.5] [--rounds 16] [--levels 1,8,64,256] [--repeats 3] [--json out.json]
    python bench/api_throughput.py --against /tmp/previous/src --levels 64,256 --repeats 8
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))

from lmaudit.models.openai import Options  # noqa: E402  (after the path is set)


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "lmaudit.testing.stubserver", "--port", "0", "--latency", str(latency)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONPATH": str(SRC)})
    assert process.stdout is not None
    line = process.stdout.readline()
    if "http://" not in line:
        process.kill()
        raise RuntimeError(f"stub server did not start: {line!r}")
    return process, line.split()[-1]  # .../v1


def prompts(tag: str, count: int) -> list[str]:
    return [f"{tag} request {i}: go on" for i in range(count)]


def run_lmaudit(url: str, in_flight: int, count: int, http: str, tag: str) -> float:
    from lmaudit.core.types import GenerateRequest
    from lmaudit.models import load_model

    model = load_model(f"openai:stub@{url}", max_concurrency=in_flight, http=http)
    model.generate([GenerateRequest(prompt="warm-up", max_tokens=4)])  # start the loop and the clients
    requests = [GenerateRequest(prompt=p, max_tokens=4) for p in prompts(f"lmaudit-{http}-{in_flight}-{tag}", count)]
    began = time.perf_counter()
    out = model.generate(requests)
    seconds = time.perf_counter() - began
    model.close()
    assert len(out) == count and all(g.text for g in out)
    return count / seconds


# One trial of the default client in a fresh interpreter: prints requests per second and CPU ms per request.
TRIAL = """
import sys, time
from lmaudit.core.types import GenerateRequest
from lmaudit.models import load_model
url, in_flight, count, tag = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
model = load_model(f"openai:stub@{url}", max_concurrency=in_flight)
model.generate([GenerateRequest(prompt="warm-up", max_tokens=4)])
requests = [GenerateRequest(prompt=f"{tag} request {i}: go on", max_tokens=4) for i in range(count)]
cpu, began = time.process_time(), time.perf_counter()
out = model.generate(requests)
seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
assert len(out) == count and all(g.text for g in out)
print(count / seconds, 1000 * cpu / count)
"""


def compare_trees(url: str, levels: list[int], rounds: int, repeats: int, latency: float,
                  against: Path) -> list[dict]:
    trees = {"this tree": SRC, f"against {against}": against}
    rows = []
    for in_flight in levels:
        count, ideal = rounds * in_flight, in_flight / latency
        shares: dict[str, list[float]] = {name: [] for name in trees}
        cpu_ms: dict[str, list[float]] = {name: [] for name in trees}
        for repeat in range(repeats):
            for name in list(trees)[::1 if repeat % 2 == 0 else -1]:
                done = subprocess.run([sys.executable, "-c", TRIAL, url, str(in_flight), str(count), f"ab{repeat}"],
                                      capture_output=True, text=True, check=True,
                                      env={**os.environ, "PYTHONPATH": str(trees[name])})
                rate, cpu = map(float, done.stdout.split())
                shares[name].append(rate / ideal)
                cpu_ms[name].append(cpu)
        row = {"in_flight": in_flight, "requests": count, "load_average": os.getloadavg()[0],
               **{name: {"share": round(statistics.median(shares[name]), 3),
                         "shares": [round(v, 3) for v in shares[name]],
                         "cpu_ms_per_request": round(statistics.median(cpu_ms[name]), 3),
                         "cpu_ms": [round(v, 3) for v in cpu_ms[name]]} for name in trees}}
        rows.append(row)
        print(f"in flight {in_flight:>4}: " + " | ".join(
            f"{name} {row[name]['share']:.1%} of the ideal, {row[name]['cpu_ms_per_request']:.3f} ms CPU/request"
            for name in trees) + f" | load {row['load_average']:.1f}", flush=True)
    return rows


def run_lm_eval(url: str, in_flight: int, count: int, tag: str) -> float:
    from lm_eval.api.instance import Instance
    from lm_eval.models.openai_completions import LocalCompletionsAPI

    model = LocalCompletionsAPI(base_url=f"{url}/completions", model="stub", num_concurrent=in_flight,
                                tokenizer_backend=None, tokenized_requests=False, max_retries=3, timeout=120)
    requests = [Instance(request_type="generate_until", doc={}, idx=i,
                         arguments=(p, {"until": ["\n\n"], "max_gen_toks": 4}))
                for i, p in enumerate(prompts(f"lmeval-{in_flight}-{tag}", count))]
    began = time.perf_counter()
    out = model.generate_until(requests, disable_tqdm=True)
    seconds = time.perf_counter() - began
    assert len(out) == count and all(out)
    return count / seconds


def compare_clients(url: str, levels: list[int], rounds: int, repeats: int, latency: float) -> list[dict]:
    """lmaudit's two clients and lm-eval, `repeats` times each per level in rotating order; medians count."""
    rows = []
    for in_flight in levels:
        count = rounds * in_flight
        ideal = in_flight / latency
        runners = {"lmaudit http=sdk": lambda tag: run_lmaudit(url, in_flight, count, "sdk", tag),
                   "lmaudit http=aiohttp": lambda tag: run_lmaudit(url, in_flight, count, "aiohttp", tag),
                   "lm-eval local-completions": lambda tag: run_lm_eval(url, in_flight, count, tag)}
        trials: dict[str, list[float]] = {name: [] for name in runners}
        names = list(runners)
        for repeat in range(repeats):
            for name in names[repeat % len(names):] + names[:repeat % len(names)]:
                trials[name].append(runners[name](f"r{repeat}"))
        rates = {name: statistics.median(values) for name, values in trials.items()}
        default = Options().http
        default_rate, lm_eval_rate = rates[f"lmaudit http={default}"], rates["lm-eval local-completions"]
        verdict = "ahead of" if default_rate > lm_eval_rate else "behind"
        rows.append({"in_flight": in_flight, "requests": count, "ideal_rps": ideal, "default_client": default,
                     "default_over_lm_eval": round(default_rate / lm_eval_rate, 3),
                     **{name: {"rps": round(rate, 2), "share": round(rate / ideal, 3),
                               "shares": [round(value / ideal, 3) for value in trials[name]]}
                        for name, rate in rates.items()}})
        print(f"in flight {in_flight:>4} (ideal {ideal:6.1f} req/s): " + " | ".join(
            f"{name} {rate:6.1f} ({rate / ideal:6.1%})" for name, rate in rates.items())
            + f" | default ({default}) {verdict} lm-eval, x{default_rate / lm_eval_rate:.3f}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.5, help="server seconds per request")
    parser.add_argument("--rounds", type=int, default=16, help="requests per level = rounds x in-flight")
    parser.add_argument("--levels", default="1,8,64,256")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each client per level; the median counts")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--against", type=Path, help="A/B the default client with the src folder of another tree")
    args = parser.parse_args()
    logging.disable(logging.INFO)  # lm-eval logs every batch
    os.environ.setdefault("TQDM_DISABLE", "1")
    levels = [int(level) for level in args.levels.split(",")]
    load_before = os.getloadavg()[0]
    server, url = start_server(args.latency)
    try:
        if args.against:
            rows = compare_trees(url, levels, args.rounds, args.repeats, args.latency, args.against.resolve())
        else:
            rows = compare_clients(url, levels, args.rounds, args.repeats, args.latency)
    finally:
        server.terminate()
        server.wait(timeout=10)
    if args.json:
        loads = {"load_average_start": load_before, "load_average_end": os.getloadavg()[0]}  # a shared machine
        args.json.write_text(json.dumps({"latency_s": args.latency, **loads, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
