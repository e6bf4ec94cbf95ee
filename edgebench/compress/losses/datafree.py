"""Data-free distillation: a generator, trained against the teacher alone, synthesises the inputs
the student learns from; no training image reaches the student.

The recipe is the one that works in the literature on small budgets (GDFQ, Xu et al. 2020;
DeepInversion, Yin et al. 2020; DAFL, Chen et al. 2019; ZSKT/DFAD, Micaelli & Storkey 2019,
Fang et al. 2019):

- a conditional DAFL generator (noise times a class embedding -> linear -> BatchNorm -> upsampling
  convolutions -> tanh) makes pixels in [0, 1] at the dataset's input size, normalised the way the
  real inputs are (mean/std per channel), one channel repeated when the inputs are grayscale;
- its loss: the teacher's BatchNorm statistics on the synthetic batch match the running ones at
  every BN layer (DeepInversion's prior, what makes the images look like data), the teacher
  classifies each image as the class it was drawn for (cross-entropy to class-balanced targets,
  the conditional form of DAFL's one-hot loss; balanced targets do what DAFL's information-entropy
  term does), and optionally DAFL's activation and entropy terms;
- an adversarial term: the generator maximises the student's disagreement with the teacher while
  the student minimises it, through a gradient-reversal layer, so one optimiser plays the game;
- the student learns Hinton KD (KL(teacher || student) at the temperature) on the synthetic batch;
  the teacher stays frozen in eval mode (BN normalises with its running statistics) while hooks
  read the batch statistics of the synthetic input.

The game needs more steps than learning from real images does: `min_steps` (the `steps` option)
sets a floor on the optimiser steps the distill pass runs, whatever the epochs say.
"""
from __future__ import annotations

import contextlib
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from edgebench.compress.losses import register
from edgebench.compress.losses.base import DistillLoss, kd_term
from edgebench.compress.surgery import classifier_layers
from edgebench.core.errors import UsageError
from edgebench.models.data import IMAGENET_MEAN, IMAGENET_STD

# Optimiser steps the data-free game gets at least (generator and student step together, batch 64).
# At the distillation benchmark's settings (mobilenetv3 teacher, tiny-cnn student, MNIST at 32 px)
# the student's top-1 levels off by then; about three minutes on 2 CPU cores.
DEFAULT_STEPS = 1500


class _ScaleGradient(torch.autograd.Function):
    """Identity forward, gradient times `scale` backward: with a negative scale the generator
    climbs the student's loss while the student descends it (gradient reversal, Ganin & Lempitsky)."""

    @staticmethod
    def forward(ctx, x, scale: float):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


class _Generator(nn.Module):
    """DAFL's generator made conditional (GDFQ): noise times a class embedding, projected to a
    quarter-size map, two upsampling convolutions, tanh. Outputs are pixels in [0, 1] normalised
    with the real inputs' per-channel mean and std."""

    def __init__(self, latent: int, classes: int, channels: int, height: int, width: int, base: int,
                 mean: torch.Tensor, std: torch.Tensor, gray: bool):
        super().__init__()
        self.latent, self.size, self.channels = latent, (height, width), channels
        self.start = (max(1, height // 4), max(1, width // 4))
        self.embed = nn.Embedding(classes, latent)
        self.project = nn.Linear(latent, 2 * base * self.start[0] * self.start[1])
        self.body = nn.Sequential(
            nn.BatchNorm2d(2 * base), nn.Upsample(scale_factor=2),
            nn.Conv2d(2 * base, 2 * base, 3, padding=1), nn.BatchNorm2d(2 * base), nn.LeakyReLU(0.2),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(2 * base, base, 3, padding=1), nn.BatchNorm2d(base), nn.LeakyReLU(0.2),
            nn.Conv2d(base, 1 if gray else channels, 3, padding=1), nn.Tanh())
        self.register_buffer("mean", mean.reshape(1, channels, 1, 1))
        self.register_buffer("std", std.reshape(1, channels, 1, 1))

    def forward(self, z, labels):
        x = self.project(z * self.embed(labels)).view(z.shape[0], -1, *self.start)
        x = self.body(x)
        if tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
        pixels = (x + 1) / 2
        if pixels.shape[1] != self.channels:
            pixels = pixels.expand(-1, self.channels, -1, -1)
        return (pixels - self.mean) / self.std


@contextlib.contextmanager
def _frozen(model):
    """Gradients flow through the teacher to the generator, never into the teacher's weights; the
    teacher runs in eval mode, so its BatchNorm layers normalise with their running statistics."""
    flags = [p.requires_grad for p in model.parameters()]
    was = model.training
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    try:
        yield
    finally:
        model.train(was)
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)


def _input_norm(channels: int, pixel_mean, pixel_std) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std the real inputs were normalised with (edgebench's datasets use
    ImageNet's; other inputs name theirs in the options)."""
    if pixel_mean is None and pixel_std is None and channels == IMAGENET_MEAN.size:
        return torch.from_numpy(IMAGENET_MEAN.reshape(-1).copy()), torch.from_numpy(IMAGENET_STD.reshape(-1).copy())
    if pixel_mean is None or pixel_std is None:
        raise UsageError(f"distill loss 'datafree': inputs with {channels} channels need the options pixel_mean "
                         "and pixel_std (how the real inputs were normalised)")
    mean = torch.as_tensor(pixel_mean, dtype=torch.float32).reshape(-1).expand(channels).clone()
    std = torch.as_tensor(pixel_std, dtype=torch.float32).reshape(-1).expand(channels).clone()
    return mean, std


@register("datafree", "dafl")
class DataFreeKD(DistillLoss):
    """Data-free KD (see the module's docstring for the recipe and its sources). The distill pass
    replaces each real batch with a synthetic one of the same size (`synthesize`) before any model
    sees it, skips the cross-entropy on labels, and runs at least `steps` optimiser steps.

    Options: `bn` weights the BatchNorm-statistics loss (mean over the teacher's BN layers of
    ||mu - running_mean|| + ||var - running_var||), `one_hot` the cross-entropy to the drawn
    classes, `adversarial` the generator's share of the student's KD loss (reversed), `activation`
    and `entropy` DAFL's other two terms (off by default: balanced targets replace the entropy
    term), `gray` (default: detected from the sample's format) makes one channel and repeats it,
    `pixel_mean`/`pixel_std` the inputs' normalisation when it is not edgebench's ImageNet one."""
    family = "datafree"
    needs_batch = True

    def __init__(self, s_shapes, t_shapes, temperature=4.0, latent: int = 64, width: int = 32, bn: float = 1.0,
                 one_hot: float = 1.0, adversarial: float = 0.5, activation: float = 0.0, entropy: float = 0.0,
                 steps: int = DEFAULT_STEPS, gray: Optional[bool] = None, pixel_mean=None, pixel_std=None,
                 **options):
        super().__init__(s_shapes, t_shapes, temperature, **options)
        self.latent, self.width, self.steps, self.gray = latent, width, steps, gray
        self.w_bn, self.w_one_hot, self.w_adversarial = bn, one_hot, adversarial
        self.w_activation, self.w_entropy = activation, entropy
        self.pixel_mean, self.pixel_std = pixel_mean, pixel_std
        self.generator: Optional[_Generator] = None  # made in setup
        self._teacher: Optional[list[nn.Module]] = None  # not a submodule: its weights must not train
        self._fake: Optional[torch.Tensor] = None
        self._labels: Optional[torch.Tensor] = None
        self.classes = 0
        self.last_terms: dict[str, float] = {}  # the last step's terms, for diagnostics

    @classmethod
    def min_steps(cls, options: dict) -> int:
        return int(options.get("steps", DEFAULT_STEPS))

    def setup(self, student, teacher, sample) -> None:
        _, channels, height, width = sample.shape
        with torch.no_grad(), _frozen(teacher):
            self.classes = int(teacher(sample).shape[1])
        mean, std = _input_norm(channels, self.pixel_mean, self.pixel_std)
        gray = self.gray
        if gray is None:  # the input format, not its content: grayscale scans arrive as repeated channels
            pixels = sample * std.reshape(1, -1, 1, 1) + mean.reshape(1, -1, 1, 1)
            gray = channels > 1 and bool(torch.allclose(pixels, pixels[:, :1].expand_as(pixels), atol=1e-3))
        self.generator = _Generator(self.latent, self.classes, channels, height, width, self.width, mean, std, gray)
        self._teacher = [teacher]

    def synthesize(self, n: int):
        """A synthetic batch of `n` images, `n // classes` or one more of each class. The generator
        keeps it, with its graph, for its own loss; the student's copy passes a gradient-reversal
        layer, so the student's loss on it trains the generator adversarially."""
        if self.generator is None:
            raise RuntimeError("distill loss 'datafree': synthesize() before setup(), so there is no generator")
        labels = (torch.arange(n) % self.classes)[torch.randperm(n)]
        fake = self.generator(torch.randn(n, self.latent), labels)
        self._fake, self._labels = fake, labels
        if self.w_adversarial and torch.is_grad_enabled():
            return _ScaleGradient.apply(fake, -self.w_adversarial)
        return fake.detach()

    def _teacher_pass(self) -> tuple[torch.Tensor, Any, Any]:
        """The teacher's logits on the synthetic batch (with the generator's graph), the mean BN
        statistics distance over its BN layers, and its classifier's input."""
        if self._fake is None or self._teacher is None:
            raise RuntimeError("distill loss 'datafree': called before synthesize(), so there is no synthetic batch")
        teacher = self._teacher[0]
        distances: list[torch.Tensor] = []
        captured: dict = {}
        hooks = []
        head = classifier_layers(teacher)
        if head and self.w_activation:
            hooks.append(head[0].register_forward_pre_hook(lambda m, i: captured.__setitem__("emb", i[0].flatten(1))))
        if self.w_bn:
            for module in teacher.modules():
                if isinstance(module, nn.BatchNorm2d) and module.track_running_stats:
                    def stats(m, inputs):
                        x = inputs[0]
                        mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=False)
                        distances.append((mean - m.running_mean).norm() + (var - m.running_var).norm())
                    hooks.append(module.register_forward_pre_hook(stats))
        try:
            with _frozen(teacher):
                logits = teacher(self._fake)
        finally:
            for h in hooks:
                h.remove()
        bn = torch.stack(distances).mean() if distances else None
        return logits, bn, captured.get("emb")

    def generator_loss(self, t_logits: Optional[torch.Tensor] = None, bn=None, emb=None):
        if t_logits is None:
            t_logits, bn, emb = self._teacher_pass()
        if self._labels is None:
            raise RuntimeError("distill loss 'datafree': called before synthesize(), so there are no target classes")
        terms: dict[str, torch.Tensor] = {"one_hot": F.cross_entropy(t_logits, self._labels)}
        if bn is not None:
            terms["bn"] = bn
        if emb is not None:
            terms["activation"] = -emb.abs().mean()
        if self.w_entropy:
            mean_p = F.softmax(t_logits, 1).mean(0)
            terms["entropy"] = (mean_p * torch.log(mean_p + 1e-8)).sum()  # negative entropy
        weights = {"one_hot": self.w_one_hot, "bn": self.w_bn, "activation": self.w_activation,
                   "entropy": self.w_entropy}
        self.last_terms = {k: float(v.detach()) for k, v in terms.items()}
        return sum(weights[k] * v for k, v in terms.items())

    def forward(self, s_logits, t_logits, s_feats, t_feats, s_emb, t_emb, **batch):
        t_graph, bn, emb = self._teacher_pass()
        generator = self.generator_loss(t_graph, bn, emb)
        # The student's target is the teacher's output on the same batch; through the reversal the
        # generator also moves the teacher's side of the disagreement (ZSKT, DFAD).
        target = _ScaleGradient.apply(t_graph, -self.w_adversarial) if self.w_adversarial else t_graph.detach()
        kd = kd_term(s_logits, target, self.temperature)
        self.last_terms["kd"] = float(kd.detach())
        return generator + kd

