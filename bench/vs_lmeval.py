"""lmaudit vs lm-evaluation-harness on MMLU with the bundled model: same numbers, and how much faster.

    LMAUDIT_DATA_DIR=../shared/data .venv/bin/python bench/vs_lmeval.py [--subjects 10] [--per-subject 5]

For 0-shot and 5-shot it runs both tools on the same questions and weights (the dequantised SmolLM2 folder),
compares every per-choice log-likelihood (tolerance 1e-4) and the accuracies (must be equal), and times both
(model loading excluded; lmaudit with an empty response cache). It also measures the machine's fp32 matmul peak
and prints the share of it each tool achieves (executed model FLOPs / time / peak): the linear layers' and the
output head's, then also attention's (the (query, key) pairs each tool computes).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

import torch

from lmaudit.interop.lmeval import results_by_question, run_lmeval_mmlu
from lmaudit.models.hf import load_smollm2
from lmaudit.runner import evaluate
from lmaudit.tasks.mmlu import SUBJECTS, mmlu

TOLERANCE = 1e-4


def matmul_peak(repeats: int = 3) -> float:
    """The best fp32 matmul rate over a few shapes (squares and the decoder's own), each timed `repeats` times:
    one 2048 square read 50-65 GFLOP/s from run to run on the same idle core, lower than the model's shapes."""
    best = 0.0
    for m, k, n in [(1024, 1024, 1024), (2048, 2048, 2048), (1024, 576, 1536), (1024, 1536, 576)]:
        a, b = torch.randn(m, k), torch.randn(k, n)
        a @ b
        calls = max(3, int(2e10 // (2 * m * k * n)))
        for _ in range(repeats):
            began = time.perf_counter()
            for _ in range(calls):
                a @ b
            best = max(best, 2 * m * k * n * calls / (time.perf_counter() - began))
    return best


def flops_per_token(model) -> tuple[float, float, float]:
    """(decoder FLOPs per token, output-head FLOPs per position, attention FLOPs per (query, key) pair over all
    layers: scores and weighted values, 2 x 2 x head dim per head), from the configuration and parameter counts."""
    config = model.module.config
    head = 2 * config.hidden_size * config.vocab_size
    decoder_params = sum(p.numel() for n, p in model.module.named_parameters() if "embed" not in n and "lm_head" not in n)
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    pair = 4 * head_dim * config.num_attention_heads * config.num_hidden_layers
    return 2 * decoder_params, head, pair


def lmeval_executed_flops(model, task, samples, per_token: float, head: float, pair: float) -> tuple[float, float]:
    """(matrix-product FLOPs, attention FLOPs): lm-eval runs each distinct context in full, causally, and the
    output head over every position of it (its batches' padding not counted)."""
    contexts = {task.context(s) for s in samples}
    lengths = [len(model.encode(c.rstrip())) for c in contexts]
    return sum(lengths) * (per_token + head), sum(n * (n + 1) // 2 for n in lengths) * pair


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subjects", type=int, default=10)
    parser.add_argument("--per-subject", type=int, default=5)
    parser.add_argument("--shots", default="0,5")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads for both tools (0: torch's default). On a machine shared with other "
                             "jobs use 1: multi-threaded ops stall on descheduled threads")
    args = parser.parse_args()
    subjects = SUBJECTS[:: max(1, len(SUBJECTS) // args.subjects)][: args.subjects]
    model = load_smollm2()
    folder = model.module.name_or_path
    report = {"subjects": subjects, "per_subject": args.per_subject, "runs": {}}
    if args.threads:
        torch.set_num_threads(args.threads)
    report["threads"] = torch.get_num_threads()
    peak = matmul_peak()
    report["peak_flops"] = peak
    per_token, head, pair = flops_per_token(model)
    ok = True
    for shots in [int(s) for s in args.shots.split(",")]:
        task = mmlu(num_fewshot=shots, subjects=subjects)
        with tempfile.TemporaryDirectory() as tmp:
            samples = [s for s in task.samples() if int(s.id.split("/")[1]) < args.per_subject]
            before = dict(model.stats)
            began = time.perf_counter()
            ours = evaluate(model, [_limited(task, samples)], f"{tmp}/run", cache_path=f"{tmp}/cache.sqlite",
                            progress=False)
            our_seconds = time.perf_counter() - began
            decoder_tokens = model.stats["decoder_tokens"] - before["decoder_tokens"]
            head_positions = model.stats["head_positions"] - before["head_positions"]
            attention_pairs = model.stats["attention_pairs"] - before["attention_pairs"]
            from lmaudit.runner import RunDir
            our_lls = results_by_question(RunDir(f"{tmp}/run").records())
        theirs = run_lmeval_mmlu(folder, subjects, num_fewshot=shots, limit=args.per_subject, batch_size=8)
        worst = max(abs(a - b[0]) for key, lls in our_lls.items() for a, b in zip(lls, theirs.loglikelihoods[key]))
        our_acc = ours.results["tasks"]["mmlu"]["metrics"]["acc"]["value"]
        their_acc = sum(theirs.accuracy.values()) / len(theirs.accuracy)
        n = len(our_lls)
        our_flops = decoder_tokens * per_token + head_positions * head
        our_attention = attention_pairs * pair
        their_flops, their_attention = lmeval_executed_flops(model, task, samples, per_token, head, pair)
        row = {
            "questions": n, "max_abs_loglik_diff": worst, "acc_lmaudit": our_acc, "acc_lmeval": their_acc,
            "lmaudit_seconds": our_seconds, "lmeval_seconds": theirs.seconds,
            "lmaudit_qps": n / our_seconds, "lmeval_qps": n / theirs.seconds,
            "speedup": theirs.seconds / our_seconds,
            "lmaudit_peak_share": our_flops / our_seconds / peak,
            "lmeval_peak_share": their_flops / theirs.seconds / peak,
            "lmaudit_equivalent_peak_share": their_flops / our_seconds / peak,
            "lmaudit_peak_share_with_attention": (our_flops + our_attention) / our_seconds / peak,
            "lmeval_peak_share_with_attention": (their_flops + their_attention) / theirs.seconds / peak,
        }
        report["runs"][f"{shots}-shot"] = row
        parity = worst <= TOLERANCE and abs(our_acc - their_acc) < 1e-12
        ok &= parity
        print(f"{shots}-shot, {n} questions: max |loglik diff| = {worst:.2e} ({'ok' if worst <= TOLERANCE else 'FAIL'}),"
              f" acc lmaudit {our_acc:.4f} vs lm-eval {their_acc:.4f} ({'equal' if parity else 'DIFFER'})")
        print(f"  lmaudit {row['lmaudit_qps']:.2f} q/s, lm-eval {row['lmeval_qps']:.2f} q/s: "
              f"ratio {row['speedup']:.2f}x")
        print(f"  share of measured matmul peak ({peak / 1e9:.0f} GFLOP/s): lmaudit {row['lmaudit_peak_share']:.1%} "
              f"(executed), lm-eval {row['lmeval_peak_share']:.1%} (executed); lmaudit at lm-eval's work "
              f"{row['lmaudit_equivalent_peak_share']:.1%}")
        print(f"  the same with attention's matrix products counted: lmaudit "
              f"{row['lmaudit_peak_share_with_attention']:.1%}, lm-eval {row['lmeval_peak_share_with_attention']:.1%}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)
    return 0 if ok else 1


def _limited(task, samples):
    """The same task restricted to the chosen samples (first questions of each subject, as lm-eval's --limit)."""
    task.load = lambda: samples
    return task


if __name__ == "__main__":
    sys.exit(main())
