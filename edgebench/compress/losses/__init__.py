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
named in $EDGEBENCH_PLUGINS calling `register` on a subclass of `losses.base.DistillLoss`).

This package itself imports no torch: the built-in losses are listed by where they live and loaded
when first used, so `edgebench compare` with a bad argument answers before torch has loaded.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from edgebench.core.registry import Registry

if TYPE_CHECKING:
    from edgebench.compress.losses.base import DistillLoss

LOSSES: Registry[type[DistillLoss]] = Registry("distillation loss", "edgebench.distill_losses")

# Each class also carries `@register` with the same name and aliases (it sets `cls.name`);
# tests/test_compress_losses.py checks that the list and the classes agree.
_BUILTIN = "edgebench.compress.losses"
LOSSES.add_lazy("kd", f"{_BUILTIN}.response:HintonKD", aliases=("hinton",))
LOSSES.add_lazy("fitnet", f"{_BUILTIN}.feature:FitNets", aliases=("hint",))
LOSSES.add_lazy("at", f"{_BUILTIN}.feature:AttentionTransfer", aliases=("attention",))
LOSSES.add_lazy("nst", f"{_BUILTIN}.feature:NeuronSelectivityTransfer")
LOSSES.add_lazy("ft", f"{_BUILTIN}.feature:FactorTransfer", aliases=("factor",))
LOSSES.add_lazy("fsp", f"{_BUILTIN}.feature:FlowOfSolution", aliases=("flow",))
LOSSES.add_lazy("vid", f"{_BUILTIN}.feature:VariationalInformation")
LOSSES.add_lazy("ab", f"{_BUILTIN}.feature:ActivationBoundaries", aliases=("boundary",))
LOSSES.add_lazy("pkt", f"{_BUILTIN}.relation:ProbabilisticKT")
LOSSES.add_lazy("sp", f"{_BUILTIN}.relation:SimilarityPreserving", aliases=("similarity",))
LOSSES.add_lazy("rkd", f"{_BUILTIN}.relation:RelationalKD", aliases=("relational",))
LOSSES.add_lazy("cc", f"{_BUILTIN}.relation:CorrelationCongruence", aliases=("correlation",))
LOSSES.add_lazy("byot", f"{_BUILTIN}.self_distill:BeYourOwnTeacher", aliases=("self-distillation",))
LOSSES.add_lazy("dml", f"{_BUILTIN}.mutual:DeepMutualLearning", aliases=("mutual",))
LOSSES.add_lazy("adversarial", f"{_BUILTIN}.adversarial:AdversarialKD", aliases=("gan",))
LOSSES.add_lazy("datafree", f"{_BUILTIN}.datafree:DataFreeKD", aliases=("dafl",))

# Families whose loss reads paired student/teacher layers, and those that read the student's own.
PAIRED_FEATURES = {"feature"}
OWN_FEATURES = {"self"}


def register(name: str, *aliases: str):
    def deco(cls):
        cls.name = name
        LOSSES.add(name, cls, aliases=aliases)
        return cls
    return deco


def loss_class(name: str) -> type[DistillLoss]:
    """The loss registered as `name` (imports its module, and torch, on first use)."""
    return LOSSES.get(name)


def available_losses() -> list[str]:
    return LOSSES.names()


def __getattr__(name: str):
    """`DistillLoss` where plugins written before this package turned torch-free import it from
    (`from edgebench.compress.losses import DistillLoss`): loaded, with torch, on first use."""
    if name == "DistillLoss":
        from edgebench.compress.losses.base import DistillLoss
        return DistillLoss
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["LOSSES", "OWN_FEATURES", "PAIRED_FEATURES", "available_losses", "loss_class", "register"]
