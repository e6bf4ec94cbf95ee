"""Feature-based distillation: the student matches the teacher's intermediate layers."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgebench.compress.losses.base import DistillLoss, match_spatial


class FitNets(DistillLoss):
    """Romero et al. 2015: regress teacher features from student features through a 1x1 adapter."""
    name = "fitnet"
    family = "feature"

    def __init__(self, s_shapes, t_shapes, temperature=4.0, **options):
        super().__init__(s_shapes, t_shapes, temperature, **options)
        self.adapters = nn.ModuleList(nn.Conv2d(s[1], t[1], 1, bias=False) for s, t in zip(s_shapes, t_shapes))

    def forward(self, s_logits, t_logits, s_feats, t_feats, s_emb, t_emb):
        total = 0.0
        for adapter, s, t in zip(self.adapters, s_feats, t_feats):
            s, t = match_spatial(adapter(s), t)
            total = total + F.mse_loss(s, t)
        return total / len(s_feats)


class AttentionTransfer(DistillLoss):
    """Zagoruyko & Komodakis 2017: match normalised spatial attention maps (channel-mean of squares)."""
    name = "at"
    family = "feature"

    @staticmethod
    def _attention(f):
        return F.normalize(f.pow(2).mean(1).flatten(1))

    def forward(self, s_logits, t_logits, s_feats, t_feats, s_emb, t_emb):
        total = 0.0
        for s, t in zip(s_feats, t_feats):
            s, t = match_spatial(s, t)
            total = total + (self._attention(s) - self._attention(t)).pow(2).mean()
        return total / len(s_feats)


class NeuronSelectivityTransfer(DistillLoss):
    """Huang & Wang 2017: MMD with a degree-2 polynomial kernel between the channels' spatial
    activation patterns (each channel, L2-normalised over positions, is one sample)."""
    name = "nst"
    family = "feature"

    def forward(self, s_logits, t_logits, s_feats, t_feats, s_emb, t_emb):
        total = 0.0
        for s, t in zip(s_feats, t_feats):
            s, t = match_spatial(s, t)
            s = F.normalize(s.flatten(2), dim=2)
            t = F.normalize(t.flatten(2), dim=2)
            k = lambda a, b: torch.bmm(a, b.transpose(1, 2)).pow(2).mean((1, 2))  # noqa: E731
            total = total + (k(s, s) + k(t, t) - 2 * k(s, t)).mean()
        return total / len(s_feats)
