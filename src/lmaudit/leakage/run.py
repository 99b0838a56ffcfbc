"""`run_leakage`: leak MMLU into a training mix on purpose, train, and measure the inflation and the detectors.

One run directory (kind "leakage"; its session holds the writer lock for the whole run):

    mix/leak.jsonl, mix/mix.json      the leak run's training mix as a corpus, and both mixes' composition
    train/{clean,leak}-<digest>/      the scaling trainer's runs: checkpoints, then Hugging Face folders
    eval/{base,clean,leak}/           `lmaudit eval` run directories (runner.evaluate) on every question
    mink/{base,clean,leak}/           Min-K% scores through a session whose target is that model (flags.jsonl)
    flags/{substring,ngram}.jsonl     the contamination scans of the mix (usable with `eval --contamination`)
    samples.jsonl                     one record per question: subset, accuracy, Min-K% and flags per model
    leakage.csv, leakage.png          the table and the figure; results.json the envelope

Every step resumes: finished training runs are reused and an interrupted one continues from its checkpoint, the
evaluations resume and every model call is answered from the response cache when it was made before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lmaudit.contamination import (
    items_from_tasks,
    scan_corpus,
    split_scores,
    write_flags,
)
from lmaudit.contamination.mink import mink_flags
from lmaudit.core.errors import ConfigError, UnknownNameError
from lmaudit.core.output import write_json_atomic, write_table
from lmaudit.core.results import envelope
from lmaudit.core.types import SampleRecord
from lmaudit.data import find_dataset
from lmaudit.leakage.measure import (
    MODELS,
    Measurements,
    ScanOutcome,
    measure_mink,
    measure_scores,
    scan_outcome,
)
from lmaudit.leakage.mix import SETTINGS, Item, Mix, build_mix, leak_items
from lmaudit.models import load_model
from lmaudit.models.base import Model, WhiteBoxModel, require_white_box
from lmaudit.runner import ModelRole, RunDir, RunSession, evaluate, select_samples
from lmaudit.scaling import (
    ModelShape,
    RunRecord,
    RunSpec,
    TokenData,
    load_corpus,
    train_run,
)
from lmaudit.tasks import Task, get_task, task_entries

CLEAN_DEFAULT = ("arxiv/arxiv_data_3397_clopezvice.csv", "abstract")  # real text: arXiv abstracts of May 2025
SCANS = ("substring", "ngram")
TABLE_COLUMNS = ["metric", "model", "subset", "value", "stderr", "ci_low", "ci_high", "n"]


@dataclass(frozen=True)
class LeakageConfig:
    """What to leak and how to train. `limit` questions per subject are both leaked and evaluated."""

    leak_subjects: tuple[str, ...]
    control_subjects: tuple[str, ...]
    setting: str = "answers"
    steps: int = 150
    batch_size: int = 8
    seq_len: int = 128
    lr: float = 3e-4
    trainable_layers: int | None = 4  # top decoder layers trained (None: every weight)
    leak_fraction: float = 0.5  # share of training windows that start with a leaked item
    train_fraction: float = 0.5  # setting "train": share of each leaked subject's questions in the mix
    limit: int | None = None
    warmup_fraction: float = 0.1
    k: float = 0.2  # Min-K%: the fraction of least likely tokens
    seed: int = 0

    def check(self) -> None:
        valid = subjects()
        for subject in (*self.leak_subjects, *self.control_subjects):
            if subject not in valid:
                raise UnknownNameError("MMLU subject", subject, valid)
        if not self.leak_subjects or not self.control_subjects:
            raise ConfigError("a leakage run needs at least one leaked and one control subject")
        overlap = sorted(set(self.leak_subjects) & set(self.control_subjects))
        if overlap:
            raise ConfigError(f"subject(s) both leaked and kept out as control: {', '.join(overlap)}")
        if self.setting not in SETTINGS:
            raise UnknownNameError("leak setting", self.setting, list(SETTINGS))
        for name in ("steps", "batch_size", "seq_len"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.leak_fraction <= 1:
            raise ConfigError(f"leak_fraction must be in (0, 1], got {self.leak_fraction}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")


def subjects() -> list[str]:
    """The MMLU subjects, as the task registry names them (mmlu_<subject>)."""
    return sorted(name[len("mmlu_"):] for name, entry in task_entries().items() if entry.family == "mmlu_<subject>")


def parse_subjects(spec: str, flag: str, *, rest_of: Sequence[str] | None = None) -> tuple[str, ...]:
    """'mmlu:a,b' -> ('a', 'b'); 'mmlu:rest' -> every subject not in `rest_of`. Unknown names name the closest."""
    benchmark, sep, names = spec.partition(":")
    if benchmark != "mmlu" or not sep:
        raise ConfigError(f"{flag} takes mmlu:SUBJECT[,SUBJECT...], got {spec!r}")
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    if chosen == ["rest"] and rest_of is not None:
        return tuple(s for s in subjects() if s not in set(rest_of))
    if not chosen:
        raise ConfigError(f"{flag} names no subject: mmlu:SUBJECT[,SUBJECT...]")
    valid = subjects()
    for name in chosen:
        if name not in valid:
            raise UnknownNameError(f"MMLU subject in {flag}", name, valid)
    return tuple(dict.fromkeys(chosen))


@dataclass
class LeakageResult:
    run_dir: Path
    config: LeakageConfig
    mixes: dict[str, dict[str, Any]]
    training: dict[str, RunRecord]
    measurements: Measurements
    files: dict[str, Path] = field(default_factory=dict)

    def envelope(self) -> dict[str, Any]:
        return envelope("leakage", self.measurements.rows(), config=asdict(self.config), mixes=self.mixes,
                        training={name: {"loss": r.loss, "wall_seconds": r.wall_seconds, "tokens": r.tokens,
                                         "loss_curve": r.to_dict()["loss_curve"],
                                         "trainable_params": r.config.get("trainable_params")}
                                  for name, r in self.training.items()},
                        measurements=self.measurements.to_dict(),
                        files={name: str(path) for name, path in self.files.items()})


def table_rows(measurements: Measurements) -> list[dict[str, Any]]:
    rows = []
    for row in measurements.rows():
        low, high = row.ci95 if row.ci95 is not None else (None, None)
        rows.append({"metric": row.metric, "model": row.task, "subset": (row.group or "").partition("=")[2],
                     "value": row.value, "stderr": row.stderr, "ci_low": low, "ci_high": high, "n": row.n})
    return rows


def _tasks(names: Sequence[str], data_dir: str | None) -> list[Task]:
    options = {"data_dir": data_dir} if data_dir else {}
    return [get_task(f"mmlu_{name}", **options) for name in names]


def _selected(tasks: Sequence[Task], limit: int | None) -> list[tuple[Task, list]]:
    return [(task, select_samples(task.samples(), limit, task.group_by[0] if task.group_by else None))
            for task in tasks]


def _clean_corpus(path: str | Path | None, text_field: str | None, data_dir: str | None) -> Any:
    if path is None:
        relative, default_field = CLEAN_DEFAULT
        path = find_dataset("arXiv abstracts (the default clean text)", relative, data_dir=data_dir,
                            how_to_get="Or give --clean-corpus FILE with your own text.")
        text_field = text_field or default_field
    return load_corpus(path, heldout_fraction=0.05, text_field=text_field or "text")


def _separator(model: WhiteBoxModel) -> int:
    tokenizer = model.tokenizer
    separator = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.bos_token_id
    if separator is None:
        raise ConfigError(f"{model.name}: its tokenizer has neither an end- nor a start-of-text token to separate "
                          f"documents with")
    return int(separator)


def _heldout_stream(model: WhiteBoxModel, texts: Sequence[str], separator: int, seq_len: int) -> np.ndarray:
    tokens: list[int] = []
    for text in texts:
        tokens += [separator] + model.encode(text, add_special_tokens=False)
        if len(tokens) > 32 * seq_len:  # the trainer's held-out loss reads at most 16 windows
            break
    if len(tokens) < seq_len + 1:
        raise ConfigError(f"the clean corpus's held-out part has {len(tokens)} tokens, fewer than one window of "
                          f"{seq_len + 1}: give a larger corpus or a shorter --seq-len")
    return np.asarray(tokens, dtype=np.int64)


def _train(name: str, mix: Mix, heldout: np.ndarray, model: WhiteBoxModel, config: LeakageConfig, out: Path,
           threads: int, progress: bool) -> tuple[RunRecord, Path]:
    spec = RunSpec(name=f"{name}-{mix.digest()}", shape=ModelShape.of(model.module.config),
                   tokens=config.steps * config.batch_size * config.seq_len, lr=config.lr,
                   batch_size=config.batch_size, seq_len=config.seq_len, warmup_fraction=config.warmup_fraction,
                   weight_decay=0.0, seed=config.seed, start_from=model.fingerprint(),
                   trainable_layers=config.trainable_layers)
    folder = out / "train" / spec.name
    vocab = len(model.tokenizer)
    record = train_run(spec, TokenData(mix.stream, heldout, None, vocab), folder, heldout_tokens=16 * config.seq_len,
                       curve_points=4, threads=threads, progress=progress, role=name, start=model)
    assert record is not None  # no stop_after_steps: a run always finishes
    return record, folder


def _mink_scores(model: Model, spec: str | None, items: Sequence[Any], config: LeakageConfig, folder: Path,
                 session_options: dict[str, Any]) -> dict[tuple[str, str], float]:
    """Min-K% of every question through a session whose target is `model` (so its cache answers a rerun)."""
    with RunSession.open(folder, kind="leakage-mink", identity={"k": config.k, "items": [i.key for i in items]},
                         roles=[ModelRole("target", model, spec)], **session_options) as session:
        flags = mink_flags(session, items, k=config.k)
        write_flags(flags, folder / "flags.jsonl")
        session.finish(envelope("leakage-mink", [], k=config.k, n_items=len(flags)))
    return {flag.key: float(flag.score) for flag in flags}  # type: ignore[arg-type]


def _item_records(items: Sequence[Item], records: dict, mink: dict, flags: dict, mix: Mix) -> list[SampleRecord]:
    out = []
    for item in items:
        scores = {f"acc_{m}": float(records[m][item.key].scores["acc"]) for m in MODELS}
        scores.update({f"mink_{m}": mink[m][item.key] for m in MODELS})
        for method, by_key in flags.items():
            verdict = by_key[item.key].contaminated if item.key in by_key else None
            if verdict is not None:
                scores[f"flag_{method}"] = float(verdict)
        scores["copies"] = float(mix.copies.get(item.key, 0))
        out.append(SampleRecord(task=item.task, sample_id=item.sample_id, target=records["base"][item.key].target,
                                metadata={"subject": item.subject, "subset": item.subset}, requests=[],
                                responses=[], scores=scores))
    return out


def _mixes(base: WhiteBoxModel, items: Sequence[Item], corpus: Any, config: LeakageConfig, out: Path,
           log: Callable[[str], Any]) -> dict[str, Mix]:
    """The clean baseline's and the leak run's mixes; the leak run's is written as a corpus for the scans."""
    separator = _separator(base)
    encoded: dict[str, list[int]] = {}  # both mixes read the same clean documents: tokenize them once

    def encode(text: str) -> list[int]:
        if text not in encoded:
            encoded[text] = base.encode(text, add_special_tokens=False)
        return encoded[text]

    clean = [(doc.id, doc.text) for doc in corpus.train]
    mixes = {name: build_mix(items, clean, encode, separator, windows=config.steps * config.batch_size,
                             seq_len=config.seq_len, leak_fraction=fraction, seed=config.seed)
             for name, fraction in (("clean", 0.0), ("leak", config.leak_fraction))}
    mixes["leak"].write_corpus(out / "mix" / "leak.jsonl")
    write_json_atomic(out / "mix" / "mix.json", {name: mix.summary() for name, mix in mixes.items()})
    summary = mixes["leak"].summary()
    log(f"mix: {summary['windows']} windows of {config.seq_len} tokens, {summary['leak_windows']} with a leaked "
        f"item ({summary['items_leaked']} items, {summary['copies_min']}-{summary['copies_max']} copies each)")
    return mixes


def _score_models(base: Model, model_spec: str | None, folders: dict[str, Path | None], tasks: Sequence[Task],
                  config: LeakageConfig, out: Path, session_options: dict[str, Any],
                  log: Callable[[str], Any]) -> tuple[dict, dict]:
    """Each model's evaluation records and Min-K% scores, by (task, sample id)."""
    questions = items_from_tasks(tasks, config.limit)
    records, mink = {}, {}
    for name in MODELS:
        folder = folders[name]
        scored = base if folder is None else load_model(f"hf:{folder}")
        spec = model_spec if folder is None else f"hf:{folder}"
        run = evaluate(scored, tasks, out / "eval" / name, limit=config.limit, seed=config.seed,
                       model_spec=spec, options={"analysis": "leakage", "model": name}, **session_options)
        records[name] = {(r.task, r.sample_id): r for r in RunDir(run.run_dir).records()}
        mink[name] = _mink_scores(scored, spec, questions, config, out / "mink" / name, session_options)
        log(f"evaluated {name} ({run.requests_sent} requests sent, {run.cache_hits} from the cache)")
    return records, mink


def _scan_mix(items: Sequence[Item], tasks: Sequence[Task], config: LeakageConfig,
              out: Path) -> tuple[dict[str, dict], dict[str, ScanOutcome]]:
    """The substring and n-gram scans of the leak run's mix, with recall over the questions in it."""
    questions = items_from_tasks(tasks, config.limit)
    flags, scans = {}, {}
    for method in SCANS:
        params = {"seed": config.seed} if method == "substring" else {}
        scan = scan_corpus(questions, [out / "mix" / "leak.jsonl"], method=method, progress=False, **params)
        write_flags(scan.flags, out / "flags" / f"{method}.jsonl")
        flags[method] = {flag.key: flag for flag in scan.flags}
        scans[method] = scan_outcome(method, items, flags[method])
    return flags, scans


def run_leakage(model: Model, config: LeakageConfig, output_dir: str | Path, *, model_spec: str | None = None,
                clean_corpus: str | Path | None = None, text_field: str | None = None, data_dir: str | None = None,
                threads: int = 2, cache_path: str | Path | None = None, shared_cache: bool = True,
                progress: bool = True, command: list[str] | None = None,
                log: Callable[[str], Any] = print) -> LeakageResult:
    """Train `model` on a clean mix and on a leaked mix, then measure both against the model as it was."""
    from lmaudit.leakage.plot import plot_leakage

    config.check()
    base = require_white_box(model, "a leakage run (it fine-tunes the model)")
    leaked_tasks, control_tasks = _tasks(config.leak_subjects, data_dir), _tasks(config.control_subjects, data_dir)
    tasks = leaked_tasks + control_tasks
    items = leak_items(_selected(leaked_tasks, config.limit), _selected(control_tasks, config.limit), config.setting,
                       train_fraction=config.train_fraction, seed=config.seed)
    corpus = _clean_corpus(clean_corpus, text_field, data_dir)
    data_files = {path: digest for task in tasks for path, digest in task.config().get("data_files", {}).items()}
    identity = {"config": asdict(config), "base": base.fingerprint(), "clean_corpus": corpus.fingerprint()}
    session_options = {"cache_path": cache_path, "shared_cache": shared_cache, "progress": progress}
    out = Path(output_dir)
    with RunSession.open(out, kind="leakage", identity=identity, command=command, dataset_hashes=data_files,
                         options={"model": model_spec, "clean_corpus": corpus.name, "threads": threads},
                         name="leakage", **session_options) as session:
        mixes = _mixes(base, items, corpus, config, out, log)
        heldout = _heldout_stream(base, [doc.text for doc in corpus.heldout], _separator(base), config.seq_len)
        training, folders = {}, {"base": None}
        for name in ("clean", "leak"):
            training[name], folders[name] = _train(name, mixes[name], heldout, base, config, out, threads, progress)
            log(f"trained {name}: held-out loss {training[name].loss:.4f} ({training[name].wall_seconds:.0f} s)")
        records, mink = _score_models(base, model_spec, folders, tasks, config, out, session_options, log)
        flags, scans = _scan_mix(items, tasks, config, out)
        split = {name: split_scores(list(records[name].values()), out / "flags" / "substring.jsonl", ("acc",),
                                    seed=config.seed) for name in MODELS}
        accuracy, differences, calibration = measure_scores(items, records, seed=config.seed)
        mink_auroc, shift_auroc = measure_mink(items, mink)
        measurements = Measurements(accuracy, differences, calibration, mink_auroc, shift_auroc, scans, split)

        done = {(r.task, r.sample_id) for r in session.records()}
        session.append([r for r in _item_records(items, records, mink, flags, mixes["leak"])
                        if (r.task, r.sample_id) not in done])
        result = LeakageResult(out, config, {name: mix.summary() for name, mix in mixes.items()}, training,
                               measurements)
        result.files["table"] = write_table(table_rows(measurements), out / "leakage.csv", TABLE_COLUMNS)
        result.files["figure"] = plot_leakage(measurements, out / "leakage.png",
                                              f"{model_spec or base.name}: {config.setting} leak of "
                                              f"{', '.join(config.leak_subjects)}")
        result.files.update({"mix": out / "mix" / "leak.jsonl", "leak_model": folders["leak"],
                             "clean_model": folders["clean"], "flags": out / "flags" / "substring.jsonl"})
        session.finish(result.envelope())
    return result
