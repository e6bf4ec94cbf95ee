"""Self-distillation: the student teaches itself, its deepest classifier teaching shallow ones."""
from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from edgebench.compress.losses import register
from edgebench.compress.losses.base import DistillLoss, kd_term


@register("byot", "self-distillation")
class BeYourOwnTeacher(DistillLoss):
    """Zhang et al. 2019 (BYOT): an auxiliary head (bottleneck, pooling, classifier) on each
    shallow stage of the student learns from the labels, from the softened final logits, and
    (a hint) from the deepest stage's pooled feature. The heads train with the student and are
    dropped afterwards; what the student gains is the deep supervision of its early stages.

    Reads the student's stage outputs (shallow first, deepest last) and the labels; needs no
    teacher. Weights as in the paper: alpha 0.3 for KD against CE, lambda 0.03 for the hint."""
    family = "self"
    needs_batch = True

    def __init__(self, s_shapes, t_shapes, temperature=3.0, alpha: float = 0.3, hint: float = 0.03, **options):
        super().__init__(s_shapes, t_shapes, temperature, **options)
        if len(s_shapes) < 2:
            from edgebench.core.errors import IncompatibleError
            raise IncompatibleError("distill byot: the student has a single feature stage; it needs at least two")
        self.alpha, self.hint = alpha, hint
        deep = s_shapes[-1][1]
        self.bottlenecks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(s[1], deep, 1, bias=False), nn.BatchNorm2d(deep), nn.ReLU())
            for s in s_shapes[:-1])
        self.heads = nn.ModuleList()

    def setup(self, student, teacher, sample) -> None:
        with torch.no_grad():
            was = student.training
            classes = student.eval()(sample).shape[1]
            student.train(was)
        first_conv = cast(nn.Conv2d, cast(nn.Sequential, self.bottlenecks[0])[0])  # ModuleList items are typed Module
        deep = first_conv.out_channels
        self.heads = nn.ModuleList(nn.Linear(deep, classes) for _ in self.bottlenecks)

    def forward(self, s_logits, t_logits, s_feats, t_feats, s_emb, t_emb, labels=None, **batch):
        deep = F.adaptive_avg_pool2d(s_feats[-1], 1).flatten(1).detach()
        final = s_logits.detach()
        total = 0.0
        for bottleneck, head, feature in zip(self.bottlenecks, self.heads, s_feats[:-1]):
            pooled = F.adaptive_avg_pool2d(bottleneck(feature), 1).flatten(1)
            logits = head(pooled)
            supervised = F.cross_entropy(logits, labels) if labels is not None else 0.0
            total = total + (1 - self.alpha) * supervised + self.alpha * kd_term(logits, final, self.temperature) \
                + self.hint * F.mse_loss(pooled, deep)
        return total / len(self.heads)
