"""Adversarial (GAN-based) distillation: a discriminator tells the teacher's outputs from the
student's, and the student learns to fool it."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from edgebench.compress.losses import register
from edgebench.compress.losses.base import DistillLoss, kd_term


class _ReverseGradient(torch.autograd.Function):
    """Identity forward, negated gradient backward: one optimiser then trains the discriminator to
    minimise its loss and the student to maximise it (Ganin & Lempitsky's gradient reversal)."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -grad


@register("adversarial", "gan")
class AdversarialKD(DistillLoss):
    """Xu et al. 2018 / Wang et al. 2018 (KDGAN family): a small discriminator on the softened
    class distributions learns teacher=real, student=fake; the student's gradient through it is
    reversed, so the student moves its outputs towards ones the discriminator takes for the
    teacher's. A KD term (weight `kd`, as those papers pair the adversarial loss with a direct
    one) keeps the game stable."""
    family = "adversarial"

    def __init__(self, s_shapes, t_shapes, temperature=4.0, kd: float = 1.0, hidden: int = 64, **options):
        super().__init__(s_shapes, t_shapes, temperature, **options)
        self.kd, self.hidden = kd, hidden
        self.discriminator: Optional[nn.Sequential] = None  # made in setup

    def setup(self, student, teacher, sample) -> None:
        with torch.no_grad():
            was = student.training
            classes = student.eval()(sample).shape[1]
            student.train(was)
        self.discriminator = nn.Sequential(nn.Linear(classes, self.hidden), nn.LeakyReLU(0.2),
                                           nn.Linear(self.hidden, 1))

    def forward(self, s_logits, t_logits, s_feats, t_feats, s_emb, t_emb, **batch):
        T = self.temperature
        real = self.discriminator(F.softmax(t_logits.detach() / T, 1))
        fake = self.discriminator(_ReverseGradient.apply(F.softmax(s_logits / T, 1)))
        game = F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) + \
            F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
        return game + self.kd * kd_term(s_logits, t_logits, T)
