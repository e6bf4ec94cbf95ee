"""Data-free distillation: a generator, trained against the teacher alone, synthesises the inputs
the student learns from; no training image reaches the student.

How the images are made (a conditional generator, DeepInversion's BatchNorm-statistics prior,
class targets, Fast-DFKD's masked adversarial term, rounds that fill a pool) is in synthesis.py.
This loss schedules it inside the distill pass's training loop: every `round_every` student steps
one synthesis round runs (`generator_steps` generator updates on a fresh batch, whose last images
join the pool), after `warmup` generator updates before the first; each student step then learns
Hinton KD on a batch drawn from the whole pool, the teacher's outputs on it as targets.

The distill pass gives this loss no real image: it trains on a dataset whose images are zeros
(`DistillPass` replaces them before anything runs), so the student's batches, its BatchNorm
statistics and the loss's setup come from the generator and the inputs' shape alone.
"""
from __future__ import annotations

from typing import Optional

import torch

from edgebench.compress.losses import register
from edgebench.compress.losses.base import DistillLoss, kd_term
from edgebench.compress.losses.synthesis import ConditionalGenerator, Synthesizer, frozen
from edgebench.core.errors import UsageError
from edgebench.models.data import IMAGENET_MEAN, IMAGENET_STD

# Student optimiser steps the data-free student gets at least (batch 64), and one generator update
# (batch DEFAULT_BATCH) per student step after DEFAULT_WARMUP: the generator's steps, each a
# forward and backward pass through the teacher, cost most of the time. At the distillation
# benchmark's settings the teacher agrees with the drawn class on all synthetic images within 50
# generator steps; the student's top-1 on real images is in benchmarks/results/distillation-datafree.md.
DEFAULT_STEPS = 600
DEFAULT_ROUND_EVERY = 1
DEFAULT_GENERATOR_STEPS = 1
DEFAULT_WARMUP = 50
DEFAULT_BATCH = 32


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
    """Data-free KD (the module's docstring says how; synthesis.py what makes the images). The distill
    pass replaces each batch with `synthesize(n)` before any model sees it, skips the cross-entropy
    on labels, and runs at least `steps` student steps.

    Options: `bn`, `one_hot`, `adversarial` weight the generator's terms (BatchNorm-statistics
    distance, mean over the teacher's BN layers; cross-entropy to the drawn classes; masked
    disagreement, maximised; `diversity`, off by default and not yet shown to help: mode seeking
    between two images of one class); `generator_lr`; `batch` images per synthesis round; `round_every`,
    `generator_steps`, `warmup` the schedule above; `pool` the most images kept; `jitter` the most
    pixels images shift by, at random, when the teacher scores them and when the student learns them; `kd_temperature`
    the student's KD temperature (default: the pass's); `gray` makes one channel and repeats it
    (the pass sets it from the dataset: grayscale scans); `pixel_mean`/`pixel_std` the inputs'
    normalisation when it is not edgebench's ImageNet one; `latent`, `width` the generator's size."""
    family = "datafree"

    def __init__(self, s_shapes, t_shapes, temperature=4.0, latent: int = 64, width: int = 16, bn: float = 1.0,
                 one_hot: float = 1.0, adversarial: float = 1.0, diversity: float = 0.0, generator_lr: float = 2e-3,
                 batch: int = DEFAULT_BATCH,
                 round_every: int = DEFAULT_ROUND_EVERY, generator_steps: int = DEFAULT_GENERATOR_STEPS,
                 warmup: int = DEFAULT_WARMUP, pool: int = 20000, steps: int = DEFAULT_STEPS, jitter: int = 2,
                 kd_temperature: Optional[float] = None, gray: bool = False, pixel_mean=None, pixel_std=None,
                 **options):
        super().__init__(s_shapes, t_shapes, temperature if kd_temperature is None else kd_temperature, **options)
        for name, value in {"batch": batch, "round_every": round_every, "generator_steps": generator_steps,
                            "pool": pool, "latent": latent, "width": width}.items():
            if int(value) < 1:
                raise UsageError(f"distill loss 'datafree': option {name} must be at least 1, got {value}")
        if warmup < 0 or steps < 0:
            raise UsageError(f"distill loss 'datafree': warmup and steps must not be negative, got {warmup}, {steps}")
        self.latent, self.width, self.gray = latent, width, gray
        self.weights = {"bn": bn, "one_hot": one_hot, "adversarial": adversarial, "diversity": diversity}
        self.generator_lr, self.batch, self.pool, self.jitter = generator_lr, batch, pool, jitter
        self.round_every, self.generator_steps, self.warmup = round_every, generator_steps, warmup
        self.pixel_mean, self.pixel_std = pixel_mean, pixel_std
        self.synthesizer: Optional[Synthesizer] = None  # made in setup
        self.student_steps = 0

    @classmethod
    def min_steps(cls, options: dict) -> int:
        return int(options.get("steps", DEFAULT_STEPS))

    @property
    def generator(self) -> Optional[ConditionalGenerator]:
        return self.synthesizer.generator if self.synthesizer else None

    @property
    def last_terms(self) -> dict[str, float]:
        return self.synthesizer.last_terms if self.synthesizer else {}

    def setup(self, student, teacher, sample) -> None:
        """Reads the sample's shape only (the pass hands in zeros), and the teacher's class count."""
        _, channels, height, width = sample.shape
        with torch.no_grad(), frozen(teacher):
            classes = int(teacher(torch.zeros_like(sample)).shape[1])
        mean, std = _input_norm(channels, self.pixel_mean, self.pixel_std)
        generator = ConditionalGenerator(self.latent, classes, channels, height, width, self.width, mean, std,
                                         self.gray)
        self.synthesizer = Synthesizer(generator, teacher, student, classes, batch=self.batch,
                                       steps_per_round=self.generator_steps, lr=self.generator_lr, **self.weights,
                                       pool_size=self.pool, jitter=self.jitter)

    def synthesize(self, n: int) -> torch.Tensor:
        """The student's next batch: `n` pool images, after this step's synthesis round if one is due."""
        synthesizer = self._synthesizer()
        if synthesizer.generator_steps == 0:
            synthesizer.warm_up(self.warmup)
        if self.student_steps % self.round_every == 0:
            synthesizer.round()
        self.student_steps += 1
        return synthesizer.replay(n)

    def replay(self, n: int) -> torch.Tensor:
        """`n` pool images without training the generator (for the student's BatchNorm statistics)."""
        synthesizer = self._synthesizer()
        if len(synthesizer) == 0:
            synthesizer.round()
        return synthesizer.replay(n)

    def _synthesizer(self) -> Synthesizer:
        if self.synthesizer is None:
            raise RuntimeError("distill loss 'datafree': used before setup(), so there is no generator")
        return self.synthesizer

    def forward(self, s_logits, t_logits, s_feats, t_feats, s_emb, t_emb, **batch):
        return kd_term(s_logits, t_logits, self.temperature)
