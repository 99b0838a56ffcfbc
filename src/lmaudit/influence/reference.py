"""Reference computations on models small enough to build the curvature exactly, to check the estimator.

- `tiny_lm`: a causal LM of about 1.5k parameters (2 Llama blocks with single-head attention and a bias-free
  MLP, hidden size 8, vocabulary 16) trained by the scaling package's trainer on real text folded into a
  15-character alphabet; saved as a Hugging Face folder, so `hf:<folder>` loads it like any other model.
- `exact_gauss_newton`: the Gauss-Newton Hessian of the training objective per tracked layer, exactly: the
  expectation over every label at every position, sum_u J_u^T (diag p_u - p_u p_u^T) J_u.
- `fisher_blocks`: the same blocks from per-sequence gradients with given labels (the Fisher a strategy fits).
- `exact_influence`: -grad f^T (G_l + lambda_l I)^-1 grad L(z), block by block, lambda_l = scale x mean
  eigenvalue of G_l.

Gradients here come from plain autograd on the weights (`weight.grad`), not from the estimator's hooks, so the
checks compare two independent computations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lmaudit.influence.data import EncodedQuery, Query
from lmaudit.influence.gradients import grads_only_for
from lmaudit.influence.modules import TrackedLayer

ALPHABET = " etaoinsrhlcdu?"  # the 14 most frequent characters of English text, and one for all others
SEPARATOR = "<s>"  # token 0: begins every document (bos, eos and pad, as the scaling trainer sets them)


def fold_text(text: str) -> str:
    """Lower-case text in the tiny alphabet: whitespace runs become one space, other characters '?'."""
    out = []
    for char in " ".join(text.lower().split()):
        out.append(char if char in ALPHABET else "?")
    return "".join(out)


def char_tokenizer() -> Any:
    """One token per character of ALPHABET, after the separator: 16 tokens in all."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {SEPARATOR: 0, **{char: i + 1 for i, char in enumerate(ALPHABET)}}
    core = Tokenizer(models.WordLevel(vocab, unk_token="?"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token=SEPARATOR, eos_token=SEPARATOR,
                                   pad_token=SEPARATOR, unk_token="?")


def tiny_lm(folder: str | Path, texts: Sequence[str], *, seed: int = 0, steps: int = 400, seq_len: int = 32,
            d_model: int = 8, d_ff: int = 16, lr: float = 0.02) -> Path:
    """Train (or reuse) the tiny model on `texts` (folded to the alphabet) and return its folder."""
    from lmaudit.scaling import ModelShape, RunSpec, TokenData, train_run

    folder = Path(folder)
    if (folder / "config.json").exists():
        return folder
    tokenizer_dir = folder.parent / f"{folder.name}-tokenizer"
    tokenizer = char_tokenizer()
    tokenizer.save_pretrained(str(tokenizer_dir))
    stream = []
    for text in texts:
        stream += [0] + tokenizer.encode(fold_text(text), add_special_tokens=False)
    tokens = np.asarray(stream, dtype=np.uint16)
    cut = int(len(tokens) * 0.9)
    spec = RunSpec(name="tiny", shape=ModelShape(d_model=d_model, n_layers=2, n_heads=1, d_ff=d_ff),
                   tokens=steps * 16 * seq_len, lr=lr, batch_size=16, seq_len=seq_len, seed=seed)
    train_run(spec, TokenData(tokens[:cut], tokens[cut:], tokenizer_dir, len(tokenizer)), folder,
              heldout_tokens=4096, threads=1, progress=False, role="reference")
    return folder


def _weights(model: Any, layers: Sequence[TrackedLayer]) -> list[tuple[Any, Any]]:
    named = dict(model.module.named_modules())
    return [(named[layer.name].weight, named[layer.name].bias) for layer in layers]


def _layer_gradient(layer: TrackedLayer, weight_grad: Any, bias_grad: Any) -> Any:
    """A weight's gradient in the estimator's layout: (out, in) with the bias gradient as the last column."""
    import torch

    grad = weight_grad if layer.kind == "linear" else weight_grad.T
    if layer.bias:
        grad = torch.cat([grad, bias_grad[:, None]], dim=1)
    return grad


def _logprobs(model: Any, rows: Sequence[Sequence[int]]) -> Any:
    import torch

    ids = torch.tensor([list(r) for r in rows], device=model.device)
    logits = model.forward(ids)
    return torch.log_softmax(logits[:, :-1].double(), dim=-1), ids


def per_sequence_gradients(model: Any, layers: Sequence[TrackedLayer], rows: Sequence[Sequence[int]],
                           targets_from: Sequence[int] | None = None,
                           labels: Sequence[Sequence[int]] | None = None) -> list[list[Any]]:
    """grad of each row's summed NLL (of its targets, with its own or the given labels), per layer, float64."""
    import torch

    weights = _weights(model, layers)
    params = [p for pair in weights for p in pair if p is not None]
    out = []
    with grads_only_for(model.module, params):
        for index, row in enumerate(rows):
            logprobs, ids = _logprobs(model, [row])
            start = 1 if targets_from is None else targets_from[index]
            targets = ids[0, 1:] if labels is None else torch.tensor(labels[index], device=ids.device)
            picked = logprobs[0].gather(-1, targets[:, None]).squeeze(-1)
            loss = -picked[start - 1:].sum()
            grads = torch.autograd.grad(loss, params)
            it = iter(grads)
            per_layer = []
            for layer, (_, bias) in zip(layers, weights):
                weight_grad = next(it)
                bias_grad = next(it) if bias is not None else None
                per_layer.append(_layer_gradient(layer, weight_grad, bias_grad).double())
            out.append(per_layer)
    return out


def fisher_blocks(gradients: Sequence[Sequence[Any]]) -> list[Any]:
    """mean_z vec(DW_z) vec(DW_z)^T per layer, from per-sequence gradients."""
    blocks = []
    for layer_index in range(len(gradients[0])):
        flat = np.stack([g[layer_index].flatten().cpu().numpy() for g in gradients])
        blocks.append(flat.T @ flat / len(gradients))
    return blocks


def exact_gauss_newton(model: Any, layers: Sequence[TrackedLayer], rows: Sequence[Sequence[int]]) -> list[Any]:
    """The Gauss-Newton blocks, exactly: every position, every label v weighted by p(v), averaged over rows."""
    import torch

    weights = _weights(model, layers)
    params = [p for pair in weights for p in pair if p is not None]
    sizes = [layer.params for layer in layers]
    blocks = [np.zeros((n, n)) for n in sizes]
    with grads_only_for(model.module, params):
        for row in rows:
            logprobs, _ = _logprobs(model, [row])
            positions, vocab = logprobs.shape[1], logprobs.shape[2]
            probs = logprobs.detach().exp()[0].flatten()  # (positions * vocab,)
            basis = torch.eye(positions * vocab, dtype=logprobs.dtype, device=logprobs.device)
            basis = basis.view(positions * vocab, 1, positions, vocab)
            grads = torch.autograd.grad(logprobs, params, grad_outputs=basis, is_grads_batched=True)
            it = iter(grads)
            for index, (layer, (_, bias)) in enumerate(zip(layers, weights)):
                weight_grad = next(it)
                bias_grad = next(it) if bias is not None else None
                if layer.kind != "linear":
                    weight_grad = weight_grad.transpose(1, 2)
                flat = weight_grad if bias_grad is None else torch.cat([weight_grad, bias_grad[:, :, None]], dim=2)
                flat = flat.flatten(1).double().cpu().numpy()  # (positions * vocab, params)
                blocks[index] += (flat * probs.cpu().numpy()[:, None]).T @ flat
    return [block / len(rows) for block in blocks]


def exact_influence(blocks: Sequence[Any], query_gradients: Sequence[Sequence[Any]],
                    train_gradients: Sequence[Sequence[Any]], *, damping_scale: float = 0.1) -> np.ndarray:
    """Scores (queries, sequences) = sum_l q_l^T (G_l + lambda_l I)^-1 DW_l, q the completion-NLL gradient."""
    total = np.zeros((len(query_gradients), len(train_gradients)))
    for index, block in enumerate(blocks):
        damping = damping_scale * np.trace(block) / block.shape[0]
        inverse = np.linalg.inv(block + damping * np.eye(block.shape[0]))
        queries = np.stack([q[index].flatten().cpu().numpy() for q in query_gradients])
        train = np.stack([g[index].flatten().cpu().numpy() for g in train_gradients])
        total += queries @ inverse @ train.T
    return total


def query_gradient_list(model: Any, layers: Sequence[TrackedLayer], queries: Sequence[EncodedQuery]) -> list:
    return per_sequence_gradients(model, layers, [q.tokens for q in queries],
                                  targets_from=[q.completion_start for q in queries])


def table_to_corpus(table: str | Path, text_column: str, out: str | Path, *, id_column: str | None = None,
                    limit: int | None = None, fold: bool = False) -> Path:
    """A CSV/JSONL table's text column as a JSONL corpus ({"id", "text"} per line) the corpus readers take; the
    checks use it on the arXiv abstracts of the shared data. `fold` maps the text to the tiny alphabet."""
    import json

    from lmaudit.data import read_rows, require_field

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as handle:
        for index, row in enumerate(read_rows(table)):
            if limit is not None and index >= limit:
                break
            text = " ".join(require_field(row, text_column).split())
            doc_id = str(row.values[id_column]) if id_column else f"{Path(table).stem}:{row.line}"
            handle.write(json.dumps({"id": doc_id, "text": fold_text(text) if fold else text}) + "\n")
    return out


def exact_check(model: Any, layers: Sequence[TrackedLayer], sequences: Sequence[Any], queries: Sequence[EncodedQuery],
                workdir: str | Path, *, seeds: Sequence[int] = (0, 1, 2),
                strategies: Sequence[str] = ("identity", "diagonal", "kfac", "ekfac"),
                kronfluence: Sequence[str] = ()) -> dict[str, Any]:
    """Spearman correlation of each strategy's scores (true Fisher, default damping) with exact damped
    block-diagonal Gauss-Newton influence over the same layers, per seed; and of kronfluence's, when asked."""
    from scipy.stats import spearmanr

    from lmaudit.influence.estimator import InfluenceEstimator
    from lmaudit.influence.factors import FactorSettings

    workdir = Path(workdir)
    rows = [s.tokens for s in sequences]
    exact = exact_influence(exact_gauss_newton(model, layers, rows), query_gradient_list(model, layers, queries),
                            per_sequence_gradients(model, layers, rows))
    out: dict[str, Any] = {"lmaudit": {}, "kronfluence": {}}
    for strategy in strategies:
        values = []
        for seed in seeds:
            folder = workdir / f"lmaudit-{strategy}-{seed}"
            estimator = InfluenceEstimator(model, layers, FactorSettings(strategy=strategy, seed=seed), log=None)
            factors = estimator.fit(sequences, folder)
            scores = estimator.scores(factors, queries, sequences, folder / "parts").total.T
            values.append(float(spearmanr(scores.flatten(), exact.flatten())[0]))
        out["lmaudit"][strategy] = values
    if kronfluence:
        from lmaudit.influence.peer import kronfluence_scores

        for strategy in kronfluence:
            values = []
            for seed in seeds:
                scores, _ = kronfluence_scores(model.module, layers, rows, queries, strategy=strategy,
                                               empirical_fisher=False, seed=seed,
                                               output_dir=workdir / f"kronfluence-{strategy}-{seed}")
                values.append(float(spearmanr(scores.flatten(), exact.flatten())[0]))
            out["kronfluence"][strategy] = values
    return out


@dataclass(frozen=True)
class TinySetup:
    """The checks' setting: the tiny model, a corpus of abstracts it was not trained on, and queries."""

    model_dir: Path
    corpus: Path
    queries: list[Query]


def tiny_setup(abstracts_csv: str | Path, workdir: str | Path, *, documents: int = 16,
               queries: int = 6) -> TinySetup:
    """Train the tiny model on the first 400 abstracts of `abstracts_csv` (the arXiv collection's `summaries`),
    write abstracts 600.. as its corpus (folded) and take queries from abstracts 800..: each one's first 20
    characters as the prompt, the next 10 as the completion (31 tokens with the separator: within the context)."""
    import csv
    import json

    workdir = Path(workdir)
    with open(abstracts_csv, encoding="utf-8", newline="") as handle:
        texts = [" ".join(row["summaries"].split()) for row in csv.DictReader(handle)]
    model_dir = tiny_lm(workdir / "model", texts[:400], steps=150, seq_len=32)
    corpus = workdir / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"{Path(abstracts_csv).stem}:{600 + i}", "text": fold_text(t)}) + "\n"
                              for i, t in enumerate(texts[600:600 + documents])), encoding="utf-8")
    folded = [fold_text(t) for t in texts[800:800 + queries]]
    return TinySetup(model_dir, corpus, [Query(f"q{i}", t[:20], t[20:30]) for i, t in enumerate(folded)])
