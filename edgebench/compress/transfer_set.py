"""How the passes that distil use a transfer set (`--transfer-data`: unlabelled images the teacher
labels): which training reads it, what the candidate's note and lineage say, and a warning when
the teacher's answers on it look unlike its answers on the images it was trained on.

That warning exists because a transfer set from another domain can wreck a student quietly: the
teacher, shown images unlike its training images, often answers one class for most of them, and
a student distilled on those answers learns that bias (50%-pruned mobilenetv3 recovered on MNIST
scans as the transfer set of sklearn's digits fell to chance, 10%, where recovery without it
reached 53%: `benchmarks/accuracy_levers.py --data digits --input-size 32 --epochs 0.2 --levers reference
transfer`, a teacher trained 0.2 epochs).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

import numpy as np

from edgebench.compress.base import Candidate, Context

# The teacher's most frequent class on the transfer set, as a share of its sample, above which the
# note warns: at least this share and at least twice that class's share on the training images.
SKEWED_SHARE = 0.5
SAMPLE = 512  # images of each set the teacher answers for the check


def recovery_transfer(ctx: Context, distill: bool):
    """The transfer set a rewritten model's KD recovery also trains on, the model before the
    rewrite labelling it; None when recovery reads the labels alone."""
    return ctx.dataset.transfer if distill else None


def taught_on(transfer) -> str:
    """The words a candidate's note adds for the transfer set its training also ran on."""
    return f" and {transfer.describe()}" if transfer is not None else ""


def record_transfer(derived: Candidate, transfer, teacher, ctx: Context) -> Candidate:
    """`derived` with the transfer set its last pass trained on in that pass's lineage step (where a
    reader of the recipe looks; runs with and without one are kept apart by the run setting, and
    trainings by `finetune`'s key) and, where the teacher's answers on it are skewed, a note that
    says so."""
    if transfer is None:
        return derived
    step = {**derived.lineage[-1], "transfer": {"source": transfer.source, "images": len(transfer)}}
    warning = skew_warning(teacher, transfer.x, ctx.dataset.train.x, ctx.dataset.classes)
    return replace(derived, lineage=derived.lineage[:-1] + (step,),
                   notes=derived.notes + ((warning,) if warning else ()))


def skew_warning(teacher, transfer_x: np.ndarray, train_x: np.ndarray, classes: list) -> Optional[str]:
    """A one-line warning when the teacher piles the transfer images into one class far more than it
    does the training images, else None."""
    on_transfer, on_train = _class_shares(teacher, transfer_x), _class_shares(teacher, train_x)
    top = int(on_transfer.argmax())
    share = float(on_transfer[top])
    if share < SKEWED_SHARE or share < 2 * float(on_train[top]):
        return None
    name = classes[top] if top < len(classes) else str(top)
    return (f"transfer set skewed: the teacher answers class '{name}' for {share:.0%} of the transfer images "
            f"(for {float(on_train[top]):.0%} of the training images), so they look unlike what it was trained on "
            f"and distilling on its answers there may teach the student that bias; check the candidate's accuracy "
            f"against the same recipe without --transfer-data")


def _class_shares(teacher, x: np.ndarray) -> np.ndarray:
    """The share of each class among the teacher's top-1 answers on (up to SAMPLE of) `x`."""
    import torch

    pick = np.random.default_rng(0).permutation(len(x))[:SAMPLE]
    teacher.eval()
    with torch.no_grad():
        logits = teacher(torch.from_numpy(x[np.sort(pick)]))
    counts = np.bincount(logits.argmax(1).numpy(), minlength=logits.shape[1])
    return counts / counts.sum()
