"""Published measurements as the ground truth of device estimates.

Each device profile cites latencies of reference models measured on the device itself (its
`anchors`). An estimate for a candidate transfers from the anchors of the same runtime, processor,
precision and thread count: the geometric mean over them of anchor latency x (candidate /
reference model), the ratio from the roofline on the device's own derated peaks (`roofline_time`;
the reference models' operator costs are shipped in reference_ops.json, estimate/reference.py).

The roofline's factors are the prior's (roofline.PRIOR) times a "shape" fitted to published
anchors (`fit_shape`): one multiplier for depthwise and grouped convolutions, one for memory-bound
ops (pooling, elementwise, data movement) and one for the per-operator dispatch cost, shared by
every device of a processor class (cpu, gpu, npu). Only ratios between models inform it (each
anchor group's scale is free), it is pulled towards the prior (PRIOR_WEIGHT), and it is fitted
strictly inside the cross-validation: the shape that predicts a held-out anchor is fitted on the
other anchors only (`ShapeFit.coef(exclude=...)`), so no published figure contributes to its own
prediction. A candidate's estimate in `compare` uses the shape fitted on every anchor.
A run on fewer threads than the processor has cores gets that share of its compute peak
(`anchor_hardware`); bandwidth is shared and stays whole; a CPU run's per-operator cost grows
with the threads it synchronises after each operator (`sync_scale`); FP32 on a GPU that states a
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

from edgebench.devices.profiles import Anchor, DeviceProfile, Processor
from edgebench.estimate.op_costs import GROUPS
from edgebench.estimate.reference import key, reference_ops
from edgebench.estimate.roofline import (
    ACHIEVABLE_BANDWIDTH,
    ACHIEVABLE_COMPUTE,
    PRIOR,
    PRIOR_WEIGHT,
    Hardware,
    features,
    predict,
)

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


def buildable(anchor: Anchor) -> bool:
    """A batch-1 latency of a reference model whose operator costs are shipped."""
    return (anchor.usable_latency and anchor.input_size is not None
            and key(anchor.model, anchor.input_size) in reference_ops())


def anchor_ops(anchor: Anchor) -> list:
    return reference_ops()[key(anchor.model, anchor.input_size or 0)]


def sync_scale(threads: Optional[int]) -> float:
    """How much a CPU runtime's per-operator cost grows with the threads it joins after every
    operator: a fork-join barrier over T threads takes ceil(log2 T) rounds in the scalable
    (tree/dissemination) barriers that OpenMP runtimes use (J. Mellor-Crummey, M. Scott,
    "Algorithms for scalable synchronization on shared-memory multiprocessors", ACM TOCS 9(1),
    1991), on top of one dispatch; that OpenMP barrier and parallel-loop overheads grow with the
    thread count is measured by the EPCC OpenMP microbenchmarks (J. M. Bull, "Measuring
    synchronisation and scheduling overheads in OpenMP", EWOMP 1999) and modelled across
    implementations by C. Iwainsky et al., "How Many Threads will be too Many? On the Scalability
    of OpenMP Implementations", Euro-Par 2015, LNCS 9233
    (https://link.springer.com/chapter/10.1007/978-3-662-48096-0_35). 1 + log2 T is this module's
    choice of form (the fitted per-op multiplier sets its size). For the record, a one-off comparison
    on the anchors of the time (not in the committed results; 37 anchors) gave: no scaling 62% within
    +-25%, sqrt(T/4) 65%, T/4 70%, 1 + log2 T 70% (median |error| 17, 16, 17, 15%)."""
    return 1.0 + math.log2(threads) if threads and threads > 1 else 1.0


def device_hardware(processor: Processor, threads: Optional[int] = None,
                    sync_threads: Optional[int] = None) -> Optional[Hardware]:
    """The processor's datasheet peaks derated to achievable, with no host in the picture: the same
    anchors must give the same estimate and error on every machine that runs `compare`. A run on
    `threads` of the processor's cores gets that share of the compute peak (the rest of the cores
    idle); memory bandwidth is shared by all cores and stays whole. `sync_threads`: a CPU run's
    thread count, which scales its per-operator cost (sync_scale); None: no scaling (GPU, NPU)."""
    if not processor.peak_gflops or not processor.memory_bandwidth_gbs:
        return None
    share = min(1.0, threads / processor.cores) if threads and processor.cores else 1.0
    return Hardware({p: v * ACHIEVABLE_COMPUTE * share for p, v in processor.peak_gflops.items()},
                    processor.memory_bandwidth_gbs * ACHIEVABLE_BANDWIDTH, sync_scale(sync_threads))


def processor_hardware(profile: DeviceProfile, processor: str, threads: Optional[int] = None) -> Optional[Hardware]:
    """A processor of `profile` run on `threads` (None: the source's default, every core)."""
    proc = profile.processors.get(processor)  # type: ignore[call-overload]
    if proc is None:
        return None
    sync = (threads or proc.cores or profile.threads) if processor == "cpu" else None
    return device_hardware(proc, threads, sync)


def anchor_hardware(profile: DeviceProfile, anchor: Anchor) -> Optional[Hardware]:
    """The hardware an anchor ran on: its processor's derated peaks at the threads it used."""
    return processor_hardware(profile, anchor.processor, anchor.threads)


def roofline_time(processor: Processor, precision: str,
                  coef: Optional[np.ndarray] = None) -> Optional[Callable[[list], float]]:
    """Modelled time of a graph's ops ([group, flops, elements] per op) on the processor."""
    hw = device_hardware(processor)
    if hw is None:
        return None
    factors = PRIOR if coef is None else coef
    return lambda ops: predict(factors, ops, precision, hw)


# ----------------------------------------------------------------------------------------------
# The roofline's shape, fitted to published anchors inside the cross-validation

PROCESSOR_CLASSES = ("cpu", "gpu", "npu")  # an anchor on "gpu+2xdla" or "unstated" trains nothing
# Which PRIOR factors each shape parameter multiplies: depthwise/grouped conv; memory-bound ops; dispatch.
SHAPE_COLUMNS = (
    (GROUPS.index("dwconv"), GROUPS.index("gconv")),
    (GROUPS.index("pool"), GROUPS.index("elementwise"), GROUPS.index("other")),
    (len(GROUPS),),  # the per-operator column of roofline.features
)


def shape_coef(theta: np.ndarray) -> np.ndarray:
    """PRIOR with each shape parameter's columns multiplied by exp(parameter); zeros: the prior."""
    coef = PRIOR.copy()
    for t, cols in zip(theta, SHAPE_COLUMNS):
        coef[list(cols)] *= math.exp(float(t))
    return coef


@dataclass(frozen=True)
class _Sample:
    anchor: Anchor
    group: tuple  # (device, runtime, processor, precision, threads, batch, machine): anchors that transfer
    log_latency: float
    features: np.ndarray  # roofline.features of its model on the hardware it ran on


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
                               math.log(a.latency_ms), features(anchor_ops(a), anchor_precision(profile, a), hw)))
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
    for start in (zero, np.array([1.0, 1.0, 2.0]), np.array([-1.0, -1.0, 2.0])):  # deterministic restarts
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


def _shape_fit(profile: DeviceProfile, processor: str) -> Optional[ShapeFit]:
    return ShapeFit(profile, processor) if processor in PROCESSOR_CLASSES else None


def precision_of(anchor: Anchor) -> str:
    """The edgebench precision an anchor's label computes in ("fp32-model (fp16 compute ...)" -> fp16)."""
    text = anchor.precision
    if text.startswith("int8"):
        return "int8"
    return "fp16" if text.startswith("fp16") or "fp16 compute" in text else "fp32"


# Runtimes whose FP32 convolutions and matmuls run on the Tensor Cores in TF32 by default: TensorRT
# (BuilderFlag::kTF32, "Enabled by default", NVIDIA/TensorRT include/NvInfer.h) and ORT on a GPU,
# which edgebench and the anchors' sources run through its TensorRT EP (see EQUIVALENT_RUNTIMES).
TF32_RUNTIMES = ("tensorrt", "onnxruntime")


def compute_precision(precision: str, processor: Optional[Processor], runtime: str) -> str:
    """The precision the roofline models: FP32 on a GPU whose profile states a TF32 peak, under a
    runtime that uses TF32 by default, computes at the TF32 rate (bytes stay 4 per element)."""
    if (precision == "fp32" and processor is not None and "tf32" in processor.peak_gflops
            and runtime in TF32_RUNTIMES):
        return "tf32"
    return precision


def anchor_precision(profile: DeviceProfile, anchor: Anchor) -> str:
    return compute_precision(precision_of(anchor), profile.processors.get(anchor.processor),  # type: ignore[call-overload]
                             anchor.runtime)


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


def comparable(a: Anchor, b: Anchor) -> bool:
    """b can stand in for a: same runtime, processor, precision and threads, on the same machine (a
    profile may cite figures of more than one machine of its class: `device_detail` tells them
    apart); a different model."""
    return (a.model != b.model and (a.runtime, a.processor, a.precision, a.threads, a.batch, a.device_detail)
            == (b.runtime, b.processor, b.precision, b.threads, b.batch, b.device_detail))


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
            fits[a.processor] = _shape_fit(profile, a.processor) if fitted else None
        fit = fits[a.processor]
        coef = fit.coef(exclude=a) if fit is not None else PRIOR
        precision = anchor_precision(profile, a)
        tb = predict(coef, anchor_ops(b), precision, hw)
        return predict(coef, anchor_ops(a), precision, hw) / tb if tb > 0 else None
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
        """The roofline factors: the shape fitted on every anchor of the class but `exclude`."""
        return self.shape.coef(exclude) if self.shape is not None else PRIOR

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
                                         "per_op_dispatch": round(math.exp(theta[2]), 3)},
                "fitted_on": len(self.shape.samples),
                "how": "fitted to the ratios between published anchors of every device of this processor class "
                       "(edgebench/estimate/anchors.py fit_shape); each held-out anchor is predicted with the "
                       "shape fitted without it"}


def check(profile: DeviceProfile, runtime: str, processor: str, precision: str) -> AnchorCheck:
    """The comparable anchors, each predicted from the others with the same roofline ratio, whose
    shape is fitted without the anchor predicted (leave-one-anchor-out, nested)."""
    anchors = comparable_anchors(profile, runtime, processor, precision)
    proc = profile.processors.get(processor)  # type: ignore[call-overload]
    found = AnchorCheck(anchors, processor_hardware(profile, processor), compute_precision(precision, proc, runtime),
                        _shape_fit(profile, processor) if anchors else None)
    if found.usable:
        for a in found.anchors:
            peers = [b for b in found.anchors if b.model != a.model]
            predicted = found._transfer(anchor_ops(a), peers, exclude=a)
            if predicted is not None:
                found.rows.append(_row(profile, a, peers, predicted))
    found.summary = summarize_errors(found.rows)
    return found
