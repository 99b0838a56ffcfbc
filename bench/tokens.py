"""Benchmark `lmaudit tokens`: all 204 FLORES-200 languages x 8 tokenizers in one run, against the naive loop.

    LMAUDIT_DATA_DIR=../shared/data python bench/tokens.py --json docs/bench-tokens.json

1. lmaudit: `measure_premiums` over the 8 tokenizers (4 tiktoken, 4 Hugging Face: a vocab.json+merges.txt folder,
   a tokenizer.json, a SentencePiece model and a WordPiece tokenizer.json) into a fresh run directory: counts,
   per-sentence counts, bootstrap CIs, tables and the figure.
2. The naive loop: one process, one encode call of each language's joined text per tokenizer, through the same
   libraries (tiktoken, tokenizers, sentencepiece), counts only.
3. The counts of both must be equal, and equal Petrov et al.'s published table for every tokenizer both have.
4. The bundled model's loss per byte on 50 sentences x 30 languages, with its time.
The machine is shared: the load (`uptime`) is recorded next to every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_seconds, uptime

TIKTOKEN = ["r50k_base", "p50k_base", "cl100k_base", "o200k_base"]
HUGGING_FACE = {"gpt2_hf": "gpt2_hf", "llama3": "llama3/tokenizer.json", "llama2_spm": "llama2_spm/tokenizer.model",
                "minilm_wordpiece": "minilm_wordpiece"}
# Petrov et al.'s column for each benchmarked tokenizer they also measured.
PUBLISHED = {"tiktoken:r50k_base": ["r50k_base"], "tiktoken:p50k_base": ["p50k_base"],
             "tiktoken:cl100k_base": ["cl100k_base"], "hf:gpt2_hf": ["GPT-2", "RoBERTa"], "spm:llama2_spm": ["LLAMA"]}
LOSS_LANGUAGES = ["eng_Latn", "deu_Latn", "fra_Latn", "spa_Latn", "ita_Latn", "por_Latn", "nld_Latn", "pol_Latn",
                  "ces_Latn", "fin_Latn", "hun_Latn", "tur_Latn", "vie_Latn", "ind_Latn", "swh_Latn", "yor_Latn",
                  "rus_Cyrl", "ukr_Cyrl", "ell_Grek", "heb_Hebr", "arb_Arab", "pes_Arab", "hin_Deva", "ben_Beng",
                  "tam_Taml", "tha_Thai", "kor_Hang", "jpn_Jpan", "zho_Hans", "amh_Ethi"]


def naive_counts(specs: dict[str, str], corpus) -> tuple[dict[str, dict[str, int]], float]:
    """One encode call per language and tokenizer, in this one process: the loop Petrov et al.'s script runs."""
    import sentencepiece
    import tiktoken
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    def encoder(spec: str):
        if spec.startswith("tiktoken:"):
            encoding = tiktoken.get_encoding(spec.split(":", 1)[1])
            return lambda text: len(encoding.encode_ordinary(text))
        path = Path(spec.split(":", 1)[1])
        if path.suffix == ".model":
            processor = sentencepiece.SentencePieceProcessor(model_file=str(path))
            return lambda text: len(processor.encode(text))
        if path.is_dir() and (path / "vocab.json").is_file():
            rust = Tokenizer(models.BPE.from_file(str(path / "vocab.json"), str(path / "merges.txt")))
            rust.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
            rust.decoder = decoders.ByteLevel()
        else:
            rust = Tokenizer.from_file(str(path / "tokenizer.json" if path.is_dir() else path))
            rust.no_padding()
            rust.no_truncation()
        return lambda text: len(rust.encode(text, add_special_tokens=False).ids)

    began, cpu = time.perf_counter(), cpu_seconds()
    out = {}
    for spec, name in specs.items():
        encode = encoder(spec)
        out[name] = {code: encode(text.joined) for code, text in corpus.texts.items()}
    return out, time.perf_counter() - began, cpu_seconds() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--skip-naive", action="store_true", help="only the lmaudit run (the naive loop is slow)")
    parser.add_argument("--skip-loss", action="store_true", help="skip the model's loss per byte")
    parser.add_argument("--loss-only", action="store_true", help="only the model's loss per byte")
    parser.add_argument("--petrov-table", type=Path, help="Petrov et al.'s tokenization_lengths.csv with a flores_code "
                        "column (not shipped; default: the data folder's sample of 12 languages)")
    args = parser.parse_args()
    data = Path(os.environ.get("LMAUDIT_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
    os.environ.setdefault("LMAUDIT_DATA_DIR", str(data))
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(data / "tokenizers" / "tiktoken" / "cache"))
    from lmaudit.tokens import Settings, load_corpus, load_tokenizer, measure_premiums, petrov_counts

    specs = [f"tiktoken:{name}" for name in TIKTOKEN] + [f"hf:{data / 'tokenizers' / p}" for p in HUGGING_FACE.values()]
    report: dict = {"machine": {"cpus": os.cpu_count(), "uptime_before": uptime()}}
    corpus = load_corpus("flores200", data_dir=data)
    if args.loss_only:
        args.skip_naive = True

    if not args.loss_only:
        began, cpu = time.perf_counter(), cpu_seconds()
        tokenizers = {spec: load_tokenizer(spec) for spec in specs}
        loaded = time.perf_counter() - began
        with tempfile.TemporaryDirectory() as folder:
            run = measure_premiums(tokenizers, corpus, Settings(), output_dir=Path(folder) / "run", progress=False)
            split = json.loads((run.run_dir / "manifest.json").read_text())["invocations"][-1]["seconds_per_tokenizer"]
        ours_seconds, ours_cpu = time.perf_counter() - began, cpu_seconds() - cpu
        ours = {}
        for row in run.rows:
            ours.setdefault(row.tokenizer, {})[row.language] = row.tokens
        engines = {t.name: getattr(t, "engine", type(t).__name__) for t in tokenizers.values()}
        report["lmaudit"] = {"seconds": round(ours_seconds, 2), "cpu_seconds": round(ours_cpu, 2),
                             "loading_seconds": round(loaded, 2), "seconds_per_tokenizer": split,
                             "languages": len(corpus.languages), "tokenizers": list(ours), "engines": engines,
                             "uptime_after": uptime()}
        print(f"lmaudit: {len(corpus.languages)} languages x {len(ours)} tokenizers in {ours_seconds:.1f} s "
              f"({ours_cpu:.1f} s CPU) "
              f"(loading the tokenizers {loaded:.1f} s); {uptime()}", flush=True)

        published = petrov_counts(args.petrov_table)
        checks = {}
        for name, columns in PUBLISHED.items():
            for column in (c for c in columns if c in published):  # the sample has 4 columns, 12 languages
                table = published[column]
                equal = sum(table[code] == tokens for code, tokens in ours[name].items() if code in table)
                checks[f"{name} = {column}"] = f"{equal}/{len(table)}"
                print(f"  {name} vs Petrov et al. '{column}': {equal}/{len(table)} languages equal", flush=True)
        report["published_check"] = checks

    if not args.skip_naive:
        names = {spec: t.name for spec, t in tokenizers.items()}
        naive, naive_seconds, naive_cpu = naive_counts(names, corpus)
        same = all(naive[name] == ours[name] for name in naive)
        report["naive"] = {"seconds": round(naive_seconds, 2), "cpu_seconds": round(naive_cpu, 2),
                           "counts_equal": same, "uptime_after": uptime()}
        # Wall time is what a user waits; CPU time (all threads) is what the machine spends, and moves less
        # with other jobs' load on a shared machine.
        report["speedup"] = {"wall": round(naive_seconds / ours_seconds, 2), "cpu": round(naive_cpu / ours_cpu, 2)}
        print(f"naive loop: {naive_seconds:.1f} s ({naive_cpu:.1f} s CPU); counts equal: {same}; lmaudit is "
              f"{naive_seconds / ours_seconds:.2f}x faster in wall time, {naive_cpu / ours_cpu:.2f}x in CPU time; "
              f"{uptime()}", flush=True)

    if not args.skip_loss:
        from lmaudit.models import load_model
        from lmaudit.tokens import loss_per_byte

        model = load_model("smollm2")
        subset = corpus.head(50).select(LOSS_LANGUAGES, "eng_Latn")
        with tempfile.TemporaryDirectory() as folder:
            began = time.perf_counter()
            # A private response cache: the time is the model's work, not earlier runs' cached answers.
            loss = loss_per_byte(model, subset, model_spec="smollm2", output_dir=Path(folder) / "loss",
                                 progress=False, shared_cache=False)
            seconds = time.perf_counter() - began
        rows = sorted(loss.rows, key=lambda r: r.bits_per_byte)
        report["loss_per_byte"] = {"model": "smollm2", "sentences_per_language": 50, "languages": len(rows),
                                   "seconds": round(seconds, 2), "uptime_after": uptime(),
                                   # padded tokens through the decoder, against the tokens scored (padding waste)
                                   "decoder_tokens": model.stats["decoder_tokens"],
                                   "tokens": sum(r.tokens for r in rows),
                                   "rows": [{"language": r.language, "bits_per_byte": round(r.bits_per_byte, 4),
                                             "ci95": [round(r.bits_per_byte_ci_low, 4),
                                                      round(r.bits_per_byte_ci_high, 4)],
                                             "premium": round(r.premium, 3)} for r in rows]}
        print(f"loss per byte, smollm2, 50 sentences x {len(rows)} languages: {seconds:.1f} s; {uptime()}")
        for r in rows:
            print(f"  {r.language}: {r.bits_per_byte:.3f} bits/byte, premium {r.premium:.2f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())
