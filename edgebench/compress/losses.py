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

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError
from ..registry import Registry

LOSSES: Registry[type] = Registry("distillation loss", "edgebench.distill_losses")


class DistillLoss(nn.Module):
    family: ClassVar[str] = "response"
    planned: ClassVar[bool] = False

    def __init__(self, s_shapes: list, t_shapes: list, temperature: float = 4.0, **options):
        super().__init__()
        if options:
            raise UsageError(f"distill loss '{self.name}': unknown option(s) {', '.join(sorted(options))}")
        self.temperature = temperature

    def forward(self, s_logits, t_logits, s_feats, t_feats, s_emb, t_emb):
        raise NotImplementedError


def register(name: str, *aliases: str):
    def deco(cls):
        cls.name = name
        LOSSES.add(name, cls, aliases=aliases)
        return cls
    return deco


def _match_spatial(s, t):
    """Bring two feature maps to the smaller of their spatial sizes."""
    if s.shape[-2:] != t.shape[-2:]:
        size = min(s.shape[-1], t.shape[-1])
        s = F.adaptive_avg_pool2d(s, size)
        t = F.adaptive_avg_pool2d(t, size)
    return s, t


# ---- response-based ---------------------------------------------------------------------------

@register("kd", "hinton")
class HintonKD(DistillLoss):
    """Hinton et al. 2015: KL between temperature-softened distributions, scaled by T^2."""
    def forward(self, s_logits, t_logits, s_feats, t_feats, s_emb, t_emb):
        T = self.temperature
        return F.kl_div(F.log_softmax(s_logits / T, 1), F.softmax(t_logits / T, 1), reduction="batchmean") * T * T


# ---- feature-based ----------------------------------------------------------------------------

@register("fitnet", "hint")
class FitNets(DistillLoss):
    """Romero et al. 2015: regress teacher features from student features through a 1x1 adapter."""
    family = "feature"

    def __init__(self, s_shapes, t_shapes, temperature=4.0, **options):
        super().__init__(s_shapes, t_shapes, temperature, **options)
        self.adapters = nn.ModuleList(nn.Conv2d(s[1], t[1], 1, bias=False) for s, t in zip(s_shapes, t_shapes))

    def forward(self, s_logits, t_logits, s_feats, t_feats, s_emb, t_emb):
        total = 0.0
        for adapter, s, t in zip(self.adapters, s_feats, t_feats):
            s, t = _match_spatial(adapter(s), t)
            total = total + F.mse_loss(s, t)
        return total / len(s_feats)


@register("at", "attention")
class AttentionTransfer(DistillLoss):
    """Zagoruyko & Komodakis 2017: match normalised spatial attention maps (channel-mean of squares)."""
    family = "feature"

    @staticmethod
    def _attention(f):
        return F.normalize(f.pow(2).mean(1).flatten(1))

    def forward(self, s_logits, t_logits, s_feats, t_feats, s_emb, t_emb):
        total = 0.0
        for s, t in zip(s_feats, t_feats):
            s, t = _match_spatial(s, t)
            total = total + (self._attention(s) - self._attention(t)).pow(2).mean()
        return total / len(s_feats)


@register("nst")
class NeuronSelectivityTransfer(DistillLoss):
    """Huang & Wang 2017: MMD with a degree-2 polynomial kernel between the channels' spatial
    activation patterns (each channel, L2-normalised over positions, is one sample)."""
    family = "feature"

    def forward(self, s_logits, t_logits, s_feats, t_feats, s_emb, t_emb):
        total = 0.0
        for s, t in zip(s_feats, t_feats):
            s, t = _match_spatial(s, t)
            s = F.normalize(s.flatten(2), dim=2)
            t = F.normalize(t.flatten(2), dim=2)
            k = lambda a, b: torch.bmm(a, b.transpose(1, 2)).pow(2).mean((1, 2))  # noqa: E731
            total = total + (k(s, s) + k(t, t) - 2 * k(s, t)).mean()
        return total / len(s_feats)


@register("pkt")
class ProbabilisticKT(DistillLoss):
    """Passalis & Tefas 2018: match the conditional probability distributions that cosine
    similarities between samples induce, in embedding space (any dimensions)."""
    family = "relation"

    @staticmethod
    def _conditional(x, eps=1e-7):
        x = F.normalize(x, dim=1)
        sim = (x @ x.t() + 1.0) / 2.0
        return sim / (sim.sum(1, keepdim=True) + eps)

    def forward(self, s_logits, t_logits, s_feats, t_feats, s_emb, t_emb):
        p_s, p_t = self._conditional(s_emb), self._conditional(t_emb)
        return (p_t * torch.log((p_t + 1e-7) / (p_s + 1e-7))).sum(1).mean()


# ---- relation-based ---------------------------------------------------------------------------

@register("sp", "similarity")
class SimilarityPreserving(DistillLoss):
    """Tung & Mori 2019: match the row-normalised batch similarity (Gram) matrices."""
    family = "relation"

    def forward(self, s_logits, t_logits, s_feats, t_feats, s_emb, t_emb):
        g_s = F.normalize(s_emb @ s_emb.t())
        g_t = F.normalize(t_emb @ t_emb.t())
        return (g_s - g_t).pow(2).sum() / (s_emb.shape[0] ** 2)


@register("rkd", "relational")
class RelationalKD(DistillLoss):
    """Park et al. 2019: distance-wise (mean-normalised pairwise distances) plus angle-wise
    (cosines of triplet angles) relations, Huber loss, weights 1 and 2 as in the paper."""
    family = "relation"

    @staticmethod
    def _distances(e):
        d = torch.cdist(e, e)
        return d / (d[d > 0].mean() + 1e-7)

    @staticmethod
    def _angles(e):
        diff = F.normalize(e.unsqueeze(0) - e.unsqueeze(1), p=2, dim=2)
        return torch.bmm(diff, diff.transpose(1, 2)).flatten()

    def forward(self, s_logits, t_logits, s_feats, t_feats, s_emb, t_emb):
        with torch.no_grad():
            t_d, t_a = self._distances(t_emb), self._angles(t_emb)
        return F.smooth_l1_loss(self._distances(s_emb), t_d) + 2.0 * F.smooth_l1_loss(self._angles(s_emb), t_a)


@register("cc", "correlation")
class CorrelationCongruence(DistillLoss):
    """Peng et al. 2019: match sample-to-sample correlations, with the paper's Gaussian RBF
    kernel approximated by its 2nd-order Taylor expansion on normalised embeddings."""
    family = "relation"

    @staticmethod
    def _correlation(e, gamma=0.4):
        e = F.normalize(e, dim=1)
        sim = e @ e.t()
        return torch.exp(torch.tensor(-2.0 * gamma)) * (1 + 2 * gamma * sim + 2 * gamma ** 2 * sim.pow(2))

    def forward(self, s_logits, t_logits, s_feats, t_feats, s_emb, t_emb):
        return (self._correlation(s_emb) - self._correlation(t_emb)).pow(2).mean()


# ---- known names not implemented yet --------------------------------------------------------------

def _planned(name: str, family: str, what: str):
    cls = type(f"Planned_{name}", (DistillLoss,), {"family": family, "planned": True, "__doc__": what})
    register(name)(cls)


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
