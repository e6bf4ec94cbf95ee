"""Response-based distillation: the student matches the teacher's outputs."""
from __future__ import annotations

from edgebench.compress.losses import register
from edgebench.compress.losses.base import DistillLoss, kd_term


@register("kd", "hinton")
class HintonKD(DistillLoss):
    """Hinton et al. 2015: KL between temperature-softened distributions, scaled by T^2."""
    def forward(self, s_logits, t_logits, s_feats, t_feats, s_emb, t_emb, **batch):
        return kd_term(s_logits, t_logits, self.temperature)
