"""Response-based distillation: the student matches the teacher's outputs."""
from __future__ import annotations

import torch.nn.functional as F

from edgebench.compress.losses.base import DistillLoss


class HintonKD(DistillLoss):
    """Hinton et al. 2015: KL between temperature-softened distributions, scaled by T^2."""
    name = "kd"
    def forward(self, s_logits, t_logits, s_feats, t_feats, s_emb, t_emb):
        T = self.temperature
        return F.kl_div(F.log_softmax(s_logits / T, 1), F.softmax(t_logits / T, 1), reduction="batchmean") * T * T
