"""Distillation losses, one registry for the families of the literature.

Each loss is a torch module built once the student's and teacher's feature shapes are known (so
FitNets-style adapters can be sized), then called every step with both models' logits, the
intermediate features picked for it, and their embeddings (the classifier's input):

    loss(s_logits, t_logits, s_feats, t_feats, s_emb, t_emb) -> scalar

`family` says which inputs a loss reads: "response" (logits), "feature" (paired intermediate
layers), "relation" (embeddings of the samples in a batch, compared with each other).

These are written here rather than taken from torchdistill: its losses read a framework-specific
`io_dict` filled by its own forward-hook wrappers and YAML-configured training loop, so adopting
them means adopting that loop; each loss below is a few lines of the paper's formula on tensors.
Losses registered as `planned` are known names whose implementation has not landed yet: asking for
one is a one-line error before training, not a crash during it.
"""
from __future__ import annotations

from edgebench.compress.losses.base import LOSSES, DistillLoss
from edgebench.compress.losses.feature import AttentionTransfer, FitNets, NeuronSelectivityTransfer
from edgebench.compress.losses.relation import CorrelationCongruence, ProbabilisticKT, RelationalKD, SimilarityPreserving
from edgebench.compress.losses.response import HintonKD
from edgebench.core.errors import UsageError

# One list, as for runners (backends/__init__.py) and passes (compress/passes.py): name from the class, aliases here.
for _loss, _aliases in [(HintonKD, ("hinton",)), (FitNets, ("hint",)), (AttentionTransfer, ("attention",)),
                        (NeuronSelectivityTransfer, ()), (ProbabilisticKT, ()), (SimilarityPreserving, ("similarity",)),
                        (RelationalKD, ("relational",)), (CorrelationCongruence, ("correlation",))]:
    LOSSES.add(_loss.name, _loss, aliases=_aliases)

# ---- known names not implemented yet --------------------------------------------------------------

def _planned(name: str, family: str, what: str):
    cls = type(f"Planned_{name}", (DistillLoss,), {"name": name, "family": family, "planned": True, "__doc__": what})
    LOSSES.add(name, cls)


for _name, _family, _what in [
        ("ft", "feature", "factor transfer (Kim et al. 2018): paraphraser/translator auto-encoders"),
        ("fsp", "feature", "flow of solution procedure (Yim et al. 2017): Gram matrices between layer pairs"),
        ("vid", "feature", "variational information distillation (Ahn et al. 2019)"),
        ("ab", "feature", "activation boundaries (Heo et al. 2019)"),
        ("byot", "self", "be your own teacher (Zhang et al. 2019): auxiliary heads, self-distillation"),
        ("dml", "mutual", "deep mutual learning (Zhang et al. 2018): peers teach each other")]:
    _planned(_name, _family, _what)


def loss_class(name: str) -> type:
    cls = LOSSES.get(name)
    if getattr(cls, "planned", False):
        raise UsageError(f"distill loss '{name}' ({cls.__doc__}) is registered but not implemented yet; "
                         f"available: {', '.join(available_losses())}")
    return cls


def available_losses() -> list[str]:
    return [n for n, cls in LOSSES.items() if not getattr(cls, "planned", False)]


__all__ = ["LOSSES", "DistillLoss", "available_losses", "loss_class"]
