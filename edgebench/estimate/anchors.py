"""Published measurements as the ground truth of device estimates.

Each device profile cites latencies of reference models measured on the device itself (its
`anchors`). An estimate for a candidate transfers from the anchors of the same runtime, processor,
precision and thread count: the geometric mean over them of anchor latency x (candidate /
reference model), the ratio from the roofline on the device's own derated peaks (the reference
models' operator costs are shipped in reference_ops.json, estimate/reference.py).

The roofline's factors are the prior's (roofline.PRIOR) times a "shape" fitted to published
anchors (anchor_shape.py): one multiplier for depthwise and grouped convolutions, one for memory-bound
ops (pooling, elementwise, data movement), one for the per-operator dispatch cost and one for the
convolutions ncnn computes as Winograd tiles (on ncnn anchors only), shared by
every device of a processor class (cpu, gpu, npu). Only ratios between models inform it (each
anchor group's scale is free), it is pulled towards the prior (PRIOR_WEIGHT), and it is fitted
strictly inside the cross-validation: the shape that predicts a held-out anchor is fitted on the
other anchors only (`ShapeFit.coef(exclude=...)`), so no published figure contributes to its own
prediction. A candidate's estimate in `compare` uses the shape fitted on every anchor.
A run on fewer threads than the processor has cores gets that share of its compute peak
(anchor_hardware.py); bandwidth stays whole unless the profile states what one core sustains
(`core_bandwidth_gbs`: a few cores of a server socket draw only their own); a CPU run's per-operator cost grows
with the threads it synchronises after each operator (`sync_scale`) and shrinks with its clock
(`clock_scale`: dispatch is cycles on a core); FP32 on a GPU that states a
TF32 peak computes at that rate under runtimes that use TF32 by default (`compute_precision`).

`check` validates that transfer for one (device, runtime, processor, precision): every comparable
anchor is predicted from the others (leave-one-anchor-out, never from itself) and compared with
what was published. Its error is the only error figure an anchored estimate may state; with fewer
than MIN_PREDICTIONS predictions the estimate is unvalidated. `compare` (estimate/device_rows.py)
and `benchmarks/anchor_validation.py` both call it, so the figure a row states and the figure the
benchmark publishes are the same computation.

`leave_one_anchor_out` is the hardware-level check the benchmark also reports: every anchor,
edgebench runtime or not (ncnn included), predicted from anchors with identical labels.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Optional

import numpy as np

from edgebench.devices.profiles import Anchor, DeviceProfile
from edgebench.estimate.anchor_hardware import (
    anchor_hardware,
    anchor_ops,
    buildable,
    comparable,
    compute_precision,
    processor_hardware,
)
from edgebench.estimate.anchor_shape import SHAPE_COLUMNS, ShapeFit, modelled_time, shape_coef, shape_fit
from edgebench.estimate.roofline import PRIOR, Hardware, predict

GOAL_WITHIN = 0.25  # the goal: >= 80% of anchors predicted within +-25%
MIN_PREDICTIONS = 2  # fewer held-out predictions than this: no error figure, the estimate is unvalidated

# An anchor's runtime label names the edgebench runtime it stands for; these are the only labels
# that differ from an edgebench runtime's name and still count (read from the anchors' notes):
# ORT's OpenVINO EP hands a supported graph whole to OpenVINO's device plugin, so on the NPU the
# kernels are OpenVINO's, and edgebench's own onnxruntime on an NPU asks for that EP first
# (backends/onnxruntime.py PROVIDERS_FOR). Not listed, so never comparable: ncnn (edgebench has no
# runner), a processor the source leaves "unstated", ORT OpenVINO EP on a CPU or iGPU (fp16 there
# is not a precision edgebench plans on those processors). Plain "onnxruntime" on "gpu" matches
# edgebench's onnxruntime on a GPU as it stands: both ask for the TensorRT EP, then CUDA.
EQUIVALENT_RUNTIMES: dict[tuple[str, str], tuple[str, ...]] = {
    ("onnxruntime+openvino-ep", "npu"): ("openvino", "onnxruntime"),
}

Ratio = Callable[[Anchor, Anchor], Optional[float]]  # latency(a) / latency(b) on the same runtime


def edgebench_runtimes(anchor: Anchor) -> tuple[str, ...]:
    if not anchor.edgebench_runtime:
        return ()
    return EQUIVALENT_RUNTIMES.get((anchor.runtime, anchor.processor), (anchor.runtime,))


def comparable_anchors(profile: DeviceProfile, runtime: str, processor: str, precision: str) -> list[Anchor]:
    """The anchors an estimate of (runtime, processor, precision) on `profile` may transfer from.
    Threads: the source's default (None, i.e. every core, as edgebench runs) or every core stated."""
    proc = profile.processors.get(processor)  # type: ignore[call-overload]
    cores = (proc.cores if proc else None) or profile.threads
    return [a for a in profile.anchors if buildable(a) and a.processor == processor and a.precision == precision
            and runtime in edgebench_runtimes(a) and a.threads in (None, cores)]


def transfer(peers: list[Anchor], ratio_to: Callable[[Anchor], Optional[float]]) -> Optional[float]:
    """Geometric mean over `peers` of peer latency x ratio_to(peer) (target / peer's model)."""
    logs = []
    for b in peers:
        r = ratio_to(b)
        if r and r > 0 and b.latency_ms:
            logs.append(math.log(b.latency_ms * r))
    return math.exp(sum(logs) / len(logs)) if logs else None


def _row(profile: DeviceProfile, a: Anchor, peers: list[Anchor], predicted: float) -> dict:
    published = a.latency_ms or 0.0
    return {"device": profile.name, "model": a.model, "runtime": a.runtime, "processor": a.processor,
            "precision": a.precision, "threads": a.threads, "published_ms": published,
            "predicted_ms": round(predicted, 4), "error": round(predicted / published - 1, 4),
            "from": sorted(b.model for b in peers), "reliability": a.reliability, "source": a.source}


def leave_one_anchor_out(profile: DeviceProfile, ratio: Ratio) -> list[dict]:
    """Every buildable anchor predicted from the device's other comparable anchors."""
    usable = [a for a in profile.anchors if buildable(a)]
    rows = []
    for a in usable:
        peers = [b for b in usable if b is not a and comparable(a, b)]
        predicted = transfer(peers, partial(ratio, a)) if peers else None
        if predicted is not None and a.latency_ms is not None:
            rows.append(_row(profile, a, peers, predicted))
    return rows


def roofline_ratio(profile: DeviceProfile, fitted: bool = True) -> Ratio:
    """ratio(a, b) = modelled time of a's reference model / b's, on the hardware a ran on, with the
    roofline shape fitted on every anchor of a's processor class except a itself (fitted=False:
    the prior factors, for comparison)."""
    fits: dict[str, Optional[ShapeFit]] = {}

    def ratio(a: Anchor, b: Anchor) -> Optional[float]:
        hw = anchor_hardware(profile, a)
        if hw is None:
            return None
        if a.processor not in fits:
            fits[a.processor] = shape_fit(profile, a.processor) if fitted else None
        fit = fits[a.processor]
        coef = fit.coef(exclude=a) if fit is not None else shape_coef(np.zeros(len(SHAPE_COLUMNS)))
        tb = modelled_time(coef, profile, b, hw)  # b is comparable to a: the same runtime, so the same Winograd split
        return modelled_time(coef, profile, a, hw) / tb if tb > 0 else None
    return ratio


def interval_error(errors: list[float]) -> Optional[float]:
    """e such that predicted/(1+e) .. predicted x (1+e) holds 90% of the held-out anchors: the 90th
    percentile of |log(predicted / published)| (symmetric in ratio: -50% counts like +100%)."""
    if len(errors) < MIN_PREDICTIONS:
        return None
    return float(np.expm1(np.percentile(np.abs(np.log1p(np.asarray(errors, dtype=np.float64))), 90)))


def summarize_errors(rows: list[dict]) -> dict:
    e = np.abs(np.array([r["error"] for r in rows], dtype=np.float64))
    if e.size < MIN_PREDICTIONS:
        return {"n": int(e.size), "status": "unvalidated"}
    spread = interval_error([r["error"] for r in rows]) or 0.0
    return {"n": int(e.size), "within_25pct": float((e <= GOAL_WITHIN).mean()),
            "median_abs_pct": float(100 * np.median(e)), "p90_abs_pct": float(100 * np.percentile(e, 90)),
            "interval_error_pct": float(100 * spread), "status": "checked",
            "meets_goal": bool((e <= GOAL_WITHIN).mean() >= 0.8)}


@dataclass
class AnchorCheck:
    """The anchors of one (device, runtime, processor, precision) and how well they predict each other."""
    anchors: list[Anchor]
    hardware: Optional[Hardware]  # the processor's derated peaks; None where its profile states none
    precision: str  # the precision the roofline computes in (compute_precision: fp32 may run as tf32)
    shape: Optional[ShapeFit] = None  # the roofline shape of the processor class; None: the prior
    rows: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        return bool(self.anchors) and self.hardware is not None

    @property
    def error(self) -> Optional[float]:
        """The interval's relative half-width (see interval_error); None: unvalidated."""
        return interval_error([r["error"] for r in self.rows])

    def coef(self, exclude: Optional[Anchor] = None) -> np.ndarray:
        """The roofline factors: the shape fitted on every anchor of the class but `exclude`. Only
        roofline.features' columns: an edgebench runtime has no Winograd column (anchor_hardware.
        WINOGRAD_RUNTIMES), so a candidate's ops are costed as they are."""
        return self.shape.coef(exclude)[:len(PRIOR)] if self.shape is not None else PRIOR

    def time_of(self, ops: list, exclude: Optional[Anchor] = None) -> float:
        assert self.hardware is not None, "no peaks: check `usable` first"
        return predict(self.coef(exclude), ops, self.precision, self.hardware)

    def predict(self, ops: list) -> Optional[float]:
        """Anchor transfer for a graph's ops (a candidate: the shape fitted on every anchor); None
        when no anchor is usable."""
        return self._transfer(ops, self.anchors) if self.usable else None

    def _transfer(self, ops: list, peers: list[Anchor], exclude: Optional[Anchor] = None) -> Optional[float]:
        target = self.time_of(ops, exclude)

        def ratio_to(b: Anchor) -> Optional[float]:
            t = self.time_of(anchor_ops(b), exclude)
            return target / t if t > 0 else None
        return transfer(peers, ratio_to)

    def describe(self) -> list[dict]:
        return [{"model": a.model, "input_size": a.input_size, "runtime": a.runtime, "processor": a.processor,
                 "precision": a.precision, "latency_ms": a.latency_ms, "reliability": a.reliability,
                 "source": a.source} for a in self.anchors]

    def describe_shape(self) -> dict:
        if self.shape is None:
            return {"factors": "prior (roofline.PRIOR)"}
        theta = self.shape.theta()
        return {"multipliers_of_prior": {"dwconv+gconv": round(math.exp(theta[0]), 3),
                                         "pool+elementwise+other": round(math.exp(theta[1]), 3),
                                         "per_op_dispatch": round(math.exp(theta[2]), 3),
                                         "winograd_convs (ncnn anchors only)": round(math.exp(theta[3]), 3)},
                "fitted_on": len(self.shape.samples),
                "how": "fitted to the ratios between published anchors of every device of this processor class "
                       "(edgebench/estimate/anchor_shape.py fit_shape); each held-out anchor is predicted with the "
                       "shape fitted without it"}


def check(profile: DeviceProfile, runtime: str, processor: str, precision: str) -> AnchorCheck:
    """The comparable anchors, each predicted from the others with the same roofline ratio, whose
    shape is fitted without the anchor predicted (leave-one-anchor-out, nested)."""
    anchors = comparable_anchors(profile, runtime, processor, precision)
    proc = profile.processors.get(processor)  # type: ignore[call-overload]
    found = AnchorCheck(anchors, processor_hardware(profile, processor), compute_precision(precision, proc, runtime),
                        shape_fit(profile, processor) if anchors else None)
    if found.usable:
        for a in found.anchors:
            peers = [b for b in found.anchors if b.model != a.model]
            predicted = found._transfer(anchor_ops(a), peers, exclude=a)
            if predicted is not None:
                found.rows.append(_row(profile, a, peers, predicted))
    found.summary = summarize_errors(found.rows)
    return found
