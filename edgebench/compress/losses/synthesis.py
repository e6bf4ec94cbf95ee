"""The synthesis half of data-free distillation: a conditional generator trained against the
teacher alone, and the pool of images it made that the student learns from.

The generator is DAFL's (Chen et al. 2019) made conditional (as GDFQ's, Xu et al. 2020): noise and a
class embedding, projected to a quarter-size map, two upsampling convolutions, a sigmoid. Its
loss on each batch it makes, which the teacher scores jittered (shifted a few pixels, as in
DeepInversion):

- DeepInversion's prior (Yin et al. 2020): at every BatchNorm layer of the teacher, the batch's
  per-channel mean and variance match the layer's running statistics, which the teacher gathered
  on its real training data. This is what makes the images look like data to the teacher rather
  than like adversarial patterns it happens to classify confidently.
- class targets: the teacher classifies each image as the class it was drawn for (cross-entropy;
  drawn class-balanced, which does the work of DAFL's information-entropy term).
- an adversarial term (ZSKT/DFAD, Micaelli & Storkey 2019, Fang et al. 2019, in the masked form of
  Fast-DFKD, Fang et al. 2022): the generator seeks images on which the student still disagrees
  with the teacher, counted only where both still pick the same class, so the search does not
  walk the images across the teacher's decision boundary.
- optionally (weight `diversity`, off by default), mode seeking (Mao et al. 2019): two images of
  one class drawn from different noise should differ, against a generator that draws one image
  per class whatever the noise, which this one did at the distillation benchmark's settings.

Synthesis runs in rounds (CMI, Fang et al. 2021; Fast-DFKD): a round trains the generator a few
steps on a fresh batch, and the batch it ends with joins the pool. The student's batches are drawn
from the whole pool, so it keeps learning from what earlier rounds found instead of chasing the
generator's latest batch. The teacher is frozen in eval mode throughout (BatchNorm normalises with
its running statistics); the student is frozen while the generator trains against it.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


class ConditionalGenerator(nn.Module):
    """Noise and a class -> an image in pixel space [0, 1] (`pixels`), one channel when the inputs
    are grayscale scans repeated into several; `normalise` makes it what the models read."""
    mean: torch.Tensor  # buffers: the real inputs' per-channel normalisation
    std: torch.Tensor

    def __init__(self, latent: int, classes: int, channels: int, height: int, width: int, base: int,
                 mean: torch.Tensor, std: torch.Tensor, gray: bool):
        super().__init__()
        self.latent, self.size, self.channels = latent, (height, width), channels
        self.start = (max(1, height // 4), max(1, width // 4))
        self.embed = nn.Embedding(classes, latent)
        self.project = nn.Linear(2 * latent, 2 * base * self.start[0] * self.start[1])
        self.body = nn.Sequential(
            nn.BatchNorm2d(2 * base), nn.Upsample(scale_factor=2),
            nn.Conv2d(2 * base, 2 * base, 3, padding=1), nn.BatchNorm2d(2 * base), nn.LeakyReLU(0.2),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(2 * base, base, 3, padding=1), nn.BatchNorm2d(base), nn.LeakyReLU(0.2),
            nn.Conv2d(base, 1 if gray else channels, 3, padding=1))
        self.register_buffer("mean", mean.reshape(1, channels, 1, 1))
        self.register_buffer("std", std.reshape(1, channels, 1, 1))

    def pixels(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        # The class embedding beside the noise, not multiplied into it (GDFQ's z * embedding): a
        # product with zero-mean noise carries the class only in its magnitudes, which a linear layer
        # cannot read, and the generator then took hundreds of steps to make the teacher see the class.
        x = self.project(torch.cat([z, self.embed(labels)], 1)).view(z.shape[0], -1, *self.start)
        x = self.body(x)
        if tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
        return torch.sigmoid(x)

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        if pixels.shape[1] != self.channels:
            pixels = pixels.expand(-1, self.channels, -1, -1)
        return (pixels - self.mean) / self.std

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.normalise(self.pixels(z, labels))


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[None]:
    """Gradients flow through `model` to its input, never into its weights; it runs in eval mode,
    so its BatchNorm layers normalise with (and do not update) their running statistics."""
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


@contextlib.contextmanager
def batchnorm_distances(model: nn.Module) -> Iterator[list]:
    """Collects, for each forward through `model`, one distance per BatchNorm layer between the
    batch's statistics at its input and the layer's running ones: ||mean - running_mean||_2 +
    ||var - running_var||_2 (DeepInversion's feature-distribution regulariser)."""
    distances: list[torch.Tensor] = []

    def hook(module, inputs):
        x = inputs[0]
        var, mean = torch.var_mean(x, (0, 2, 3), unbiased=False)
        distances.append((mean - module.running_mean).norm() + (var - module.running_var).norm())

    hooks = [m.register_forward_pre_hook(hook) for m in model.modules()
             if isinstance(m, nn.BatchNorm2d) and m.track_running_stats and m.running_mean is not None]
    try:
        yield distances
    finally:
        for h in hooks:
            h.remove()


def masked_disagreement(s_logits: torch.Tensor, t_logits: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) per image, averaged over the batch, counting only images where both
    pick the same class (Fast-DFKD's adversarial term, to be maximised by the generator)."""
    kl = F.kl_div(F.log_softmax(s_logits, 1), F.softmax(t_logits, 1), reduction="none").sum(1)
    agree = (s_logits.argmax(1) == t_logits.argmax(1)).float()
    return (kl * agree).mean()


def jittered(x: torch.Tensor, pixels: int) -> torch.Tensor:
    """`x` shifted by up to `pixels` in each direction, wrapping around (DeepInversion's jitter): the
    teacher must recognise a class wherever it sits, so the generator cannot rely on one exact
    placement of a pattern, and the student learns each image at several positions."""
    if pixels <= 0:
        return x
    dy, dx = (int(v) for v in torch.randint(-pixels, pixels + 1, (2,)))
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


def balanced_labels(n: int, classes: int) -> torch.Tensor:
    """`n` class indices, each class `n // classes` or one more times, in a random order, the second
    half of an even `n` repeating the first (pairs of images of one class, for the diversity term)."""
    half = (torch.arange(n // 2) % classes)[torch.randperm(n // 2)]
    rest = torch.arange(n // 2, n - n // 2) % classes if n % 2 else torch.zeros(0, dtype=torch.long)
    return torch.cat([half, half, rest])


def pair_diversity(pixels: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """How far apart the images of a pair of one class are for how far apart their noise is (mode
    seeking, Mao et al. 2019), over the pairs (i, i + n/2): a generator that ignores its noise and
    draws one image per class scores 0."""
    h = len(z) // 2
    apart = (pixels[:h] - pixels[h:2 * h]).abs().mean((1, 2, 3))
    return (apart / (z[:h] - z[h:2 * h]).abs().mean(1)).mean()


class Synthesizer:
    """Trains `generator` against `teacher` (and adversarially against `student`) in rounds, and
    keeps the images each round ends with in a pool (pixel space, at most `pool_size`, the oldest
    overwritten first) from which `replay` draws the student's batches.

    Not an nn.Module on purpose: the generator has its own optimiser, and its parameters must not
    reach the training loop's, which would step them a second time."""

    def __init__(self, generator: ConditionalGenerator, teacher: nn.Module, student: nn.Module, classes: int, *,
                 batch: int, steps_per_round: int, lr: float, bn: float, one_hot: float, adversarial: float,
                 diversity: float, pool_size: int, jitter: int):
        self.generator, self.teacher, self.student, self.classes = generator, teacher, student, classes
        self.batch, self.steps_per_round, self.pool_size, self.jitter = batch, steps_per_round, pool_size, jitter
        self.weights = {"bn": bn, "one_hot": one_hot, "adversarial": adversarial, "diversity": diversity}
        # Adam with beta1 0.5, the DCGAN setting DAFL, DeepInversion's generator variants and Fast-DFKD use.
        self.optimizer = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.999))
        self.pool: Optional[torch.Tensor] = None  # pixels, a ring buffer of pool_size images
        self.pool_labels = torch.zeros(pool_size, dtype=torch.long)  # the classes they were drawn for
        self.filled, self.next_slot = 0, 0
        self.generator_steps = 0
        self.last_terms: dict[str, float] = {}  # the last generator step's terms, for diagnostics

    def __len__(self) -> int:
        return self.filled

    def step(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """One generator update on (z, labels); returns the pixels it was scored on (detached)."""
        with torch.enable_grad(), frozen(self.teacher), frozen(self.student):
            pixels = self.generator.pixels(z, labels)
            x = jittered(self.generator.normalise(pixels), self.jitter)
            with batchnorm_distances(self.teacher) as distances:
                t_logits = self.teacher(x)
            terms = {"one_hot": F.cross_entropy(t_logits, labels)}
            if distances:
                terms["bn"] = torch.stack(distances).mean()
            if self.weights["adversarial"]:
                terms["adversarial"] = -masked_disagreement(self.student(x), t_logits)
            if self.weights["diversity"]:
                terms["diversity"] = -pair_diversity(pixels, z)
            loss = torch.stack([self.weights[k] * v for k, v in terms.items()]).sum()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        self.generator_steps += 1
        with torch.no_grad():
            agree = (t_logits.argmax(1) == labels).float().mean()
            confidence = F.softmax(t_logits, 1).max(1).values.mean()
        self.last_terms = {**{k: float(v.detach()) for k, v in terms.items()},
                           "teacher_agrees": float(agree), "teacher_confidence": float(confidence)}
        return pixels.detach()

    def warm_up(self, steps: int) -> None:
        """Generator steps whose images are not kept: the first batches of an untrained generator
        are noise that would stay in the pool."""
        for _ in range(steps):
            self.step(torch.randn(self.batch, self.generator.latent), balanced_labels(self.batch, self.classes))

    def round(self) -> None:
        """`steps_per_round` generator steps on one fresh batch of noise and classes; the batch the
        last step scored joins the pool."""
        z = torch.randn(self.batch, self.generator.latent)
        labels = balanced_labels(self.batch, self.classes)
        for _ in range(self.steps_per_round):
            pixels = self.step(z, labels)
        self.keep(pixels, labels)

    def keep(self, pixels: torch.Tensor, labels: torch.Tensor) -> None:
        """Adds a batch to the pool, over its oldest images once it is full."""
        if self.pool is None:
            self.pool = torch.empty(self.pool_size, *pixels.shape[1:])
        slots = (self.next_slot + torch.arange(len(pixels))) % self.pool_size
        self.pool[slots], self.pool_labels[slots] = pixels, labels
        self.next_slot = int(slots[-1] + 1) % self.pool_size
        self.filled = min(self.pool_size, self.filled + len(pixels))

    def replay(self, n: int) -> torch.Tensor:
        """`n` pool images drawn uniformly (without replacement while the pool holds enough),
        jittered, normalised as the models read them."""
        if self.pool is None:
            raise RuntimeError("data-free synthesis: replay() before any round filled the pool")
        pick = torch.randperm(self.filled)[:n] if self.filled >= n else torch.randint(self.filled, (n,))
        with torch.no_grad():
            return jittered(self.generator.normalise(self.pool[pick]), self.jitter)
