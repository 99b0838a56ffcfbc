"""The llmuse estimator: bootstrap speed against the anchor's loop, and bias and coverage on simulated corpora.

    nice .venv/bin/python bench/llmuse.py speed [--target 100000 --resamples 1000 --anchor-resamples 50]
    nice .venv/bin/python bench/llmuse.py accuracy [--repetitions 200 --resamples 200] [--json out.json]

speed: Bernoulli corpora from a known P and Q (2,000 words; 10k + 10k reference sentences; `--target`
sentences at share 0.1). Times our joint bootstrap (references and target resampled together, the corrected
score solved exactly per resample in numba; and the same for the plain MLE) and our target-only bootstrap,
then the anchor's loop (dense per-sentence log P and log Q, one L-BFGS-B run per target resample) on the same
target. The anchor's loop runs `--anchor-resamples`
resamples and its time per resample is scaled to `--resamples` (it is linear in the resamples: each one is an
independent optimisation); the ratio is against that scaled time. Wall and CPU seconds are both reported: on a
shared machine the wall time measures the other jobs as much as this code.

accuracy: the issue's reference setting (2,000 words, 10k + 10k reference sentences, 5,000 target sentences)
at shares 0-0.25, `--repetitions` fresh corpora per share; for each, our corrected-score estimate with its
interval (the target's variance bootstrapped, the references' by the delta method), and the anchor's
target-only percentile interval and its midpoint, from the same draws.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from lmaudit.llmuse.anchor import anchor_bootstrap, anchor_log_probabilities  # noqa: E402
from lmaudit.llmuse.matrix import from_rows  # noqa: E402
from lmaudit.llmuse.mle import MixtureProblem  # noqa: E402
from lmaudit.llmuse.simulate import sample_mixture, sample_sentences, word_model  # noqa: E402
from lmaudit.llmuse.validation import SimulationSizes, StudySettings, headline, validate_simulated  # noqa: E402

SHIFT = 0.35  # the AI shift of each word's log-odds: where the anchor's method is about two points off


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def speed(args: argparse.Namespace) -> dict:
    model = word_model(2000, seed=0, shift=SHIFT)
    rng = np.random.default_rng(1)
    human, ai = (sample_sentences(rng, probs, 10_000) for probs in (model.p, model.q))
    # candidates in both references; the vocabulary (5 human, 3 AI sentences) chosen in the data and per resample
    keep = np.flatnonzero((np.asarray(human.sum(0)).ravel() >= 1) & (np.asarray(ai.sum(0)).ravel() >= 1))
    target_full = sample_mixture(rng, model, args.target, 0.1)
    problem = MixtureProblem(from_rows(human[:, keep]), from_rows(ai[:, keep]), from_rows(target_full[:, keep]),
                             min_human=5, min_ai=3)
    alpha = problem.mle()
    for corrected in (True, False):  # compile (cached) and warm up
        problem.bootstrap(4, np.random.default_rng(0), references=True, start=alpha, corrected=corrected)
    timings = {}
    # what `estimate` runs (the corrected share, extended), and the joint bootstrap of the plain MLE beside it
    for name, joint, corrected in (("joint", True, True), ("joint_mle", True, False), ("target_only", False, True)):
        began, cpu = time.perf_counter(), time.process_time()
        replicates = problem.bootstrap(args.resamples, np.random.default_rng(2), references=joint, start=alpha,
                                       extended=corrected, corrected=corrected)
        timings[name] = time.perf_counter() - began
        timings[f"{name}_cpu"] = time.process_time() - cpu  # all threads: what a loaded machine disturbs less
        timings[f"{name}_sd"] = float(replicates.std())
    vocabulary = keep[problem.vocabulary()]  # the anchor's dense arrays over the vocabulary only
    log_p, log_q = anchor_log_probabilities(from_rows(human[:, vocabulary]), from_rows(ai[:, vocabulary]),
                                            from_rows(target_full[:, vocabulary]))
    began, cpu = time.perf_counter(), time.process_time()
    loop = anchor_bootstrap(log_p, log_q, resamples=args.anchor_resamples, seed=3)
    anchor_seconds = time.perf_counter() - began
    anchor_cpu = time.process_time() - cpu
    scaled = anchor_seconds / args.anchor_resamples * args.resamples
    return {"target_sentences": problem.target.n, "distinct_target_rows": int(problem.target.counts.size),
            "candidates": len(keep), "vocabulary": int(problem.vocabulary().sum()), "resamples": args.resamples,
            "mle": alpha,
            "joint_seconds": round(timings["joint"], 3), "joint_mle_seconds": round(timings["joint_mle"], 3),
            "target_only_seconds": round(timings["target_only"], 3),
            "joint_cpu_seconds": round(timings["joint_cpu"], 3),
            "target_only_cpu_seconds": round(timings["target_only_cpu"], 3),
            "anchor_cpu_seconds_scaled": round(anchor_cpu / args.anchor_resamples * args.resamples, 1),
            "ratio_joint_cpu": round(anchor_cpu / args.anchor_resamples * args.resamples / timings["joint_cpu"], 1),
            "anchor_resamples_run": args.anchor_resamples, "anchor_seconds_run": round(anchor_seconds, 3),
            "anchor_seconds_scaled": round(scaled, 1), "ratio_joint": round(scaled / timings["joint"], 1),
            "ratio_target_only": round(scaled / timings["target_only"], 1),
            "anchor_median_alpha": float(np.median(loop.alphas)), "numba_threads": int(os.environ.get(
                "NUMBA_NUM_THREADS", os.cpu_count() or 1))}


def accuracy(args: argparse.Namespace) -> dict:
    began = time.perf_counter()
    rows = []
    for position, share in enumerate(StudySettings().shares):  # one share at a time, each printed when done
        rows += validate_simulated(word_model(2000, seed=0, shift=SHIFT), SimulationSizes(),
                                   StudySettings(shares=(share,), mixtures=args.repetitions,
                                                 resamples=args.resamples, seed=args.seed + 1000 * position),
                                   progress=False)
        print(json.dumps(rows[-1]), flush=True)
    return {"shift": SHIFT, "repetitions": args.repetitions, "resamples": args.resamples, "rows": rows,
            "headline": headline(rows), "seconds": round(time.perf_counter() - began, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=("speed", "accuracy"))
    parser.add_argument("--target", type=int, default=100_000)
    parser.add_argument("--resamples", type=int, default=None)
    parser.add_argument("--anchor-resamples", type=int, default=50)
    parser.add_argument("--repetitions", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    args.resamples = args.resamples or (1000 if args.part == "speed" else 200)
    before = load()
    result = speed(args) if args.part == "speed" else accuracy(args)
    result.update({"part": args.part, "load_before": before, "load_after": load(), "machine": platform.node(),
                   "cpus": os.cpu_count(), "python": platform.python_version()})
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
