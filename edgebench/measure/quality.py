"""Quality of a deployed artifact, and which metric it is.

Every measurement says what its quality figure is (`QualityResult.metric`):

- `top1`: top-1 accuracy on labels, only where the labels fit the model's output and the model
  was built for them (a classifier edgebench trained on the built-in data, or labels the user
  gave). Chance is 1 / classes, and a report never recommends a candidate at or below it.
- `agreement`: the candidate's outputs compared with the FP32 reference's outputs on the same
  inputs (the reference is the baseline's FP32 ONNX model on ONNX Runtime's CPU provider). Per
  output: cosine similarity, SQNR in dB, max abs error, and top-1 agreement where the output
  looks like class scores (last axis of 2 or more, 2 or 3 dims). The headline value is the cosine
  similarity of the first output; the rest travel in `per_output`.
- a user metric `module:function` or a name registered in `METRICS` (entry-point group
  `edgebench.metrics`), called as `function(outputs, targets) -> float` with `outputs` the list of
  model outputs stacked over the evaluation samples and `targets` the labels (None without).
- `none`: not measured, with the reason (synthetic inputs, a failed reference).
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from edgebench.core.errors import NotFoundError
from edgebench.core.records import _Record
from edgebench.core.registry import Registry
from edgebench.measure.accuracy import wilson_interval

METRICS: Registry[Callable] = Registry("metric", "edgebench.metrics")


@dataclass(frozen=True)
class QualityResult(_Record):
    metric: str  # "top1" | "agreement" | a user metric's name | "none"
    value: Optional[float] = None  # top-1 fraction, cosine similarity, or the user metric's value
    description: str = ""  # what the value is, in words, for reports
    samples: int = 0
    per_output: tuple = ()
    reason: Optional[str] = None  # why not measured
    higher_is_better: bool = True
    chance: Optional[float] = None  # the value a random guess gets, where known
    extra: dict = field(default_factory=dict)


def not_measured(reason: str) -> QualityResult:
    return QualityResult(metric="none", description=f"not measured: {reason}", reason=reason)


def looks_like_class_scores(array: np.ndarray) -> bool:
    return array.ndim in (2, 3) and array.shape[-1] >= 2


def output_agreement(got: np.ndarray, ref: np.ndarray) -> dict:
    """Cosine, SQNR, max abs error (and top-1 agreement for class scores) of `got` against `ref`."""
    g = np.asarray(got, np.float64).ravel()
    r = np.asarray(ref, np.float64).ravel()
    noise = float(np.sum((g - r) ** 2))
    signal = float(np.sum(r ** 2))
    norm = float(np.linalg.norm(g) * np.linalg.norm(r))
    row = {"cosine": float(g @ r / norm) if norm > 0 else float(noise == 0),
           # Identical outputs have an infinite SQNR, which JSON cannot hold: None, and `identical` says why.
           "sqnr_db": float(10 * np.log10(signal / noise)) if noise > 0 and signal > 0 else None,
           "identical": noise == 0,
           "max_abs_error": float(np.abs(g - r).max()) if g.size else 0.0}
    if looks_like_class_scores(np.asarray(ref)):
        row["top1_agreement"] = float(np.mean(np.asarray(got).argmax(-1) == np.asarray(ref).argmax(-1)))
    return row


def agreement(outputs: list[np.ndarray], reference: list[np.ndarray], names: list[str]) -> QualityResult:
    """`outputs` and `reference`: per model output, stacked over the same evaluation samples."""
    rows = []
    for i, (got, ref) in enumerate(zip(outputs, reference)):
        if np.shape(got) != np.shape(ref):
            rows.append({"output": names[i] if i < len(names) else str(i),
                         "error": f"shape {list(np.shape(got))} vs reference {list(np.shape(ref))}"})
            continue
        rows.append({"output": names[i] if i < len(names) else str(i), **output_agreement(got, ref)})
    first = rows[0] if rows else {}
    samples = len(outputs[0]) if outputs else 0
    if "cosine" not in first:
        return QualityResult(metric="none", description="not measured: outputs do not match the FP32 reference",
                             reason=first.get("error", "no outputs"), samples=samples, per_output=tuple(rows))
    return QualityResult(metric="agreement", value=float(first["cosine"]), samples=samples, per_output=tuple(rows),
                         description=f"cosine similarity with FP32 on output '{first['output']}'")


def top1(outputs: list[np.ndarray], labels: np.ndarray, num_classes: int) -> QualityResult:
    scores = outputs[0].reshape(len(labels), -1)
    correct = int((scores.argmax(-1) == labels).sum())
    lo, hi = wilson_interval(correct, len(labels))
    return QualityResult(metric="top1", value=correct / max(1, len(labels)), samples=len(labels),
                         description="top-1 accuracy on the dataset's labels", chance=1.0 / max(1, num_classes),
                         extra={"ci_low": lo, "ci_high": hi, "correct": correct})


def resolve_metric(spec: str) -> Callable:
    """A registered metric name or `module:function`."""
    if ":" in spec:
        module_name, attr = spec.split(":", 1)
        try:
            return getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as e:
            raise NotFoundError(f"cannot import metric '{spec}': {e}") from None
    return METRICS.get(spec)


def user_metric(spec: str, outputs: list[np.ndarray], targets: Optional[np.ndarray]) -> QualityResult:
    value = float(resolve_metric(spec)(outputs, targets))
    return QualityResult(metric=spec, value=value, samples=len(outputs[0]) if outputs else 0,
                         description=f"user metric {spec}")
