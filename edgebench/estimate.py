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

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from .cache import cache_dir
from .onnx_cost import BYTES_PER_ELEMENT, GROUPS, graph_costs

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


# ----------------------------------------------------------------------------------------------
# hardware of the host and of a target profile

def host_hardware() -> Hardware:
    from .calibrate import host_hardware as measured
    from .devices import cpu_flags

    figures = measured()
    peaks = dict(figures["peak_gflops"])
    if "int8" not in peaks:  # no usable int8 GEMM micro-benchmark: the ISA's nominal ratio to fp32
        vnni = {"avx512_vnni", "avx_vnni", "amx_int8", "asimddp"} & cpu_flags()
        peaks["int8"] = peaks["fp32"] * (4.0 if vnni else 2.0)
    return Hardware(peaks, figures["memory_bandwidth_gbs"], 1.0)


def target_hardware(processor, processor_name: str, host: Hardware, host_cores: int) -> Optional[Hardware]:
    if not processor.peak_gflops or not processor.memory_bandwidth_gbs:
        return None
    peaks = {p: v * ACHIEVABLE_COMPUTE for p, v in processor.peak_gflops.items()}
    if processor_name == "cpu":
        # Per-op dispatch runs on one core: scale by single-core compute.
        host_core = host.peak("fp32") / max(1, host_cores)
        target_core = peaks.get("fp32", host_core) / max(1, processor.cores or 1)
        scale = host_core / target_core if target_core else 1.0
    else:
        scale = 1.0  # accelerator launch overhead assumed like host dispatch: not validated
    return Hardware(peaks, processor.memory_bandwidth_gbs * ACHIEVABLE_BANDWIDTH, scale)


# ----------------------------------------------------------------------------------------------
# calibration points: cached benchmark points, this run, other runs of the target device

def load_cached_points() -> tuple[list[Point], dict]:
    points = []
    path = cache_dir() / POINTS_FILE
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                points.append(Point(**json.loads(line)))
            except (json.JSONDecodeError, TypeError):
                continue
    validation = {}
    vpath = cache_dir() / VALIDATION_FILE
    if vpath.is_file():
        try:
            validation = json.loads(vpath.read_text())
        except json.JSONDecodeError:
            pass
    return points, validation


def save_cached_points(points: list[Point], validation: dict) -> Path:
    path = cache_dir() / POINTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(p.to_dict()) + "\n" for p in points))
    (cache_dir() / VALIDATION_FILE).write_text(json.dumps(validation, indent=2))
    return path


def run_points(run_dir: Path, device: str, hw: Hardware, model_label: str) -> list[Point]:
    """Measured points of `device` in a run folder (the host's in this run, or a target's elsewhere)."""
    from .store import RunStore

    store = RunStore(run_dir)
    cands = {c.id: c for c in store.candidates()}
    points = []
    for m in store.measurements():
        c = cands.get(m.candidate)
        if not (m.ok and m.source == "measured" and m.device == device and c and "onnx" in c.artifacts
                and m.latency and m.batch_size == 1):
            continue
        path = Path(run_dir) / c.artifacts["onnx"]
        if not path.is_file():
            continue
        points.append(Point(f"{model_label}/{m.candidate}", m.backend, m.precision, m.median_ms, ops_of(path),
                            hw.__dict__, device))
    return points


def other_runs_of(runs_dir: Path, device: str, skip: Path, hw: Hardware) -> list[Point]:
    points = []
    for run in sorted(Path(runs_dir).glob("*/measurements.jsonl")):
        if run.parent.resolve() != Path(skip).resolve():
            points += run_points(run.parent, device, hw, run.parent.name)
    return points


# ----------------------------------------------------------------------------------------------
# the estimate stage of `compare`

PROXY_RUNTIMES = ("openvino", "onnxruntime", "pytorch")
# fp16 is modelled from fp32, not from a CPU's bf16: a CPU's bf16 speed says nothing about a GPU's fp16.
PROXY_PRECISIONS = {"fp16": ("fp16", "fp32"), "bf16": ("bf16", "fp32"), "fp32": ("fp32",), "int8": ("int8",)}


def target_precisions(info, runtime: str, processor_name: str, processor) -> list[str]:
    from .backends import BACKENDS

    runner = BACKENDS.get(runtime)
    supported = [p for p in processor.precisions if p in runner.precisions]
    if info.precision == "int8":
        return ["int8"] if "int8" in supported else []
    floats = [p for p in ("fp32", "fp16", "bf16") if p in supported]
    if runtime == "onnxruntime" or (runtime == "pytorch" and processor_name == "cpu"):
        floats = [p for p in floats if p == "fp32"]  # these run the artifact as exported
    return floats


@dataclass
class _Calibration:
    points: list[Point]
    validation: dict
    coefs: dict = field(default_factory=dict)

    def coef(self, runtime: str, precision: str) -> tuple[np.ndarray, str]:
        key = (runtime, precision)
        if key not in self.coefs:
            for label, chosen in ((f"{runtime}/{precision}", [p for p in self.points
                                                              if (p.runtime, p.precision) == key]),
                                  (f"all runtimes/{precision}", [p for p in self.points if p.precision == precision]),
                                  ("all points", self.points)):
                if len({p.model for p in chosen}) >= 3:
                    self.coefs[key] = (fit(chosen), f"fitted on {len(chosen)} points ({label})")
                    break
            else:
                self.coefs[key] = (PRIOR.copy(), "prior factors (fewer than 3 models measured)")
        return self.coefs[key]

    def error_pct(self, runtime: str, precision: str) -> tuple[float, str]:
        v = self.validation.get(f"{runtime}/{precision}") or self.validation.get("all")
        if v and v.get("n"):
            return v["p90_abs_pct"], (f"90th percentile of |error| in leave-one-model-out validation on this machine "
                                      f"({v['n']} points, {100 * v['within_10pct']:.0f}% within +-10%; "
                                      f"benchmarks/estimator.py)")
        errors = leave_one_model_out([p for p in self.points if (p.runtime, p.precision) == (runtime, precision)]) \
            if len({p.model for p in self.points if (p.runtime, p.precision) == (runtime, precision)}) >= 4 else []
        if errors:
            s = error_summary(errors)
            return s["p90_abs_pct"], f"leave-one-model-out over this run's {s['n']} host points"
        return UNCALIBRATED_ERROR_PCT, "not validated: run benchmarks/estimator.py to measure the estimator's error"


def add_estimates(store, infos, asked, host_device: str, run_dir: Path, runs_dir: Path, note=lambda s: None) -> int:
    """Append estimated Measurements for `asked` next to the host's measured ones; returns how many
    changed. Estimates are recomputed every run (they depend on everything measured so far)."""
    from .backends import BACKENDS
    from .devices import physical_cores
    from .types import Measurement, measurement_key

    host = host_hardware()
    cached, validation = load_cached_points()
    points = cached + run_points(run_dir, host_device, host, run_dir.name)
    measured = [m for m in store.measurements() if m.ok and m.source == "measured" and m.device == host_device]
    existing = {m.key: m for m in store.measurements() if m.source == "estimated"}
    calib = _Calibration(points, validation)
    skipped_runtimes = set()
    changed = 0
    for processor_name, processor in asked.processors.items():
        hw = target_hardware(processor, processor_name, host, physical_cores())
        if hw is None:
            note(f"no estimate for {asked.name} {processor_name}: its profile states no peak compute or bandwidth")
            continue
        target_points = other_runs_of(runs_dir, asked.name, run_dir, hw)
        for runtime in processor.runtimes:
            if runtime not in BACKENDS:
                skipped_runtimes.add(runtime)
                continue
            for info in infos:
                if "onnx" not in info.artifacts:
                    continue
                costs = graph_costs(Path(run_dir) / info.artifacts["onnx"])
                ops = [[GROUPS.index(op.group), op.flops, op.bytes_moved] for op in costs]
                for precision in target_precisions(info, runtime, processor_name, processor):
                    ref = _reference(measured, info.id, runtime, precision)
                    if ref is None:
                        continue
                    m = _estimate_one(info, runtime, processor_name, precision, asked, ref, costs, ops, host, hw, calib,
                                      target_points, Measurement, measurement_key)
                    old = existing.get(m.key)
                    if old and old.latency and abs(old.median_ms - m.median_ms) <= 1e-9 * max(1.0, m.median_ms) \
                            and old.accuracy == m.accuracy:
                        continue
                    store.append(m)
                    changed += 1
    for runtime in sorted(skipped_runtimes):
        note(f"no estimate for runtime '{runtime}' on {asked.name}: edgebench has no runner for it")
    return changed


def _reference(measured, candidate: str, runtime: str, precision: str):
    """The host measurement to scale: same candidate, the same runtime if measured here, else a proxy."""
    for rt in (runtime,) + tuple(r for r in PROXY_RUNTIMES if r != runtime):
        for prec in PROXY_PRECISIONS.get(precision, (precision,)):
            for m in measured:
                if (m.candidate, m.backend, m.precision, m.processor) == (candidate, rt, prec, "cpu"):
                    return m
    return None


def _estimate_one(info, runtime, processor_name, precision, asked, ref, costs, ops, host, hw, calib, target_points,
                  Measurement, measurement_key):
    coef, fitted = calib.coef(ref.backend, ref.precision)
    host_pred = predict(coef, ops, ref.precision, host)
    target_pred = predict(coef, ops, precision, hw)
    estimate = ref.median_ms * target_pred / host_pred
    error_pct, basis = calib.error_pct(ref.backend, ref.precision)
    if ref.backend != runtime or ref.precision != precision:
        basis += f"; {runtime} {precision} is modelled from this machine's {ref.backend} {ref.precision}"
    cross = "not validated: no measurements of this device are available to edgebench"
    own = [p for p in target_points if (p.runtime, p.precision) == (runtime, precision)]
    if own:
        errs = [predict(coef, p.ops, p.precision, hw) / p.latency_ms - 1 for p in own]
        cross = f"on {len(own)} earlier measurements of this device: " + json.dumps(error_summary(errs))
    shares = op_times(ops, precision, hw, coef)
    shares = shares * (estimate * 1000 / shares.sum()) if shares.sum() > 0 else shares
    layers = sorted(({"layer": op.name, "op_type": op.op_type, "precision": precision, "time_us": float(t),
                      "estimated": True} for op, t in zip(costs, shares)), key=lambda r: -r["time_us"])[:60]
    err = error_pct / 100  # the band is symmetric in ratio (x/ (1+err)), so it never reaches zero
    latency = {"median_ms": estimate, "mean_ms": estimate, "p90_ms": estimate, "p99_ms": estimate, "std_ms": 0.0,
               "min_ms": estimate, "ci_low_ms": estimate / (1 + err), "ci_high_ms": estimate * (1 + err),
               "confidence": 0.9, "iterations": 0, "warmup_iterations": 0, "total_s": 0.0, "stop_reason": "estimated"}
    return Measurement(
        key=measurement_key(info.id, runtime, processor_name, precision, asked.name), candidate=info.id,
        backend=runtime, processor=processor_name, precision=precision, device=asked.name, source="estimated",
        status="ok", executed_precision=precision, latency=latency, accuracy=ref.accuracy,
        measured_on=f"estimated from {ref.measured_on}", estimate_error_pct=round(error_pct, 1),
        layers=tuple(layers), timestamp=time.time(),
        extra={"estimate": {"method": "additive per-op roofline, scaled from this machine's measurement",
                            "reference": ref.key, "reference_median_ms": ref.median_ms, "factors": fitted,
                            "error_basis": basis, "cross_device_error": cross,
                            "accuracy_from": ref.key,
                            "target_peak_gflops": hw.peak_gflops, "target_bandwidth_gbs": hw.memory_bandwidth_gbs}})
