"""kronfluence 1.0.1 on the same model, layers, sequences and queries: the peer of the parity checks and the
benchmark. Nothing in lmaudit's estimator imports this; kronfluence is needed only when this runs.

kronfluence's conventions, which a comparison must share: a sequence's loss is the sum of its token losses, its
measurement here is the completion's summed negative log-likelihood (so its scores have lmaudit's sign), the
damping is 0.1 x the mean eigenvalue per module (`damping_factor=None`), K-FAC's two factors are averaged over
tokens, and EK-FAC's eigenvalues are refitted per sequence.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lmaudit.influence.data import EncodedQuery
from lmaudit.influence.modules import TrackedLayer


def _batches(rows: Sequence[Sequence[int]], starts: Sequence[int], pad: int) -> list[dict[str, Any]]:
    import torch

    items = []
    for row, start in zip(rows, starts):
        ids = torch.tensor(list(row))
        labels = ids.clone()
        labels[:start] = -100  # tokens before `start` are context, not targets
        items.append({"input_ids": ids, "labels": labels, "pad": pad})
    return items


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    import torch

    width = max(len(item["input_ids"]) for item in items)
    pad = items[0]["pad"]

    def padded(key: str, value: int) -> Any:
        return torch.stack([torch.cat([item[key], torch.full((width - len(item[key]),), value)]) for item in items])

    mask = torch.stack([torch.cat([torch.ones(len(item["input_ids"])), torch.zeros(width - len(item["input_ids"]))])
                        for item in items]).long()
    return {"input_ids": padded("input_ids", pad), "labels": padded("labels", -100), "attention_mask": mask}


def kronfluence_scores(module: Any, layers: Sequence[TrackedLayer], train_rows: Sequence[Sequence[int]],
                       queries: Sequence[EncodedQuery], *, strategy: str = "ekfac", empirical_fisher: bool = True,
                       batch_size: int = 8, output_dir: str | Path, seed: int = 0,
                       pad_token: int = 0) -> tuple[Any, dict[str, float]]:
    """(scores (queries, sequences) as a numpy array, seconds for factors and scores). `module` is copied, since
    kronfluence rewraps the tracked layers of the module it is given."""
    import torch
    import torch.nn.functional as F
    from kronfluence.analyzer import Analyzer, prepare_model
    from kronfluence.arguments import FactorArguments, ScoreArguments
    from kronfluence.task import Task
    from kronfluence.utils.dataset import DataLoaderKwargs

    names = [layer.name for layer in layers]

    class CausalLMTask(Task):
        def compute_train_loss(self, batch: Any, model: Any, sample: bool = False) -> Any:
            logits = model(input_ids=batch["input_ids"]).logits[:, :-1].float()
            flat = logits.reshape(-1, logits.size(-1))
            targets = batch["labels"][:, 1:].reshape(-1)
            if sample:
                with torch.no_grad():
                    sampled = torch.multinomial(torch.softmax(flat.detach(), dim=-1), 1).flatten()
                targets = torch.where(targets == -100, targets, sampled)
            return F.cross_entropy(flat, targets, reduction="sum", ignore_index=-100)

        def compute_measurement(self, batch: Any, model: Any) -> Any:
            return self.compute_train_loss(batch, model, sample=False)

        def get_influence_tracked_modules(self) -> list[str]:
            return names

        def get_attention_mask(self, batch: Any) -> Any:
            return batch["attention_mask"]

    class Rows(torch.utils.data.Dataset):
        def __init__(self, items: list[dict[str, Any]]):
            self.items = items

        def __len__(self) -> int:
            return len(self.items)

        def __getitem__(self, index: int) -> dict[str, Any]:
            return self.items[index]

    train = Rows(_batches(train_rows, [1] * len(train_rows), pad_token))
    query_set = Rows(_batches([q.tokens for q in queries], [q.completion_start for q in queries], pad_token))
    task = CausalLMTask()
    model = prepare_model(copy.deepcopy(module).eval(), task)
    analyzer = Analyzer("lmaudit-peer", model, task, cpu=True, output_dir=str(output_dir), disable_model_save=True,
                        disable_tqdm=True)
    analyzer.set_dataloader_kwargs(DataLoaderKwargs(collate_fn=_collate))
    torch.manual_seed(seed)
    started = time.perf_counter()
    analyzer.fit_all_factors("factors", dataset=train, per_device_batch_size=batch_size, overwrite_output_dir=True,
                             factor_args=FactorArguments(strategy=strategy, use_empirical_fisher=empirical_fisher))
    fitted = time.perf_counter()
    analyzer.compute_pairwise_scores("scores", factors_name="factors", query_dataset=query_set, train_dataset=train,
                                     per_device_query_batch_size=batch_size, per_device_train_batch_size=batch_size,
                                     score_args=ScoreArguments(damping_factor=None), overwrite_output_dir=True)
    scored = time.perf_counter()
    scores = analyzer.load_pairwise_scores("scores")["all_modules"].double().numpy()
    return scores, {"factors": fitted - started, "scores": scored - fitted}
