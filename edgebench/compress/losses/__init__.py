"""Distillation losses, one registry for the families of the literature.

Each loss is a torch module built once the student's and teacher's feature shapes are known (so
FitNets-style adapters can be sized), set up once with the two models (for losses that train
networks of their own: a peer, auxiliary heads, a discriminator, a generator), then called every
step with both models' logits, the intermediate features picked for it and their embeddings (the
classifier's input):

    loss(s_logits, t_logits, s_feats, t_feats, s_emb, t_emb, **batch) -> scalar

`family` says which inputs a loss reads: "response" (logits), "feature" (paired intermediate
layers), "relation" (embeddings of the samples in a batch, compared with each other), "self"
(the student's own stages, no teacher), "mutual" (a peer student), "adversarial" (a
discriminator on the outputs), "datafree" (synthetic inputs from a generator instead of the
data). Losses with `needs_batch` also receive labels, inputs, student and teacher as keywords.

These are written here rather than taken from torchdistill: its losses read a framework-specific
`io_dict` filled by its own forward-hook wrappers and YAML-configured training loop, so adopting
them means adopting that loop; each loss below is a few lines of the paper's formula on tensors.
Third-party losses register through the `edgebench.distill_losses` entry-point group (or a module
named in $EDGEBENCH_PLUGINS calling `register`).
"""
from __future__ import annotations

from edgebench.compress.losses import (  # noqa: F401  (they register on import)
    adversarial,
    datafree,
    feature,
    mutual,
    relation,
    response,
    self_distill,
)
from edgebench.compress.losses.base import LOSSES, DistillLoss, register

# Families whose loss reads paired student/teacher layers, and those that read the student's own.
PAIRED_FEATURES = {"feature"}
OWN_FEATURES = {"self"}


def loss_class(name: str) -> type[DistillLoss]:
    return LOSSES.get(name)


def available_losses() -> list[str]:
    return LOSSES.names()


__all__ = ["LOSSES", "OWN_FEATURES", "PAIRED_FEATURES", "DistillLoss", "available_losses", "loss_class",
           "register"]
