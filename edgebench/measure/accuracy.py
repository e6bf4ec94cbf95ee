"""Accuracy of a deployed artifact, computed by running it on its runtime over the eval split."""
from __future__ import annotations

import math

import numpy as np

from edgebench.core.errors import IncompatibleError
from edgebench.core.records import AccuracyResult


def wilson_interval(correct: int, total: int, z: float = 1.96) -> tuple[float, float]:
    if total == 0:
        return 0.0, 1.0
    p = correct / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def evaluate_runner(runner, x: np.ndarray | dict[str, np.ndarray], y: np.ndarray, num_classes: int,
                    batch_size: int = 1, input_name: str = "input") -> AccuracyResult:
    """Top-1 of the runner's first output on labels `y`; `x` is one array (fed as `input_name`) or,
    for a model with several inputs, one array per input name, each [samples, ...]."""
    arrays = x if isinstance(x, dict) else {input_name: x}
    correct = 0
    for start in range(0, len(y), batch_size):
        feed = {name: np.ascontiguousarray(a[start:start + batch_size]) for name, a in arrays.items()}
        logits = np.asarray(runner.infer(feed)[0])
        if logits.ndim != 2 or logits.shape[1] != num_classes:
            raise IncompatibleError(
                f"model output shape {tuple(logits.shape)} does not fit the dataset's {num_classes} classes")
        correct += int((logits.argmax(1) == y[start:start + batch_size]).sum())
    lo, hi = wilson_interval(correct, len(y))
    return AccuracyResult(top1=correct / max(1, len(y)), correct=correct, total=len(y), ci_low=lo, ci_high=hi)
