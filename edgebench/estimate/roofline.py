"""Latency estimates for a device that is neither this machine nor reachable, with their error.

Model: an additive roofline over the ONNX graph. Each operator costs
max(FLOPs / peak compute, bytes / memory bandwidth) at the precision it runs in; operators are
grouped by kind (dense, depthwise and grouped conv, matmul, pooling, elementwise, data movement) and
each group gets an efficiency factor, plus a per-operator dispatch overhead and a fixed
per-inference cost:

    latency = sum_g a_g * roofline_time_g + b * n_ops * overhead_scale + c

The factors are fitted (non-negative least squares on relative error, pulled towards a prior
when data are scarce) per runtime and precision on measurements: this run's host measurements,
the points `benchmarks/estimator.py` caches, and any measurements of the target device in other
run folders. For the target, the host's measurement of the same candidate is scaled by
predicted(target) / predicted(host), so the per-model residual the roofline misses cancels.

The stated error is the leave-one-model-out error on this machine (how well the model transfers
between models). How well it transfers between devices cannot be checked without the device, and
every estimate says so.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgebench.estimate.op_costs import BYTES_PER_ELEMENT, GROUPS, graph_costs

# Datasheet peaks are not reached even by a tuned GEMM or STREAM copy; host figures are measured
# (achievable), so target peaks are derated to the same footing before they are compared.
ACHIEVABLE_COMPUTE = 0.8
ACHIEVABLE_BANDWIDTH = 0.7
# Prior factors (1/efficiency): used alone when nothing is calibrated, and as a weak pull otherwise.
PRIOR = np.array([3.0, 4.0, 4.0, 2.0, 3.0, 3.0, 3.0, 10.0, 1.0])
PRIOR_WEIGHT = 0.3
NODE_UNIT_MS = 0.001  # the per-op column is in microseconds per op
CONSTANT_UNIT_MS = 0.01
UNCALIBRATED_ERROR_PCT = 50.0
POINTS_FILE = "estimator/points-v2.jsonl"  # v2: op groups include gconv
VALIDATION_FILE = "estimator/validation-v2.json"


@dataclass(frozen=True)
class Hardware:
    peak_gflops: dict
    memory_bandwidth_gbs: float
    overhead_scale: float = 1.0  # per-op dispatch cost relative to this machine's CPU

    def peak(self, precision: str) -> float:
        if precision in self.peak_gflops:
            return float(self.peak_gflops[precision])
        fp32 = float(self.peak_gflops.get("fp32") or next(iter(self.peak_gflops.values()), 1.0))
        return fp32 * {"int8": 2.0, "fp16": 1.0, "bf16": 1.0}.get(precision, 1.0)


@dataclass
class Point:
    """One measured latency with the graph it came from, normalised by the hardware that ran it."""
    model: str
    runtime: str
    precision: str
    latency_ms: float
    ops: list  # [group index, flops, elements] per operator
    hardware: dict
    device: str = "host"

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def ops_of(onnx_path: Path) -> list:
    return [[GROUPS.index(op.group), op.flops, op.bytes_moved] for op in graph_costs(onnx_path)]


def features(ops: list, precision: str, hw: Hardware) -> np.ndarray:
    peak = hw.peak(precision) * 1e6  # FLOP per ms
    bandwidth = hw.memory_bandwidth_gbs * 1e6  # bytes per ms
    bpe = BYTES_PER_ELEMENT.get(precision, 4)
    row = np.zeros(len(GROUPS) + 2)
    for g, flops, elements in ops:
        row[int(g)] += max(flops / peak, elements * bpe / bandwidth)
    row[len(GROUPS)] = len(ops) * NODE_UNIT_MS * hw.overhead_scale
    row[len(GROUPS) + 1] = CONSTANT_UNIT_MS * hw.overhead_scale  # Python and session overhead, one core
    return row


def op_times(ops: list, precision: str, hw: Hardware, coef: np.ndarray) -> np.ndarray:
    """Each operator's share of the predicted latency (for the estimated per-op breakdown)."""
    peak, bandwidth = hw.peak(precision) * 1e6, hw.memory_bandwidth_gbs * 1e6
    bpe = BYTES_PER_ELEMENT.get(precision, 4)
    per_op = NODE_UNIT_MS * hw.overhead_scale * coef[len(GROUPS)]
    return np.array([coef[int(g)] * max(f / peak, e * bpe / bandwidth) + per_op for g, f, e in ops])


def fit(points: list[Point]) -> np.ndarray:
    """Non-negative factors minimising relative error, with a weak pull to the prior."""
    from scipy.optimize import nnls

    if not points:
        return PRIOR.copy()
    A = np.array([features(p.ops, p.precision, Hardware(**p.hardware)) / p.latency_ms for p in points])
    b = np.ones(len(points))
    coef = PRIOR.copy()  # an op kind that none of the points contains keeps its prior factor
    seen = A.max(axis=0) > 0
    A = A[:, seen]
    reg = np.sqrt(PRIOR_WEIGHT * len(points) / len(PRIOR))
    # The pull towards the prior is relative to each column's typical size, but never weaker than
    # for a column of ordinary size: an op kind that only one or two models contain must not be
    # free to absorb their noise (it would then be wildly wrong on the next model that has it).
    means = A.mean(axis=0)
    scale = np.maximum(means, 0.25 * np.median(means))
    A_aug = np.vstack([A, reg * np.diag(scale)])
    b_aug = np.concatenate([b, reg * scale * PRIOR[seen]])
    coef[seen], _ = nnls(A_aug, b_aug)
    return coef


def predict(coef: np.ndarray, ops: list, precision: str, hw: Hardware) -> float:
    return float(features(ops, precision, hw) @ coef)


def leave_one_model_out(points: list[Point]) -> list[float]:
    """Relative errors (predicted / measured - 1) with each model's points held out in turn."""
    errors = []
    for model in sorted({p.model for p in points}):
        train = [p for p in points if p.model != model]
        coef = fit(train)
        for p in points:
            if p.model == model:
                errors.append(predict(coef, p.ops, p.precision, Hardware(**p.hardware)) / p.latency_ms - 1)
    return errors


def error_summary(errors: Iterable[float]) -> dict:
    e = np.abs(np.asarray(list(errors)))
    if e.size == 0:
        return {"n": 0}
    return {"n": int(e.size), "within_10pct": float((e <= 0.10).mean()), "median_abs_pct": float(100 * np.median(e)),
            "p90_abs_pct": float(100 * np.percentile(e, 90))}

