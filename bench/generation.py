"""Generation throughput on the bundled model: hf greedy (batched), hf sampled (seeded, batched), llama.cpp
in-process (greedy and sampled), and llama.cpp's server through lmaudit's openai backend, on the same prompts.

    OMP_NUM_THREADS=2 .venv/bin/python bench/generation.py [--prompts 16] [--tokens 64] [--threads 2]
        [--device cpu|cuda] [--repeats 3] [--json docs/bench-generation.json]

Tokens/s counts generated tokens over wall time, in one process; the in-process paths take turns `--repeats`
times and report their medians (single runs on this 2-core machine vary by 10-15%); ratios are from the same
run. The prompts are JailbreakBench goals (chat requests), as red-teaming sends them. `--device cuda` runs the
hf paths on a GPU (the llama.cpp paths stay on the CPU).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def jbb_goals(count: int) -> list[str]:
    data = Path(os.environ.get("LMAUDIT_DATA_DIR", ROOT.parent / "shared" / "data"))
    with open(data / "jbb" / "harmful_behaviors.csv", encoding="utf-8") as handle:
        return [row["Goal"] for row in csv.DictReader(handle)][:count]


def requests(goals: list[str], tokens: int, temperature: float):
    from lmaudit.core.types import GenerateRequest, Message

    return [GenerateRequest(messages=(Message("user", goal),), max_tokens=tokens, temperature=temperature,
                            seed=index if temperature else None) for index, goal in enumerate(goals)]


def timed(label: str, model, batch) -> dict:
    """Generate, then print the figure at once (a long run that is stopped keeps what it measured)."""
    began = time.perf_counter()
    answers = model.generate(batch)
    seconds = time.perf_counter() - began
    produced = sum(_token_count(model, a) for a in answers)
    figure = {"seconds": round(seconds, 2), "tokens": produced, "tokens_per_s": round(produced / seconds, 1),
              "load_average": os.getloadavg()[0]}
    print(f"{label:45s} {figure['tokens_per_s']:7.1f} tokens/s  ({produced} tokens, {figure['seconds']} s, "
          f"load {figure['load_average']:.1f})", flush=True)
    return figure


def alternated(model, paths: dict[str, list], repeats: int) -> dict[str, dict]:
    """Each path `repeats` times, taking turns (so a slow spell of a shared machine hits both), median kept."""
    runs: dict[str, list[dict]] = {name: [] for name in paths}
    for _ in range(repeats):
        for name, batch in paths.items():
            runs[name].append(timed(name, model, batch))
    out = {}
    for name, figures in runs.items():
        middle = sorted(figures, key=lambda f: f["tokens_per_s"])[len(figures) // 2]
        out[name] = {**middle, "tokens_per_s_all": [f["tokens_per_s"] for f in figures]}
    return out


def _token_count(model, answer) -> int:
    if answer.token_logprobs is not None:
        return len(answer.token_logprobs)
    return len(_counter().encode(answer.text, add_special_tokens=False))  # llama.cpp returns no logprobs


_TOKENIZER = []


def _counter():
    if not _TOKENIZER:
        from lmaudit.models import load_model

        _TOKENIZER.append(load_model("smollm2").tokenizer)
    return _TOKENIZER[0]


def llama_server(threads: int):
    from lmaudit.models.hf import smollm2_path

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "lmaudit.models.llamacpp_server", "--model", str(smollm2_path()),
                                "--model_alias", "smollm2", "--host", "127.0.0.1", "--port", str(port),
                                "--n_ctx", "2048", "--n_threads", str(threads)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/models", timeout=2)
            return process, url
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise SystemExit("llama.cpp's server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each in-process path (median reported)")
    args = parser.parse_args()

    import torch

    from lmaudit.core.errors import ModelError
    from lmaudit.models import load_model

    torch.set_num_threads(args.threads)
    goals = jbb_goals(args.prompts)
    greedy, sampled = requests(goals, args.tokens, 0.0), requests(goals, args.tokens, 0.7)
    hf = load_model("smollm2", device=args.device)
    # Warm-up on the whole batch: the first calls at a batch's shapes (allocator, kernels chosen) ran 40% slower.
    hf.generate(greedy)
    figures = alternated(hf, {"hf greedy (batched)": greedy, "hf sampled (seeded, batched)": sampled}, args.repeats)
    try:
        fast = load_model("smollm2", backend="llamacpp", threads=args.threads)
    except ModelError as exc:  # the llamacpp extra is optional: say so and measure the rest
        print(f"llama.cpp in-process skipped: {exc}", file=sys.stderr)
    else:
        fast.generate(greedy)
        figures.update(alternated(fast, {"llama.cpp in-process greedy": greedy, "llama.cpp in-process sampled": sampled},
                                  args.repeats))
        del fast
        process, url = llama_server(args.threads)
        try:
            served = load_model(f"openai:smollm2@{url}", max_concurrency=1)
            served.generate(greedy[:1])
            name = "llama.cpp server sampled (openai backend)"
            figures[name] = timed(name, served, sampled)
        finally:
            process.kill()
    base = figures["hf greedy (batched)"]["tokens_per_s"]
    sampled_rate = figures["hf sampled (seeded, batched)"]["tokens_per_s"]
    ratios = {"hf sampled / hf greedy": round(sampled_rate / base, 2)}
    if "llama.cpp in-process greedy" in figures:
        ratios["llama.cpp in-process greedy / hf greedy"] = round(
            figures["llama.cpp in-process greedy"]["tokens_per_s"] / base, 2)
        ratios["hf sampled / llama.cpp server sampled"] = round(
            sampled_rate / figures["llama.cpp server sampled (openai backend)"]["tokens_per_s"], 2)
    report = {"prompts": args.prompts, "tokens": args.tokens, "threads": args.threads, "device": args.device,
              "repeats": args.repeats,
              "load_average": os.getloadavg(), "figures": figures, "ratios": ratios}
    for name, value in ratios.items():
        print(f"{name:45s} {value:7.2f}x")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
