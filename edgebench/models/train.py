"""The one training loop, used for baselines and for every pass that fine-tunes.

Passes that change the objective (distillation, QAT) hand in a `loss_fn(model, x, y) -> loss`;
the loop owns batching, the optimiser, the schedule, seeding and progress.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from edgebench.core.errors import UsageError
from edgebench.models.data import Split

LossFn = Callable[["object", "object", "object"], Any]  # returns a scalar torch tensor


@dataclass(frozen=True)
class TrainConfig:
    epochs: float = 2.0  # fractional epochs are allowed for quick budgets
    lr: float = 2e-3
    batch_size: int = 64
    weight_decay: float = 1e-4
    seed: int = 0

    def as_key(self) -> dict:
        return self.__dict__.copy()


def cross_entropy_loss(model, x, y):
    import torch.nn.functional as F

    return F.cross_entropy(model(x), y)


def fit(model, train: Split, config: TrainConfig, loss_fn: Optional[LossFn] = None,
        progress: Optional[Callable[[int, int], None]] = None, params=None,
        unlabelled: Optional[np.ndarray] = None):
    """Train `model` in place with AdamW and a one-cycle schedule; returns the model in eval mode.

    `unlabelled` (N x C x H x W, a distillation transfer set): every epoch also goes once over these
    images, in batches of their own shuffled in among the labelled ones, each handed to `loss_fn`
    with labels None; the loss then uses only what needs no label (a teacher's soft targets)."""
    import torch

    if unlabelled is not None and loss_fn is None:
        raise UsageError("training on unlabelled images needs a loss that uses no labels (distillation)")
    loss_fn = loss_fn or cross_entropy_loss
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    n = len(train)
    if n < 2:
        raise UsageError(f"the training split has {n} image(s): training needs at least 2 "
                         f"(BatchNorm normalises over a batch)")
    # A split smaller than one batch trains in batches of the whole split: with the usual
    # drop-last batching it would yield no batch at all, and the loop below would never end.
    batch_size = min(config.batch_size, n)
    extra = _UnlabelledBatches(unlabelled, config.batch_size) if unlabelled is not None else None
    steps_per_epoch = max(1, n // batch_size) + (extra.per_epoch if extra else 0)
    total_steps = max(1, int(round(config.epochs * steps_per_epoch)))
    trainable = [p for p in (params if params is not None else model.parameters()) if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total_steps,
                                                   pct_start=0.15)
    model.train()
    x_all = torch.from_numpy(train.x)
    y_all = torch.from_numpy(train.y)
    step = 0
    while step < total_steps:
        order = torch.from_numpy(rng.permutation(n))
        # Index slices, gathered one batch at a time: an epoch's images gathered at once would copy the split.
        labelled = [order[start:start + batch_size] for start in range(0, n - batch_size + 1, batch_size)]
        batches = extra.mixed_with(labelled, rng) if extra else labelled
        for idx in batches:
            optimizer.zero_grad(set_to_none=True)
            if isinstance(idx, _Unlabelled):
                loss = loss_fn(model, idx.images[idx.indices], None)
            else:
                loss = loss_fn(model, x_all[idx], y_all[idx])
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            if progress:
                progress(step, total_steps)
            if step >= total_steps:
                break
    recalibrate_batchnorm(model, train, config.batch_size)
    return model.eval()


class _UnlabelledBatches:
    """One epoch's batches of unlabelled images, shuffled in among the labelled batches."""

    def __init__(self, x: np.ndarray, batch_size: int):
        import torch

        if len(x) < 2:
            raise UsageError(f"{len(x)} unlabelled image(s): training on them needs at least 2 (BatchNorm)")
        self.x = torch.from_numpy(x)
        self.batch_size = min(batch_size, len(x))
        self.per_epoch = len(x) // self.batch_size

    def mixed_with(self, labelled: list, rng: np.random.Generator) -> list:
        """`labelled` batches' indices and this epoch's unlabelled ones, in a random order: neither
        kind comes in a run of its own, which would swing the student between objectives."""
        import torch

        order = torch.from_numpy(rng.permutation(len(self.x)))
        unlabelled = [_Unlabelled(self.x, order[start:start + self.batch_size])
                      for start in range(0, self.per_epoch * self.batch_size, self.batch_size)]
        batches = labelled + unlabelled
        return [batches[i] for i in rng.permutation(len(batches))]


@dataclass(frozen=True)
class _Unlabelled:
    images: Any  # all the unlabelled images, a tensor
    indices: Any  # this batch's, a LongTensor into them


def recalibrate_batchnorm(model, train: Split, batch_size: int = 64, batches: int = 30) -> None:
    """Re-estimate BatchNorm running statistics with a cumulative average over training batches.

    Short schedules leave running stats far from the data's when BN momentum is small (torchvision's
    MobileNetV3 uses 0.01: after a hundred steps the stats are still mostly their initial values),
    and an eval-mode model then predicts one class. This is the standard fix, and cheap.
    """
    import torch
    from torch import nn

    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    model.train()
    with torch.no_grad():
        for start in range(0, min(len(train), batches * batch_size), batch_size):
            model(torch.from_numpy(train.x[start:start + batch_size]))
    for m, momentum in zip(norms, saved):
        m.momentum = momentum


def evaluate_torch(model, split: Split, batch_size: int = 256) -> float:
    """Top-1 of a torch module, for pass-internal decisions (reported accuracy uses the artifact)."""
    import torch

    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(split), batch_size):
            logits = model(torch.from_numpy(split.x[start:start + batch_size]))
            correct += int((logits.argmax(1).numpy() == split.y[start:start + batch_size]).sum())
    return correct / max(1, len(split))
