"""Benchmark: lmaudit's influence estimator against kronfluence 1.0.1 on SmolLM2-135M.

The acceptance setting: 4 layers (spread over the depth) x 3 MLP projections, 32 training sequences of 128 tokens
(the first 128 tokens of arXiv abstracts, through lmaudit's corpus readers), 8 queries (an abstract of 2025:
its first 24 words as the prompt, the next 10 as the completion), the empirical Fisher, damping 0.1 x the mean
eigenvalue per module, and kronfluence's covariance normalisation (K-FAC's factors averaged over tokens, EK-FAC's
eigenvalues refitted per sequence). Both tools run in this process on the same model copy and threads; each is
timed from the first factor computation to the last score (model loading and data preparation excluded).

Checks: Pearson >= 0.99 between the two tools' (query, sequence) scores, and lmaudit at least 2x faster
(factors plus scores) for every strategy run.

First, the exact check (also a test, tests/influence/test_exact.py): on the ~1.5k-parameter model of
lmaudit.influence.reference (2 Llama blocks, single-head attention, bias-free MLP, vocabulary 16), trained on
folded arXiv abstracts, the Spearman correlation of each strategy's scores (true Fisher, 3 seeds) with exact
damped block-diagonal Gauss-Newton influence over all 14 linear layers, and kronfluence's on the same model and
data (`--skip-exact` leaves it out).

    OMP_NUM_THREADS=2 .venv/bin/python bench/influence_vs_kronfluence.py --json docs/bench-influence-kronfluence.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

from machine import uptime

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("LMAUDIT_DATA_DIR") or REPO.parent / "shared" / "data")
PEARSON_MIN, SPEEDUP_MIN = 0.99, 2.0


def prepare(model, out: Path, sequences: int, seq_len: int, queries: int):
    from lmaudit.influence.data import Query, corpus_sequences, encode_queries
    from lmaudit.influence.reference import table_to_corpus

    corpus = table_to_corpus(DATA / "arxiv" / "arxiv_data_1000_tiagoft.csv", "summaries", out / "corpus.jsonl")
    chosen = [s for s in corpus_sequences(model, [corpus], seq_len)
              if s.sequence_id.endswith("#0") and len(s.tokens) == seq_len][:sequences]
    import csv

    with open(DATA / "arxiv" / "arxiv_data_3397_clopezvice.csv", encoding="utf-8", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if len(r["abstract"].split()) >= 40][:queries]
    asked = [Query(f"q{i}", " ".join(r["abstract"].split()[:24]), " " + " ".join(r["abstract"].split()[24:34]))
             for i, r in enumerate(rows)]
    return chosen, encode_queries(model, asked)


def exact_check_figures(out: Path) -> dict:
    """Spearman with exact damped block-diagonal GN on the tiny model, 3 seeds: lmaudit's strategies, kronfluence's."""
    from lmaudit.influence import corpus_sequences, encode_queries, select_layers
    from lmaudit.influence.reference import exact_check, tiny_setup
    from lmaudit.models import load_model

    started = time.perf_counter()
    setup = tiny_setup(DATA / "arxiv" / "arxiv_data_1000_tiagoft.csv", out)
    model = load_model(f"hf:{setup.model_dir}")
    sequences = corpus_sequences(model, [setup.corpus], 16)[:96]
    queries = encode_queries(model, setup.queries)
    layers = select_layers(model.module, ["layers.*"])
    figures = exact_check(model, layers, sequences, queries, out, kronfluence=("identity", "ekfac"))
    figures["setting"] = {"parameters": sum(p.numel() for p in model.module.parameters()), "layers": len(layers),
                          "sequences": len(sequences), "seq_len": 16, "queries": len(queries), "seeds": [0, 1, 2],
                          "fisher": "true", "damping": "0.1 x mean eigenvalue per layer"}
    figures["seconds"] = round(time.perf_counter() - started, 1)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("/tmp/influence-vs-kronfluence"))
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--strategies", default="ekfac,kfac")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sequences", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--queries", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--skip-exact", action="store_true", help="leave out the exact check on the tiny model")
    args = parser.parse_args()

    import numpy as np
    import torch
    from scipy.stats import pearsonr, spearmanr

    from lmaudit.influence.estimator import InfluenceEstimator
    from lmaudit.influence.factors import FactorSettings
    from lmaudit.influence.modules import select_layers
    from lmaudit.influence.peer import kronfluence_scores
    from lmaudit.models import load_model
    from lmaudit.models.base import require_white_box

    torch.set_num_threads(args.threads)
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    figures: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared with other jobs), "
                                f"torch threads {args.threads}"}
    if not args.skip_exact:
        figures["exact_check"] = exact_check_figures(args.out / "exact")
        print(json.dumps(figures["exact_check"]), flush=True)
    model = require_white_box(load_model("smollm2"), "influence")
    depth = model.module.config.num_hidden_layers
    indices = np.linspace(0, depth - 1, 4).round().astype(int).tolist()
    layers = select_layers(model.module, [f"layers.{i}.mlp.{p}" for i in indices
                                          for p in ("gate_proj", "up_proj", "down_proj")])
    sequences, queries = prepare(model, args.out, args.sequences, args.seq_len, args.queries)
    if len(sequences) < args.sequences:
        print(f"only {len(sequences)} abstracts have {args.seq_len} tokens", file=sys.stderr)
        return 1
    figures.update({"setting": {"model": "smollm2", "layers": [layer.name for layer in layers],
                                 "sequences": len(sequences), "seq_len": args.seq_len, "queries": len(queries),
                                 "fisher": "empirical", "damping": "0.1 x mean eigenvalue per module",
                                 "batch_size": args.batch_size},
                    "runs": []})
    ok = True
    for strategy in [s.strip() for s in args.strategies.split(",") if s.strip()]:
        run: dict = {"strategy": strategy, "uptime_before": uptime()}
        estimator = InfluenceEstimator(model, layers, FactorSettings(strategy=strategy, fisher="empirical",
                                                                     covariance="token"),
                                       batch_size=args.batch_size, chunk_size=len(sequences), log=None)
        started = time.perf_counter()
        factors = estimator.fit(sequences, args.out / f"lmaudit-{strategy}", keep_for_scores=True)
        fitted = time.perf_counter()
        ours = estimator.scores(factors, queries, sequences, args.out / f"lmaudit-{strategy}" / "parts").total.T
        scored = time.perf_counter()
        estimator.close()
        run["lmaudit_seconds"] = {"factors": round(fitted - started, 2), "scores": round(scored - fitted, 2),
                                  "total": round(scored - started, 2),
                                  "stages": {k: round(v, 2) for k, v in estimator.timings.items()}}
        run["uptime_between"] = uptime()
        theirs, seconds = kronfluence_scores(model.module, layers, [s.tokens for s in sequences], queries,
                                             strategy=strategy, empirical_fisher=True, batch_size=args.batch_size,
                                             output_dir=args.out / f"kronfluence-{strategy}")
        run["kronfluence_seconds"] = {k: round(v, 2) for k, v in seconds.items()}
        run["kronfluence_seconds"]["total"] = round(sum(seconds.values()), 2)
        run["uptime_after"] = uptime()
        run["pearson"] = float(pearsonr(ours.flatten(), theirs.flatten())[0])
        run["spearman"] = float(spearmanr(ours.flatten(), theirs.flatten())[0])
        run["speedup"] = run["kronfluence_seconds"]["total"] / run["lmaudit_seconds"]["total"]
        run["pass"] = run["pearson"] >= PEARSON_MIN and run["speedup"] >= SPEEDUP_MIN
        ok &= run["pass"]
        figures["runs"].append(run)
        print(f"{strategy}: Pearson {run['pearson']:.5f} (Spearman {run['spearman']:.4f}); lmaudit "
              f"{run['lmaudit_seconds']['total']:.1f} s, kronfluence {run['kronfluence_seconds']['total']:.1f} s, "
              f"{run['speedup']:.2f}x; {'pass' if run['pass'] else 'FAIL'}  [{run['uptime_after']}]", flush=True)
    figures["pass"] = ok
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
