"""How fast the substring scan reads a corpus, against a naive scan, with 1 and 2 workers; the n-gram scan with 1
and 2; and Min-K% AUROC.

    LMAUDIT_DATA_DIR=../shared/data nice .venv/bin/python bench/contamination_scan.py [--copies 30] [--mink 100]

The corpus is built from the real text in the data folder (arXiv abstracts, NTREX news in five languages,
MBPP and TruthfulQA), repeated `--copies` times over 8 JSONL shards (one more gzipped), so throughput is read
on real text, Unicode included; the same corpus as one file shows 2 workers sharing one file in pieces. The
index holds all 14,042 MMLU test items, 3 substrings each; the n-gram index their 13-grams, scanned over the
first shard with 1 worker and the first two with 2 (a file each). Throughput is MB of document text (UTF-8) per second
of scanning, index building excluded; every run also reports MB per CPU-second (pool workers' CPU time included,
their start-up too), which a loaded machine disturbs less. The naive baseline normalises the same way, then
tests every substring with Python's `in` against every document of a sample of documents; its MB/s is that
sample's size over its time. `--mink N` scores N MMLU items and N length-matched excerpts of
2025 arXiv abstracts (published after SmolLM2's release) with Min-K% on the bundled model and reports AUROC.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_seconds

from lmaudit.contamination import build_index, items_from_tasks, scan_index
from lmaudit.contamination.normalize import normalize
from lmaudit.data.tables import find_dataset
from lmaudit.tasks import get_task

NEWS = ("src.eng", "ref.deu", "ref.rus", "ref.zho-CN", "ref.hin")
SHARDS = 8


def real_documents(data: Path) -> list[str]:
    texts = []
    for name, columns in (("arxiv_data_3397_clopezvice.csv", ("title", "abstract")),
                          ("arxiv_data_1000_tiagoft.csv", ("titles", "summaries"))):
        with open(data / "arxiv" / name, encoding="utf-8") as handle:
            texts += [f"{row[columns[0]]}\n\n{row[columns[1]]}" for row in csv.DictReader(handle)]
    for language in NEWS:
        path = data / "ntrex128" / "NTREX-128" / f"newstest2019-{language}.txt"
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        texts += [" ".join(lines[i:i + 8]) for i in range(0, len(lines), 8)]  # 8 sentences: a news passage
    with open(data / "mbpp" / "mbpp.jsonl", encoding="utf-8") as handle:
        texts += [json.loads(line)["text"] for line in handle if line.strip()]
    with open(data / "truthfulqa" / "TruthfulQA.csv", encoding="utf-8") as handle:
        texts += [f"{row['Question']} {row['Best Answer']}" for row in csv.DictReader(handle)]
    return texts


def write_corpus(folder: Path, texts: list[str], copies: int) -> tuple[list[Path], Path]:
    rng = random.Random(0)
    paths = [folder / f"shard-{k:02d}.jsonl" for k in range(SHARDS)]
    handles = [open(p, "w", encoding="utf-8") for p in paths]
    for copy in range(copies):
        order = list(range(len(texts)))
        rng.shuffle(order)
        for n, i in enumerate(order):
            handles[(copy * len(texts) + n) % SHARDS].write(json.dumps({"id": f"{copy}-{i}", "text": texts[i]},
                                                                       ensure_ascii=False) + "\n")
    for handle in handles:
        handle.close()
    gz = folder / "shard-00.jsonl.gz"
    with open(paths[0], "rb") as source, gzip.open(gz, "wb", compresslevel=6) as target:
        target.write(source.read())
    return paths, gz


def naive_scan(index, texts: list[str]) -> tuple[float, set[int]]:
    """Seconds to test every unique substring with `in` against each document, and the items it finds."""
    patterns = [(p.decode("utf-8"), owners) for p, owners in zip(index.patterns, index.owners)]
    found: set[int] = set()
    began = time.perf_counter()
    for text in texts:
        document = normalize(text)
        for pattern, owners in patterns:
            if pattern in document:
                found.update(item for item, _ in owners)
    return time.perf_counter() - began, found


def timed_scan(index, corpus, **options) -> dict:
    cpu = cpu_seconds()
    result = scan_index(index, corpus, progress=False, **options)
    cpu = cpu_seconds() - cpu
    stats = result.stats
    return {"files": stats.files, "documents": stats.documents, "mb": round(stats.text_bytes / 1e6, 2),
            "seconds": round(stats.seconds, 3), "mb_per_s": round(stats.mb_per_s, 1),
            "cpu_seconds": round(cpu, 2), "mb_per_cpu_s": round(stats.text_bytes / 1e6 / cpu, 1),
            "flagged": sum(f.contaminated is True for f in result.flags)}


def mink_auroc(items, count: int, data: Path) -> dict:
    from lmaudit.contamination.mink import compare_to_nonmembers
    from lmaudit.models import load_model

    model = load_model("smollm2")
    with open(data / "arxiv" / "arxiv_data_3397_clopezvice.csv", encoding="utf-8") as handle:
        abstracts = [row["abstract"] for row in csv.DictReader(handle)]
    chosen = random.Random(0).sample([i for i in items if len(normalize(i.text)) >= 20], count)
    began = time.perf_counter()
    result = compare_to_nonmembers(model, chosen, abstracts, k=0.2, seed=0)
    mean = lambda values: round(sum(values) / len(values), 4)  # noqa: E731
    return {"items": count, "k": 0.2, "auroc": round(result.auroc, 4), "item_mean": mean(result.item_scores),
            "nonmember_mean": mean(result.nonmember_scores), "item_tokens_mean": mean(result.item_tokens),
            "nonmember_tokens_mean": mean(result.nonmember_tokens),
            "seconds": round(time.perf_counter() - began, 1)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=30, help="times the real text is repeated in the corpus")
    parser.add_argument("--naive-docs", type=int, default=60, help="documents the naive baseline scans")
    parser.add_argument("--mink", type=int, default=0, help="MMLU items for the Min-K%% AUROC (0: skip)")
    parser.add_argument("--workdir", help="where to write the corpus (default: a temporary folder)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()

    data = find_dataset("arXiv", "arxiv").parent  # the data folder ($LMAUDIT_DATA_DIR)
    items = items_from_tasks([get_task("mmlu")])
    figures: dict = {"machine": {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg(),
                                 "nice": os.nice(0), "python": platform.python_version()}}
    began = time.perf_counter()
    index = build_index("substring", items)
    figures["index"] = {"items": len(items), "substrings": len(index.patterns),
                        "seconds": round(time.perf_counter() - began, 2)}
    texts = real_documents(data)
    figures["corpus"] = {"documents_per_copy": len(texts), "copies": args.copies,
                         "non_ascii_documents": round(sum(not t.isascii() for t in texts) / len(texts), 3)}
    with tempfile.TemporaryDirectory(dir=args.workdir) as folder:
        shards, gz = write_corpus(Path(folder), texts, args.copies)
        timed_scan(index, shards[:1])  # warm the page cache
        figures["substring_1_worker"] = timed_scan(index, shards, workers=1)
        figures["substring_2_workers"] = timed_scan(index, shards, workers=2)
        one_file = Path(folder) / "one-file.jsonl"  # the same corpus as one file: 2 workers share it in pieces
        with open(one_file, "wb") as out:
            for shard in shards:
                out.write(shard.read_bytes())
        figures["substring_one_file_1_worker"] = timed_scan(index, [one_file], workers=1)
        figures["substring_one_file_2_workers"] = timed_scan(index, [one_file], workers=2)
        one_file.unlink()
        figures["substring_gzip_1_worker"] = timed_scan(index, [gz], workers=1)
        ngram = build_index("ngram", items)
        figures["ngram_1_worker"] = timed_scan(ngram, shards[:1], workers=1)
        figures["ngram_2_workers"] = timed_scan(ngram, shards[:2], workers=2)  # a file each
        # The naive baseline, on a sample with five MMLU items planted so both scans have something to find.
        rng = random.Random(1)
        sample = rng.sample(texts, args.naive_docs)
        for position, item in zip(rng.sample(range(len(sample)), 5), rng.sample(items, 5)):
            sample[position] = f"{sample[position]} {item.text}"
        sample_path = Path(folder) / "naive-sample.jsonl"
        sample_path.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in sample),
                               encoding="utf-8")
        seconds, naive_found = naive_scan(index, sample)
        fast = scan_index(index, [sample_path], progress=False)
    fast_found = {i for i, f in enumerate(fast.flags) if f.contaminated}
    assert naive_found == fast_found and len(fast_found) >= 5, "the naive and indexed scans disagree"
    mb = sum(len(t.encode("utf-8")) for t in sample) / 1e6
    figures["naive"] = {"documents": len(sample), "mb": round(mb, 4), "seconds": round(seconds, 2),
                        "mb_per_s": round(mb / seconds, 5), "flagged": len(naive_found)}
    figures["speedup_vs_naive"] = round(figures["substring_1_worker"]["mb_per_s"] / figures["naive"]["mb_per_s"])
    figures["two_workers_over_one"] = {
        "files": round(figures["substring_2_workers"]["mb_per_s"] / figures["substring_1_worker"]["mb_per_s"], 2),
        "one_file": round(figures["substring_one_file_2_workers"]["mb_per_s"]
                          / figures["substring_one_file_1_worker"]["mb_per_s"], 2)}
    if args.mink:
        figures["mink"] = mink_auroc(items, args.mink, data)
    figures["machine"]["load_average_at_end"] = os.getloadavg()
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
