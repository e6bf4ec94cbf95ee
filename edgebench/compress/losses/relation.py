"""Relation-based distillation: the student matches how the teacher relates the samples of a batch."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from edgebench.compress.losses import register
from edgebench.compress.losses.base import DistillLoss


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

    def forward(self, s_logits, t_logits, s_feats, t_feats, s_emb, t_emb, **batch):
        p_s, p_t = self._conditional(s_emb), self._conditional(t_emb)
        return (p_t * torch.log((p_t + 1e-7) / (p_s + 1e-7))).sum(1).mean()


@register("sp", "similarity")
class SimilarityPreserving(DistillLoss):
    """Tung & Mori 2019: match the row-normalised batch similarity (Gram) matrices."""
    family = "relation"

    def forward(self, s_logits, t_logits, s_feats, t_feats, s_emb, t_emb, **batch):
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

    def forward(self, s_logits, t_logits, s_feats, t_feats, s_emb, t_emb, **batch):
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

    def forward(self, s_logits, t_logits, s_feats, t_feats, s_emb, t_emb, **batch):
        return (self._correlation(s_emb) - self._correlation(t_emb)).pow(2).mean()
