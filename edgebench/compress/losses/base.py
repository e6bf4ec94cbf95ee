"""What every distillation loss is: a torch module built once the student's and teacher's feature
shapes are known, called every step with both models' logits, paired features and embeddings."""
from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from torch import nn

from edgebench.core.errors import UsageError
from edgebench.core.registry import Registry

LOSSES: Registry[type] = Registry("distillation loss", "edgebench.distill_losses")


class DistillLoss(nn.Module):
    name: ClassVar[str] = ""  # the name it is registered under (losses/__init__.py)
    family: ClassVar[str] = "response"
    planned: ClassVar[bool] = False

    def __init__(self, s_shapes: list, t_shapes: list, temperature: float = 4.0, **options):
        super().__init__()
        if options:
            raise UsageError(f"distill loss '{self.name}': unknown option(s) {', '.join(sorted(options))}")
        self.temperature = temperature

    def forward(self, s_logits, t_logits, s_feats, t_feats, s_emb, t_emb):
        raise NotImplementedError


def match_spatial(s, t):
    """Bring two feature maps to the smaller of their spatial sizes."""
    if s.shape[-2:] != t.shape[-2:]:
        size = min(s.shape[-1], t.shape[-1])
        s = F.adaptive_avg_pool2d(s, size)
        t = F.adaptive_avg_pool2d(t, size)
    return s, t
