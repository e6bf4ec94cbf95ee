"""Feature-based distillation: the student matches the teacher's intermediate layers."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from edgebench.compress.losses import register
from edgebench.compress.losses.base import DistillLoss, match_spatial


@register("fitnet", "hint")
class FitNets(DistillLoss):
    """Romero et al. 2015: regress teacher features from student features through a 1x1 adapter."""
    family = "feature"

    def __init__(self, s_shapes, t_shapes, temperature=4.0, **options):
        super().__init__(s_shapes, t_shapes, temperature, **options)
        self.adapters = nn.ModuleList(nn.Conv2d(s[1], t[1], 1, bias=False) for s, t in zip(s_shapes, t_shapes))

    def forward(self, s_logits, t_logits, s_feats, t_feats, s_emb, t_emb, **batch):
        total = 0.0
        for adapter, s, t in zip(self.adapters, s_feats, t_feats):
            s, t = match_spatial(adapter(s), t)
            total = total + F.mse_loss(s, t)
        return total / len(s_feats)


@register("at", "attention")
class AttentionTransfer(DistillLoss):
    """Zagoruyko & Komodakis 2017: match normalised spatial attention maps (channel-mean of squares)."""
    family = "feature"

    @staticmethod
    def _attention(f):
        return F.normalize(f.pow(2).mean(1).flatten(1))

    def forward(self, s_logits, t_logits, s_feats, t_feats, s_emb, t_emb, **batch):
        total = 0.0
        for s, t in zip(s_feats, t_feats):
            s, t = match_spatial(s, t)
            total = total + (self._attention(s) - self._attention(t)).pow(2).mean()
        return total / len(s_feats)


@register("nst")
class NeuronSelectivityTransfer(DistillLoss):
    """Huang & Wang 2017: MMD with a degree-2 polynomial kernel between the channels' spatial
    activation patterns (each channel, L2-normalised over positions, is one sample)."""
    family = "feature"

    def forward(self, s_logits, t_logits, s_feats, t_feats, s_emb, t_emb, **batch):
        total = 0.0
        for s, t in zip(s_feats, t_feats):
            s, t = match_spatial(s, t)
            s = F.normalize(s.flatten(2), dim=2)
            t = F.normalize(t.flatten(2), dim=2)
            k = lambda a, b: torch.bmm(a, b.transpose(1, 2)).pow(2).mean((1, 2))  # noqa: E731
            total = total + (k(s, s) + k(t, t) - 2 * k(s, t)).mean()
        return total / len(s_feats)


def _adapters(s_shapes, t_shapes, norm: bool = False):
    """1x1 convolutions from each student feature's channels to its teacher's."""
    def one(s, t):
        conv = nn.Conv2d(s[1], t[1], 1, bias=False)
        return nn.Sequential(conv, nn.BatchNorm2d(t[1])) if norm else conv
    return nn.ModuleList(one(s, t) for s, t in zip(s_shapes, t_shapes))


@register("ft", "factor")
class FactorTransfer(DistillLoss):
    """Kim et al. 2018: a paraphraser (an auto-encoder on the teacher's feature, trained to
    reconstruct it) extracts factors; a translator on the student's feature learns to produce them;
    L1 between the L2-normalised factors. The paper pre-trains the paraphraser; here it trains
    alongside, by its reconstruction loss only (the teacher side is detached)."""
    family = "feature"

    def __init__(self, s_shapes, t_shapes, temperature=4.0, rate: float = 0.5, **options):
        super().__init__(s_shapes, t_shapes, temperature, **options)
        def block(c_in, c_out):
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                                 nn.LeakyReLU(0.1))
        factors = [max(1, int(t[1] * rate)) for t in t_shapes]
        self.encoders = nn.ModuleList(block(t[1], k) for t, k in zip(t_shapes, factors))
        self.decoders = nn.ModuleList(nn.Conv2d(k, t[1], 3, padding=1) for t, k in zip(t_shapes, factors))
        self.translators = nn.ModuleList(block(s[1], k) for s, k in zip(s_shapes, factors))

    def forward(self, s_logits, t_logits, s_feats, t_feats, s_emb, t_emb, **batch):
        total = 0.0
        for enc, dec, tr, s, t in zip(self.encoders, self.decoders, self.translators, s_feats, t_feats):
            t = t.detach()
            factor_t = enc(t)
            reconstruction = F.mse_loss(dec(factor_t), t)
            s_factor, t_factor = match_spatial(tr(s), factor_t.detach())
            total = total + reconstruction + (F.normalize(s_factor.flatten(1)) - F.normalize(t_factor.flatten(1))).abs().mean()
        return total / len(s_feats)


@register("fsp", "flow")
class FlowOfSolution(DistillLoss):
    """Yim et al. 2017: the FSP (flow) matrix between two layers is the spatially averaged product
    of their channels; the student matches the teacher's flow between consecutive paired layers
    (its features first mapped to the teacher's widths by 1x1 adapters). One pair: its Gram matrix."""
    family = "feature"

    def __init__(self, s_shapes, t_shapes, temperature=4.0, **options):
        super().__init__(s_shapes, t_shapes, temperature, **options)
        self.adapters = _adapters(s_shapes, t_shapes)

    @staticmethod
    def _flow(a, b):
        a, b = match_spatial(a, b)
        return torch.bmm(a.flatten(2), b.flatten(2).transpose(1, 2)) / (a.shape[-1] * a.shape[-2])

    def forward(self, s_logits, t_logits, s_feats, t_feats, s_emb, t_emb, **batch):
        s_feats = [adapter(s) for adapter, s in zip(self.adapters, s_feats)]
        layer_pairs = list(zip(range(len(s_feats) - 1), range(1, len(s_feats)))) or [(0, 0)]
        total = 0.0
        for i, j in layer_pairs:
            total = total + F.mse_loss(self._flow(s_feats[i], s_feats[j]), self._flow(t_feats[i], t_feats[j]))
        return total / len(layer_pairs)


@register("vid")
class VariationalInformation(DistillLoss):
    """Ahn et al. 2019: maximise a variational lower bound on the mutual information between
    teacher and student features: the teacher's feature under a Gaussian whose mean a small
    network predicts from the student's and whose per-channel variance is learned; the loss is its
    negative log-likelihood (it may go below zero)."""
    family = "feature"

    def __init__(self, s_shapes, t_shapes, temperature=4.0, init_variance: float = 5.0, **options):
        super().__init__(s_shapes, t_shapes, temperature, **options)
        self.regressors = nn.ModuleList(
            nn.Sequential(nn.Conv2d(s[1], t[1], 1), nn.ReLU(), nn.Conv2d(t[1], t[1], 1), nn.ReLU(),
                          nn.Conv2d(t[1], t[1], 1)) for s, t in zip(s_shapes, t_shapes))
        start = math.log(math.exp(init_variance - 1e-6) - 1.0)  # softplus^-1, as the paper's initial variance
        self.alphas = nn.ParameterList(nn.Parameter(torch.full((t[1],), start)) for t in t_shapes)

    def forward(self, s_logits, t_logits, s_feats, t_feats, s_emb, t_emb, **batch):
        total = 0.0
        for regressor, alpha, s, t in zip(self.regressors, self.alphas, s_feats, t_feats):
            mean, t = match_spatial(regressor(s), t)
            variance = (F.softplus(alpha) + 1e-6).view(1, -1, 1, 1)
            total = total + 0.5 * (torch.log(variance) + (mean - t).pow(2) / variance).mean()
        return total / len(s_feats)


@register("ab", "boundary")
class ActivationBoundaries(DistillLoss):
    """Heo et al. 2019: transfer where the teacher's neurons are active: a hinge-like loss (margin
    1) on the student's connector output wherever its sign disagrees with the teacher's."""
    family = "feature"

    def __init__(self, s_shapes, t_shapes, temperature=4.0, margin: float = 1.0, **options):
        super().__init__(s_shapes, t_shapes, temperature, **options)
        self.margin = margin
        self.connectors = _adapters(s_shapes, t_shapes, norm=True)

    def forward(self, s_logits, t_logits, s_feats, t_feats, s_emb, t_emb, **batch):
        m = self.margin
        total = 0.0
        for connector, s, t in zip(self.connectors, s_feats, t_feats):
            r, t = match_spatial(connector(s), t)
            active = (t > 0).float()
            loss = (r + m).pow(2) * (r > -m).float() * (1 - active) + (r - m).pow(2) * (r <= m).float() * active
            total = total + loss.mean()
        return total / len(s_feats)
