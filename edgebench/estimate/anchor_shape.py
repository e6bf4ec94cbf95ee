"""The roofline's shape, fitted to published anchors inside the cross-validation.

Four multipliers on the prior factors (roofline.PRIOR): depthwise and grouped convolutions, memory-
bound ops (pooling, elementwise, data movement), the per-operator dispatch cost, and the dense 3x3
stride-1 convolutions a runtime computes as Winograd tiles (anchor_hardware.winograd_positions:
ncnn on a CPU; their roofline time moved out of the dense conv column into a column of their own,
WINOGRAD_COLUMN), shared by every device of a processor class (cpu, gpu, npu). Only ratios between
models inform them (each anchor group's scale is free) and they are pulled towards the prior
(PRIOR_WEIGHT). The shape that predicts a held-out anchor is fitted on the other anchors only
(`ShapeFit.coef(exclude=...)`), so no published figure contributes to its own prediction.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from edgebench.devices.profiles import Anchor, DeviceProfile
from edgebench.estimate.anchor_hardware import (
    anchor_hardware,
    anchor_ops,
    anchor_precision,
    buildable,
    comparable,
    winograd_positions,
)
from edgebench.estimate.op_costs import GROUPS
from edgebench.estimate.roofline import PRIOR, PRIOR_WEIGHT, Hardware, features

PROCESSOR_CLASSES = ("cpu", "gpu", "npu")  # an anchor on "gpu+2xdla" or "unstated" trains nothing


CONV = GROUPS.index("conv")
# One column past roofline.features: the roofline time of the convolutions the anchor's runtime
# computes as Winograd tiles, taken out of the dense conv column. Its prior factor is the dense
# conv's (no Winograd gain); its multiplier is fitted like the others, so how much faster those
# convolutions run than the direct-convolution roofline says is read from the ratios between the
# anchors (vgg16's 3x3 convolutions against the small models), not assumed from a tile size.
WINOGRAD_COLUMN = len(PRIOR)
# Which factors each shape parameter multiplies: depthwise/grouped conv; memory-bound ops; dispatch;
# Winograd convolutions.
SHAPE_COLUMNS = (
    (GROUPS.index("dwconv"), GROUPS.index("gconv")),
    (GROUPS.index("pool"), GROUPS.index("elementwise"), GROUPS.index("other")),
    (len(GROUPS),),  # the per-operator column of roofline.features
    (WINOGRAD_COLUMN,),
)


def shape_coef(theta: np.ndarray) -> np.ndarray:
    """PRIOR (and the Winograd column's prior, the dense conv's) with each shape parameter's columns
    multiplied by exp(parameter); zeros: the prior."""
    coef = np.append(PRIOR, PRIOR[CONV])
    for t, cols in zip(theta, SHAPE_COLUMNS):
        coef[list(cols)] *= math.exp(float(t))
    return coef


def anchor_features(profile: DeviceProfile, anchor: Anchor, hw: Hardware) -> np.ndarray:
    """roofline.features of the anchor's reference model on `hw`, with the time of the convolutions
    its runtime computes as Winograd tiles moved from the dense conv column to WINOGRAD_COLUMN."""
    ops, precision = anchor_ops(anchor), anchor_precision(profile, anchor)
    row = np.append(features(ops, precision, hw), 0.0)
    winograd = winograd_positions(anchor)
    if winograd:
        moved = features([ops[i] for i in sorted(winograd)], precision, hw)[CONV]
        row[CONV] -= moved
        row[WINOGRAD_COLUMN] = moved
    return row


def modelled_time(coef: np.ndarray, profile: DeviceProfile, anchor: Anchor, hw: Hardware) -> float:
    """The roofline time of the anchor's reference model on `hw` with factors `coef` (shape_coef)."""
    return float(anchor_features(profile, anchor, hw) @ coef)


@dataclass(frozen=True)
class _Sample:
    anchor: Anchor
    group: tuple  # (device, runtime, processor, precision, threads, batch, machine): anchors that transfer
    log_latency: float
    features: np.ndarray  # anchor_features of its model on the hardware it ran on


def _samples(profiles: list[DeviceProfile], processor_class: str) -> list[_Sample]:
    """Every buildable anchor of the class with a comparable peer (one it can be predicted from)."""
    out = []
    for profile in profiles:
        usable = [a for a in profile.anchors if buildable(a) and a.processor == processor_class]
        for a in usable:
            hw = anchor_hardware(profile, a)
            if hw is None or not a.latency_ms or not any(comparable(a, b) for b in usable if b is not a):
                continue
            out.append(_Sample(a, (profile.name, a.runtime, a.processor, a.precision, a.threads, a.batch,
                                   a.device_detail),
                               math.log(a.latency_ms), anchor_features(profile, a, hw)))
    return out


def fit_shape(samples: list[_Sample]) -> np.ndarray:
    """Shape parameters minimising, over every anchor group, the spread of log(latency / modelled
    time) around the group's mean (the transfer's own error: a group's scale is free), plus
    PRIOR_WEIGHT x the squared distance from the prior (zeros). Only ratios inside a group inform it.
    The pull is roofline.fit's PRIOR_WEIGHT, reused rather than tuned. For the record, a one-off sweep
    of an earlier draft of this fit (not in the committed results) saw a much weaker pull (0.01)
    overfit groups of three or four anchors (fewer held-out anchors within +-25%), while 0.1 and
    0.3 gave about the same leave-one-anchor-out figures."""
    from scipy.optimize import minimize

    groups: dict[tuple, list[_Sample]] = {}
    for smp in samples:
        groups.setdefault(smp.group, []).append(smp)
    sets = [(np.array([smp.log_latency for smp in g]), np.array([smp.features for smp in g]))
            for g in groups.values() if len({smp.anchor.model for smp in g}) >= 2]
    zero = np.zeros(len(SHAPE_COLUMNS))
    if not sets:
        return zero

    def loss(theta: np.ndarray) -> float:
        coef = shape_coef(theta)
        total = PRIOR_WEIGHT * float(theta @ theta)
        for logs, feats in sets:
            r = logs - np.log(feats @ coef)
            total += float(((r - r.mean()) ** 2).sum())
        return total

    best = None
    for start in (zero, np.array([1.0, 1.0, 2.0, 0.0]), np.array([-1.0, -1.0, 2.0, 0.0])):  # deterministic restarts
        res = minimize(loss, start, method="Nelder-Mead", options={"xatol": 1e-4, "fatol": 1e-9, "maxiter": 4000})
        if best is None or res.fun < best.fun:
            best = res
    assert best is not None
    return np.asarray(best.x, dtype=np.float64)


class ShapeFit:
    """The shape of one processor class, fitted on the anchors of every shipped profile (with
    `profile` in place of its shipped namesake). `coef(exclude=a)` is fitted without anchor `a`:
    the factors that predict `a` never saw it."""

    def __init__(self, profile: DeviceProfile, processor_class: str):
        from edgebench.devices.profiles import all_profiles

        profiles = {p.name: p for p in all_profiles().values() if p.name != "host"}
        profiles[profile.name] = profile
        self.samples = _samples(list(profiles.values()), processor_class)
        self._fits: dict[Optional[int], np.ndarray] = {}

    def theta(self, exclude: Optional[Anchor] = None) -> np.ndarray:
        # keyed by the excluded sample's position (an anchor the fit never saw excludes nothing)
        k = next((i for i, smp in enumerate(self.samples) if smp.anchor is exclude), None)
        if k not in self._fits:
            self._fits[k] = fit_shape([smp for i, smp in enumerate(self.samples) if i != k])
        return self._fits[k]

    def coef(self, exclude: Optional[Anchor] = None) -> np.ndarray:
        return shape_coef(self.theta(exclude))

    def trained_on(self, exclude: Optional[Anchor] = None) -> list[Anchor]:
        return [smp.anchor for smp in self.samples if smp.anchor is not exclude]


def shape_fit(profile: DeviceProfile, processor: str) -> Optional[ShapeFit]:
    return ShapeFit(profile, processor) if processor in PROCESSOR_CLASSES else None
