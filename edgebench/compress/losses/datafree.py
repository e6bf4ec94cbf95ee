"""Data-free distillation: a generator, trained against the teacher alone, synthesises the inputs
the student learns from; no training image reaches the student."""
from __future__ import annotations

import contextlib
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from edgebench.compress.losses.base import DistillLoss, kd_term, register
from edgebench.compress.surgery import classifier_layers


class _Generator(nn.Module):
    """DAFL's generator: a latent vector to an image of the dataset's shape, ending in a BatchNorm
    without affine parameters so its outputs have the normalised inputs' scale."""

    def __init__(self, latent: int, channels: int, height: int, width: int, base: int = 64):
        super().__init__()
        self.latent, self.size = latent, (height, width)
        self.start = (max(1, height // 4), max(1, width // 4))
        self.project = nn.Linear(latent, 2 * base * self.start[0] * self.start[1])
        self.body = nn.Sequential(
            nn.BatchNorm2d(2 * base), nn.Upsample(scale_factor=2),
            nn.Conv2d(2 * base, 2 * base, 3, padding=1), nn.BatchNorm2d(2 * base), nn.LeakyReLU(0.2),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(2 * base, base, 3, padding=1), nn.BatchNorm2d(base), nn.LeakyReLU(0.2),
            nn.Conv2d(base, channels, 3, padding=1), nn.Tanh())
        self.out_norm = nn.BatchNorm2d(channels, affine=False)

    def forward(self, z):
        x = self.project(z).view(z.shape[0], -1, *self.start)
        x = self.body(x)
        if tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
        return self.out_norm(x)


@contextlib.contextmanager
def _frozen(model):
    """Gradients flow through the teacher to the generator, never into the teacher's weights."""
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)


@register("datafree", "dafl")
class DataFreeKD(DistillLoss):
    """Chen et al. 2019 (DAFL) with DeepInversion's prior (Yin et al. 2020): the generator makes
    the teacher confident (one-hot loss), strongly activated (activation loss) and balanced over
    the classes (information-entropy loss), and, where the teacher has BatchNorm, makes the
    teacher's per-layer batch statistics match its running ones. The student learns Hinton KD on
    the synthetic batch. The distill pass replaces each real batch with a synthetic one of the same
    size (`synthesize`) before the student sees it, and skips the cross-entropy on labels.

    Weights from DAFL: one-hot 1, activation 0.1, entropy 5; `bn` weights the DeepInversion term."""
    family = "datafree"
    needs_batch = True

    def __init__(self, s_shapes, t_shapes, temperature=4.0, latent: int = 100, activation: float = 0.1,
                 entropy: float = 5.0, bn: float = 1.0, width: int = 64, **options):
        super().__init__(s_shapes, t_shapes, temperature, **options)
        self.latent, self.w_activation, self.w_entropy, self.w_bn = latent, activation, entropy, bn
        self.width = width
        self.generator: Optional[_Generator] = None  # made in setup
        self._teacher: Optional[list[nn.Module]] = None  # not a submodule: its weights must not train
        self._fake: Optional[torch.Tensor] = None

    def setup(self, student, teacher, sample) -> None:
        _, channels, height, width = sample.shape
        self.generator = _Generator(self.latent, channels, height, width, base=self.width)
        self._teacher = [teacher]

    def synthesize(self, n: int):
        """A synthetic batch (kept, with its graph, for the generator's loss) and its detached copy
        for the student."""
        if self.generator is None:
            raise RuntimeError("distill loss 'datafree': synthesize() before setup(), so there is no generator")
        z = torch.randn(n, self.latent)
        fake = self.generator(z)
        self._fake = fake
        return fake.detach()

    def generator_loss(self):
        teacher = self._teacher[0]
        captured: dict = {"bn": []}
        hooks = []
        head = classifier_layers(teacher)
        if head:
            hooks.append(head[0].register_forward_pre_hook(lambda m, i: captured.__setitem__("emb", i[0].flatten(1))))
        for module in teacher.modules():
            if isinstance(module, nn.BatchNorm2d) and module.track_running_stats and self.w_bn:
                def stats(m, inputs):
                    x = inputs[0]
                    mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=False)
                    captured["bn"].append((mean - m.running_mean).norm() + (var - m.running_var).norm())
                hooks.append(module.register_forward_pre_hook(stats))
        try:
            with _frozen(teacher):
                logits = teacher(self._fake)
        finally:
            for h in hooks:
                h.remove()
        one_hot = F.cross_entropy(logits, logits.argmax(1))
        activation = -captured["emb"].abs().mean() if "emb" in captured else 0.0
        mean_p = F.softmax(logits, 1).mean(0)
        entropy = (mean_p * torch.log(mean_p + 1e-8)).sum()  # negative entropy: minimising balances classes
        bn = torch.stack(captured["bn"]).mean() if captured["bn"] else 0.0
        return one_hot + self.w_activation * activation + self.w_entropy * entropy + self.w_bn * bn

    def forward(self, s_logits, t_logits, s_feats, t_feats, s_emb, t_emb, **batch):
        return self.generator_loss() + kd_term(s_logits, t_logits, self.temperature)
