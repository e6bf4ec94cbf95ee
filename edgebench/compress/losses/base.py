"""What every distillation loss is: a torch module built once the student's and teacher's feature
shapes are known, called every step with both models' logits, paired features and embeddings."""
from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import nn

from edgebench.core.errors import UsageError


class DistillLoss(nn.Module):
    family: ClassVar[str] = "response"
    # True: forward also receives the batch as keywords (labels, inputs, student, teacher), for
    # losses that train their own networks on it (peers, auxiliary heads, generators).
    needs_batch: ClassVar[bool] = False

    def __init__(self, s_shapes: list, t_shapes: list, temperature: float = 4.0, **options):
        super().__init__()
        if options:
            raise UsageError(f"distill loss '{self.name}': unknown option(s) {', '.join(sorted(options))}")
        self.temperature = temperature

    @classmethod
    def min_steps(cls, options: dict) -> int:
        """Optimiser steps this loss needs whatever the epochs say (a data-free generator's game is
        not paced by the training images); 0: the epochs decide."""
        return 0

    def setup(self, student, teacher, sample) -> None:
        """Build what depends on the models themselves (a peer, heads, a generator) once, before
        training; its parameters then train with the student's."""

    def forward(self, s_logits, t_logits, s_feats, t_feats, s_emb, t_emb, **batch):
        raise NotImplementedError


def kd_term(s_logits, t_logits, temperature: float):
    """Hinton's T^2-scaled KL between softened distributions, the term many families reuse."""
    T = temperature
    return F.kl_div(F.log_softmax(s_logits / T, 1), F.softmax(t_logits / T, 1), reduction="batchmean") * T * T


def match_spatial(s, t):
    """Bring two feature maps to the smaller of their spatial sizes."""
    if s.shape[-2:] != t.shape[-2:]:
        size = min(s.shape[-1], t.shape[-1])
        s = F.adaptive_avg_pool2d(s, size)
        t = F.adaptive_avg_pool2d(t, size)
    return s, t
