"""Published measurements as the ground truth of device estimates.

Each device profile cites latencies of reference models measured on the device itself (its
`anchors`). An estimate for a candidate transfers from the anchors of the same runtime, processor,
precision and thread count: the geometric mean over them of anchor latency x (candidate /
reference model), the ratio from the roofline on the device's own derated peaks (`roofline_time`;
the reference models' operator costs are shipped in reference_ops.json, estimate/reference.py).

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
from edgebench.estimate.reference import key, reference_ops
from edgebench.estimate.roofline import ACHIEVABLE_BANDWIDTH, ACHIEVABLE_COMPUTE, PRIOR, Hardware, predict

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


def device_hardware(processor: Processor) -> Optional[Hardware]:
    """The processor's datasheet peaks derated to achievable, with no host in the picture: the same
    anchors must give the same estimate and error on every machine that runs `compare`."""
    if not processor.peak_gflops or not processor.memory_bandwidth_gbs:
        return None
    return Hardware({p: v * ACHIEVABLE_COMPUTE for p, v in processor.peak_gflops.items()},
                    processor.memory_bandwidth_gbs * ACHIEVABLE_BANDWIDTH, 1.0)


def roofline_time(processor: Processor, precision: str) -> Optional[Callable[[list], float]]:
    """Modelled time of a graph's ops ([group, flops, elements] per op) on the processor."""
    hw = device_hardware(processor)
    if hw is None:
        return None
    return lambda ops: predict(PRIOR, ops, precision, hw)


def precision_of(anchor: Anchor) -> str:
    """The edgebench precision an anchor's label computes in ("fp32-model (fp16 compute ...)" -> fp16)."""
    text = anchor.precision
    return "int8" if text.startswith("int8") else "fp16" if "fp16" in text and not text.startswith("fp32") else "fp32"


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
    """b can stand in for a: same runtime, processor, precision and threads; a different model."""
    return (a.model != b.model and (a.runtime, a.processor, a.precision, a.threads, a.batch)
            == (b.runtime, b.processor, b.precision, b.threads, b.batch))


def roofline_ratio(profile: DeviceProfile) -> Ratio:
    """ratio(a, b) = modelled time of a's reference model / b's, on a's processor and precision."""
    def ratio(a: Anchor, b: Anchor) -> Optional[float]:
        proc = profile.processors.get(a.processor)  # type: ignore[call-overload]
        time_of = roofline_time(proc, precision_of(a)) if proc else None
        if time_of is None:
            return None
        tb = time_of(anchor_ops(b))
        return time_of(anchor_ops(a)) / tb if tb > 0 else None
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
    precision: str
    rows: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        return bool(self.anchors) and self.hardware is not None

    @property
    def error(self) -> Optional[float]:
        """The interval's relative half-width (see interval_error); None: unvalidated."""
        return interval_error([r["error"] for r in self.rows])

    def time_of(self, ops: list) -> float:
        assert self.hardware is not None, "no peaks: check `usable` first"
        return predict(PRIOR, ops, self.precision, self.hardware)

    def predict(self, ops: list) -> Optional[float]:
        """Anchor transfer for a graph's ops; None when no anchor is usable."""
        return self._transfer(ops, self.anchors) if self.usable else None

    def _transfer(self, ops: list, peers: list[Anchor]) -> Optional[float]:
        target = self.time_of(ops)

        def ratio_to(b: Anchor) -> Optional[float]:
            t = self.time_of(anchor_ops(b))
            return target / t if t > 0 else None
        return transfer(peers, ratio_to)

    def describe(self) -> list[dict]:
        return [{"model": a.model, "input_size": a.input_size, "runtime": a.runtime, "processor": a.processor,
                 "precision": a.precision, "latency_ms": a.latency_ms, "reliability": a.reliability,
                 "source": a.source} for a in self.anchors]


def check(profile: DeviceProfile, runtime: str, processor: str, precision: str) -> AnchorCheck:
    """The comparable anchors, each predicted from the others with the same roofline ratio."""
    proc = profile.processors.get(processor)  # type: ignore[call-overload]
    found = AnchorCheck(comparable_anchors(profile, runtime, processor, precision),
                        device_hardware(proc) if proc else None, precision)
    if found.usable:
        for a in found.anchors:
            peers = [b for b in found.anchors if b.model != a.model]
            predicted = found._transfer(anchor_ops(a), peers)
            if predicted is not None:
                found.rows.append(_row(profile, a, peers, predicted))
    found.summary = summarize_errors(found.rows)
    return found
