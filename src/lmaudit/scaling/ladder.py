"""A ladder of small Transformers, a fitted L(C), and a prediction registered before the big run is trained.

The default recipe is one family, chosen so that loss falls smoothly with compute on a CPU budget (see
docs/scaling.md for the measurements behind each choice):
- fixed depth, width d_model growing, heads of fixed size, D = tokens_per_param * N (so C = 6 N D grows as N^2);
- peak learning rate lr_scale * d_model^-1.5 (the measured optimum at every ladder size; 1/d_model overshoots the
  larger runs), initial weights of std init_scale / sqrt(d_model), a cosine schedule to 10% of the peak;
- one small batch for every run, so that the smallest runs still take hundreds of optimizer steps;
- a 32-token context: with 128 tokens the larger runs begin to copy from earlier in the context (an ability the
  smaller rungs never reach), which bends the curve away from a power law;
- several seeds per ladder size (the smallest runs vary by ~1% with the seed); the fit sees every run.
Every run uses the same tokenizer, the same held-out windows and, per seed, the same data order.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from lmaudit.core.errors import ConfigError
from lmaudit.core.output import write_json_atomic
from lmaudit.core.results import MetricRow, envelope
from lmaudit.runner.rundir import RESULTS
from lmaudit.scaling.corpus import Corpus, load_corpus
from lmaudit.scaling.fit import ComputeLawFit, fit_compute_law
from lmaudit.scaling.prediction import RegisteredPrediction, read_prediction, register_prediction
from lmaudit.scaling.runs import RunRecord, write_runs
from lmaudit.scaling.train import ModelShape, RunSpec, TokenData, train_run


@dataclass(frozen=True)
class LadderConfig:
    widths: tuple[int, ...] = (16, 24, 32, 40, 48, 56)
    target_width: int = 104
    n_layers: int = 3
    head_dim: int = 8
    tokens_per_param: float = 10.0
    lr_scale: float = 2.4  # peak learning rate = lr_scale * d_model^-lr_exponent
    lr_exponent: float = 1.5  # measured on this ladder: the best rate falls as d^-1.5 (runs also get longer)
    final_lr_fraction: float = 0.1  # cosine decay to 10% of the peak (to zero is worse here at every size)
    batch_size: int = 8  # sequences; one batch size for all, so the smallest runs still take hundreds of steps
    seq_len: int = 32
    vocab_size: int = 512
    heldout_fraction: float = 0.05
    heldout_tokens: int = 131072
    init_scale: float = 0.63  # initial weight std = init_scale / sqrt(d_model): "small init", sqrt(2 / (5 d))
    seed: int = 0
    seeds_per_size: int = 3  # the smallest runs' losses vary with the seed by 1-2%; the fit sees every seed
    resamples: int = 1000
    min_ladder_span: float = 100.0  # largest / smallest ladder compute
    min_target_ratio: float = 10.0  # target compute / largest ladder compute

    def shape(self, width: int) -> ModelShape:
        if width % self.head_dim or width <= 0:
            raise ConfigError(f"width {width} is not a positive multiple of head_dim {self.head_dim}")
        d_ff = int(math.ceil(8 * width / 3 / 8) * 8)  # the usual 8/3 d of a gated MLP, rounded up to 8
        return ModelShape(width, self.n_layers, width // self.head_dim, d_ff)

    def spec(self, width: int, name: str, seed: int) -> RunSpec:
        shape = self.shape(width)
        tokens = int(round(self.tokens_per_param * shape.non_embedding_params()))
        return RunSpec(name=name, shape=shape, tokens=tokens, lr=self.lr_scale * width ** -self.lr_exponent,
                       batch_size=self.batch_size, seq_len=self.seq_len, final_lr_fraction=self.final_lr_fraction,
                       init_std=self.init_scale / math.sqrt(width), seed=seed)

    def ladder_specs(self) -> list[RunSpec]:
        return [self.spec(w, f"ladder-d{w}-s{self.seed + k}", self.seed + k)
                for w in self.widths for k in range(self.seeds_per_size)]

    def target_spec(self) -> RunSpec:
        return self.spec(self.target_width, f"target-d{self.target_width}", self.seed)

    def check(self) -> None:
        """The ladder must span min_ladder_span in compute and the target lie min_target_ratio beyond it."""
        if len(self.widths) < 5 or len(set(self.widths)) != len(self.widths):
            raise ConfigError(f"a ladder needs at least 5 distinct widths, got {list(self.widths)}")
        computes = [6.0 * s.shape.non_embedding_params() * s.trained_tokens for s in self.ladder_specs()]
        target = self.target_spec()
        target_compute = 6.0 * target.shape.non_embedding_params() * target.trained_tokens
        if max(computes) / min(computes) < self.min_ladder_span:
            raise ConfigError(f"ladder spans {max(computes) / min(computes):.0f}x compute, fewer than "
                              f"{self.min_ladder_span:.0f}x: widen the range of widths")
        if target_compute / max(computes) < self.min_target_ratio:
            raise ConfigError(f"target has {target_compute / max(computes):.1f}x the largest ladder compute, "
                              f"fewer than {self.min_target_ratio:.0f}x: raise target_width")


PRESETS: dict[str, LadderConfig] = {
    "default": LadderConfig(),
    # Seconds on a laptop: for tests and for trying the commands; its prediction is not meant to be accurate.
    "tiny": LadderConfig(widths=(8, 12, 16, 20, 28), target_width=56, n_layers=2, head_dim=4, tokens_per_param=1.0,
                         lr_scale=0.2, lr_exponent=1.0, batch_size=4, heldout_fraction=0.15, heldout_tokens=4096,
                         resamples=200),
}


@dataclass(frozen=True)
class LadderResult:
    ladder: tuple[RunRecord, ...]
    target: RunRecord
    fit: ComputeLawFit
    prediction: RegisteredPrediction
    relative_error: float  # (actual - predicted) / actual
    wall_seconds: float
    files: dict[str, Path] = field(default_factory=dict)

    def envelope(self) -> dict[str, Any]:
        """results.json: the prediction against the outcome as metric rows, and everything else beside them."""
        loss = self.prediction.loss
        rows = [MetricRow("predicted_loss", loss.value, ci95=(loss.ci_low, loss.ci_high), task=self.target.name),
                MetricRow("actual_loss", self.target.loss, task=self.target.name),
                MetricRow("relative_error", self.relative_error, task=self.target.name)]
        return envelope("scaling-ladder", rows, **self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        return {"ladder": [r.to_dict() for r in self.ladder], "target": self.target.to_dict(),
                "fit": self.fit.to_dict(), "prediction": self.prediction.to_dict(),
                "actual_loss": self.target.loss, "relative_error": self.relative_error,
                "within_ci": self.prediction.loss.contains(self.target.loss), "wall_seconds": self.wall_seconds,
                "files": {k: str(v) for k, v in self.files.items()}}


def prepare_data(corpus: Corpus, vocab_size: int, folder: Path) -> TokenData:
    """Train the tokenizer and encode both splits once; reused while the corpus and vocabulary are unchanged."""
    from lmaudit.scaling.tokenizer import encode_documents, load_tokenizer, train_tokenizer

    key = {"corpus": corpus.name, "fingerprint": corpus.fingerprint(), "vocab_size": vocab_size}
    meta_path = folder / "meta.json"
    tokenizer_dir = folder / "tokenizer"
    if meta_path.exists() and json.loads(meta_path.read_text()) == key:
        return TokenData(np.load(folder / "train.npy"), np.load(folder / "heldout.npy"), tokenizer_dir, vocab_size)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer((doc.text for doc in corpus.train), vocab_size)
    tokenizer.save_pretrained(tokenizer_dir)
    tokenizer = load_tokenizer(tokenizer_dir)
    train = encode_documents(tokenizer, [doc.text for doc in corpus.train])
    heldout = encode_documents(tokenizer, [doc.text for doc in corpus.heldout])
    np.save(folder / "train.npy", train)
    np.save(folder / "heldout.npy", heldout)
    meta_path.write_text(json.dumps(key))
    return TokenData(train, heldout, tokenizer_dir, len(tokenizer))


def _train(spec: RunSpec, data: TokenData, out: Path, config: LadderConfig, progress: bool, threads: int,
           role: str) -> RunRecord:
    record = train_run(spec, data, out / "runs" / spec.name, heldout_tokens=config.heldout_tokens,
                       progress=progress, threads=threads, role=role)
    assert record is not None  # no stop_after_steps: the run always finishes
    return record


def run_ladder(out_dir: str | Path, *, config: LadderConfig = PRESETS["default"], corpus: str | Path | None = None,
               threads: int = 1, progress: bool = True, log: Any = print) -> LadderResult:
    """Train the ladder, fit L(C), register the target's predicted loss, train the target, compare.

    Rerunning with the same `out_dir` resumes: finished runs are reused, an interrupted one continues from its
    checkpoint, and an already registered prediction is kept (it must match the target) rather than remade.
    """
    config.check()
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    texts = load_corpus(corpus, heldout_fraction=config.heldout_fraction)
    log(f"corpus {texts.name}: {len(texts.train)} train / {len(texts.heldout)} held-out documents")
    data = prepare_data(texts, config.vocab_size, out / "data")
    log(f"tokens: {len(data.train):,} train / {len(data.heldout):,} held-out (vocabulary {data.vocab_size})")
    if config.heldout_tokens > len(data.heldout):
        log(f"note: only {len(data.heldout):,} held-out tokens (asked for {config.heldout_tokens:,})")

    ladder = []
    for spec in config.ladder_specs():
        record = _train(spec, data, out, config, progress, threads, "ladder")
        ladder.append(record)
        log(f"{record.name}: N={record.n_params:,} D={record.tokens:,} C={record.compute:.3g} "
            f"loss={record.loss:.4f} ({record.wall_seconds:.0f}s)")
    write_runs(ladder, out / "runs")
    fit = fit_compute_law([r.compute for r in ladder], [r.loss for r in ladder], resamples=config.resamples,
                          seed=config.seed)

    target_spec = config.target_spec()
    n_target = target_spec.shape.non_embedding_params()
    target_compute = 6.0 * n_target * target_spec.trained_tokens
    predicted = fit.extrapolate(target_compute)
    content = {
        "target": {"name": target_spec.name, "n_params": n_target, "tokens": target_spec.trained_tokens,
                   "compute": target_compute, "spec": target_spec.to_dict()},
        "loss": predicted.to_dict(),
        "fit": fit.to_dict(),
        "ladder": [{"name": r.name, "n_params": r.n_params, "tokens": r.tokens, "compute": r.compute,
                    "loss": r.loss} for r in ladder],
        "corpus": {"name": texts.name, "fingerprint": texts.fingerprint()},
        "config": asdict(config),
    }
    pred_path = out / "prediction.json"
    if pred_path.exists():
        prediction = read_prediction(pred_path)
        if (prediction.target, prediction.compute) != (target_spec.name, target_compute):
            raise ConfigError(f"{pred_path} registers a prediction for another target; use another --out folder")
        log(f"registered prediction kept from {prediction.created_at}")
    else:
        prediction = register_prediction(pred_path, content)
    log(f"registered prediction for {target_spec.name} (C={target_compute:.3g}, {target_compute / ladder[-1].compute:.1f}x "
        f"the largest ladder run): loss {prediction.loss.value:.4f} "
        f"[{prediction.loss.ci_low:.4f}, {prediction.loss.ci_high:.4f}] sha256 {prediction.sha256[:12]}")

    target = _train(target_spec, data, out, config, progress, threads, "target")
    runs_csv, runs_json = write_runs(ladder + [target], out / "runs")
    error = (target.loss - prediction.loss.value) / target.loss
    log(f"{target.name}: actual loss {target.loss:.4f}, predicted {prediction.loss.value:.4f} "
        f"(relative error {100 * error:+.2f}%, {'inside' if prediction.loss.contains(target.loss) else 'outside'} "
        f"the {100 * fit.confidence:.0f}% interval)")
    result = LadderResult(tuple(ladder), target, fit, prediction, error, time.perf_counter() - started,
                          {"runs_csv": runs_csv, "runs_json": runs_json, "prediction": pred_path})
    from lmaudit.scaling.plot import plot_scaling

    plot_path = plot_scaling(out / "ladder.png", ladder, fit, prediction=prediction, target=target)
    result = replace(result, files={**result.files, "plot": plot_path, "results": out / RESULTS})
    write_json_atomic(out / RESULTS, result.envelope())
    return result
