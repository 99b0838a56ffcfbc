"""Benchmark: does influence find what matters? The linear datamodeling score (LDS) of EK-FAC and of the gradient
dot product (identity) on a tiny ladder model.

A 2-layer Transformer is trained by the scaling package's trainer on N arXiv abstracts (the tokenizer, a 512-token
byte-level BPE, is trained on them too), then retrained from the same initialisation on M random halves of those
abstracts for the same number of epochs. The queries are abstracts of 2025 (none in training): their first 8 words
as the prompt, the next 4 as the completion (those that fit the 32-token context). For each strategy, influence on the full model predicts a half's
effect on a query as the sum of its documents' scores (a document's score is the sum over its sequences);
LDS is the Spearman correlation, over the M halves, between that prediction and the query's actual log-probability
under the model trained on the half, averaged over queries. 95% CIs: bootstrap over queries.

Check: LDS(ekfac) > LDS(identity) with non-overlapping 95% CIs. Trained runs are kept under --out, so a rerun
reuses them (delete --out for a clean timing).

    OMP_NUM_THREADS=1 .venv/bin/python bench/influence_lds.py --json docs/bench-influence-lds.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
from pathlib import Path

from machine import uptime

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("LMAUDIT_DATA_DIR") or REPO.parent / "shared" / "data")


def read_column(path: Path, column: str) -> list[str]:
    with open(path, encoding="utf-8", newline="") as handle:
        return [" ".join(row[column].split()) for row in csv.DictReader(handle)]


def bootstrap_mean(values, seed: int = 0, resamples: int = 2000):
    import numpy as np

    values = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (resamples, len(values)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(values.mean()), [float(low), float(high)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("/tmp/influence-lds"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--documents", type=int, default=120, help="training abstracts (N)")
    parser.add_argument("--subsets", type=int, default=48, help="random halves retrained (M)")
    parser.add_argument("--queries", type=int, default=160)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--width", type=int, default=48)
    parser.add_argument("--strategies", default="ekfac,kfac,diagonal,identity")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import numpy as np
    import torch
    from scipy.stats import spearmanr

    from lmaudit.core.types import LoglikelihoodRequest
    from lmaudit.influence import (
        FactorSettings,
        InfluenceEstimator,
        Query,
        corpus_sequences,
        encode_queries,
        select_layers,
    )
    from lmaudit.models import load_model
    from lmaudit.scaling import ModelShape, RunSpec, TokenData, train_run
    from lmaudit.scaling.tokenizer import (
        encode_documents,
        load_tokenizer,
        train_tokenizer,
    )

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    figures: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared with other jobs), torch "
                                f"threads {args.threads}", "uptime_start": uptime(), "seconds": {}}
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    documents = read_column(DATA / "arxiv" / "arxiv_data_1000_tiagoft.csv", "summaries")[:args.documents]
    query_texts = read_column(DATA / "arxiv" / "arxiv_data_3397_clopezvice.csv", "abstract")

    tokenizer_dir = out / "tokenizer"
    if not (tokenizer_dir / "tokenizer.json").exists():
        train_tokenizer(documents, vocab_size=512).save_pretrained(str(tokenizer_dir))
    tokenizer = load_tokenizer(tokenizer_dir)
    heldout = encode_documents(tokenizer, query_texts[-200:])
    corpus = out / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"doc{i}", "text": t}) + "\n" for i, t in enumerate(documents)))
    seq_len, batch = 32, 16
    shape = ModelShape(d_model=args.width, n_layers=2, n_heads=args.width // 8, d_ff=128)
    lr = 2.4 * args.width ** -1.5

    def train(name: str, chosen: list[int]) -> Path:
        stream = encode_documents(tokenizer, [documents[i] for i in chosen])
        spec = RunSpec(name=name, shape=shape, tokens=args.epochs * len(stream), lr=lr, batch_size=batch,
                       seq_len=seq_len, init_std=0.63 / args.width ** 0.5, seed=0)
        folder = out / "runs" / name
        train_run(spec, TokenData(stream, heldout, tokenizer_dir, len(tokenizer)), folder, heldout_tokens=8192,
                  curve_points=2, threads=args.threads, progress=False, role="lds")
        return folder

    t = time.perf_counter()
    full = train("full", list(range(len(documents))))
    rng = np.random.default_rng(0)
    halves = [np.sort(rng.choice(len(documents), len(documents) // 2, replace=False)) for _ in range(args.subsets)]
    folders = []
    for index, half in enumerate(halves):
        folders.append(train(f"half-{index:03d}", half.tolist()))
        print(f"trained half {index + 1}/{len(halves)}  [{uptime()}]", flush=True)
    figures["seconds"]["training"] = round(time.perf_counter() - t, 1)

    model = load_model(f"hf:{full}")
    asked = []
    for text in query_texts[:-200]:  # the last 200 are the held-out stream
        words = text.split()
        candidate = Query(f"q{len(asked)}", " ".join(words[:8]), " " + " ".join(words[8:12]))
        context, continuation = model.encode_pair(candidate.prompt, candidate.completion)
        if len(context) + len(continuation) <= seq_len:  # the ladder's context is 32 tokens
            asked.append(candidate)
        if len(asked) == args.queries:
            break
    queries = encode_queries(model, asked)

    t = time.perf_counter()
    actual = np.zeros((len(halves), len(queries)))
    requests = [LoglikelihoodRequest(q.prompt, q.completion) for q in asked]
    for index, folder in enumerate(folders):
        actual[index] = [r.logprob for r in load_model(f"hf:{folder}").loglikelihood(requests)]
    figures["seconds"]["measuring halves"] = round(time.perf_counter() - t, 1)

    sequences = corpus_sequences(model, [corpus], seq_len)
    document_of = np.array([int(s.document_id.removeprefix("doc")) for s in sequences])
    membership = np.zeros((len(halves), len(documents)))
    for index, half in enumerate(halves):
        membership[index, half] = 1.0
    layers = select_layers(model.module, ["layers.*"])
    figures["setting"] = {"documents": len(documents), "sequences": len(sequences), "subsets": len(halves),
                          "queries": len(queries), "epochs": args.epochs, "shape": shape.__dict__,
                          "non_embedding_params": shape.non_embedding_params(), "vocab": len(tokenizer),
                          "seq_len": seq_len, "layers": len(layers), "fisher": "true", "damping": "0.1 x mean"}
    figures["lds"] = {}
    per_query = {}
    for strategy in [s.strip() for s in args.strategies.split(",") if s.strip()]:
        t = time.perf_counter()
        estimator = InfluenceEstimator(model, layers, FactorSettings(strategy=strategy), batch_size=16, log=None)
        factors = estimator.fit(sequences, out / f"influence-{strategy}", keep_for_scores=True)
        result = estimator.scores(factors, queries, sequences, out / f"influence-{strategy}" / "parts")
        estimator.close()
        by_document = np.zeros((len(documents), len(queries)))
        np.add.at(by_document, document_of, result.total)
        predicted = membership @ by_document  # (subsets, queries)
        values = [spearmanr(predicted[:, q], actual[:, q])[0] for q in range(len(queries))]
        per_query[strategy] = values
        mean, ci = bootstrap_mean(values)
        figures["lds"][strategy] = {"mean": mean, "ci95": ci, "seconds": round(time.perf_counter() - t, 1)}
        print(f"LDS({strategy}) = {mean:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]", flush=True)
    if {"ekfac", "identity"} <= set(per_query):
        difference = np.asarray(per_query["ekfac"]) - np.asarray(per_query["identity"])
        figures["lds"]["ekfac_minus_identity"] = dict(zip(("mean", "ci95"), bootstrap_mean(difference)))
        figures["pass"] = figures["lds"]["ekfac"]["ci95"][0] > figures["lds"]["identity"]["ci95"][1]
    figures["seconds"]["total"] = round(time.perf_counter() - started, 1)
    figures["uptime_end"] = uptime()
    print(json.dumps(figures["lds"], indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if figures.get("pass", False) else 1


if __name__ == "__main__":
    sys.exit(main())
