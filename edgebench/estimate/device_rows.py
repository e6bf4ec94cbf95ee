"""The estimate stage of `compare`: estimated rows for a device that is neither this machine nor
reachable.

Where the device's profile cites published measurements comparable to the row's runtime,
processor and precision (estimate/anchors.py), the latency transfers from them ("anchor
transfer") and the row states their leave-one-anchor-out error, or "unvalidated" with fewer than
two held-out predictions. Elsewhere this machine's measurement of the same candidate is scaled by
the roofline ("host-scaled roofline"), unvalidated unless earlier measurements of the device check
it. Either way the accuracy is this machine's measurement of the candidate, and no estimate is
below the device's physical lower bound (estimate/bounds.py)."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from edgebench.backends import BACKENDS
from edgebench.core.records import Measurement, measurement_key
from edgebench.devices.host import physical_cores
from edgebench.estimate.anchors import AnchorCheck, check, interval_error
from edgebench.estimate.bounds import processor_bound_ms
from edgebench.estimate.op_costs import GROUPS, graph_costs
from edgebench.estimate.points import host_hardware, load_cached_points, other_runs_of, run_points, target_hardware
from edgebench.estimate.roofline import (
    PRIOR,
    UNCALIBRATED_ERROR_PCT,
    Point,
    error_summary,
    fit,
    leave_one_model_out,
    op_times,
    predict,
)

# ----------------------------------------------------------------------------------------------
# the estimate stage of `compare`

UNVALIDATED_FACTOR = 3.0  # an unvalidated estimate is shown as estimate/3 .. estimate*3
PROXY_RUNTIMES = ("openvino", "onnxruntime", "pytorch")
# fp16 is modelled from fp32, not from a CPU's bf16: a CPU's bf16 speed says nothing about a GPU's fp16.
PROXY_PRECISIONS = {"fp16": ("fp16", "fp32"), "bf16": ("bf16", "fp32"), "fp32": ("fp32",), "int8": ("int8",)}


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
    host = host_hardware()
    cached, validation = load_cached_points()
    points = cached + run_points(run_dir, host_device, host, run_dir.name)
    # Estimates are of batch-1 single-stream latency: only such rows are scaled (offline and batched rows are not).
    measured = [m for m in store.measurements() if m.ok and m.source == "measured" and m.device == host_device
                and m.batch_size == 1 and m.scenario == "single-stream"]
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
        checks: dict[tuple[str, str], AnchorCheck] = {}
        for runtime in processor.runtimes:
            if runtime not in BACKENDS:
                skipped_runtimes.add(runtime)
                continue
            for info in infos:
                if "onnx" not in info.artifacts:
                    continue
                costs = graph_costs(Path(run_dir) / info.artifacts["onnx"])
                ops = [[GROUPS.index(op.group), op.flops, op.bytes_moved] for op in costs]
                # The same plan as the measurements': the runner says what it would run.
                for precision in BACKENDS.get(runtime).plan_precisions(info.precision, processor.precisions):
                    ref = _reference(measured, info.id, runtime, precision)
                    if ref is None:
                        continue
                    if (runtime, precision) not in checks:
                        checks[runtime, precision] = check(asked, runtime, processor_name, precision)
                    m = _estimate_one(info, runtime, processor_name, precision, asked, ref, costs, ops, host, hw, calib,
                                      target_points, Measurement, measurement_key,
                                      anchored=checks[runtime, precision])
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
                  Measurement, measurement_key, anchored: Optional[AnchorCheck] = None):
    own = [p for p in target_points if (p.runtime, p.precision) == (runtime, precision)]
    processor = asked.processors[processor_name]
    if anchored is not None and anchored.usable:
        estimate, error_pct, shares, detail = _anchor_transfer(anchored, ops, precision, own)
        measured_on = (f"estimated from published measurements on {asked.name} "
                       f"({', '.join(sorted({a.model for a in anchored.anchors}))}); accuracy measured on "
                       f"{ref.measured_on}")
        contention = None  # the latency owes nothing to this machine's timing; only the accuracy is from here
    else:
        estimate, error_pct, shares, detail = _host_scaled(runtime, precision, ref, ops, host, hw, calib, own)
        measured_on = f"estimated from {ref.measured_on}"
        # an estimate scaled from a figure taken on a busy machine inherits its unreliability
        contention = ref.extra.get("contention")
    bound = processor_bound_ms(ops, precision, processor, runtime, processor_name)
    clamped = bound is not None and estimate < bound
    if clamped:
        estimate = bound
    floor = bound or 0.0
    shares = shares * (estimate * 1000 / shares.sum()) if shares.sum() > 0 else shares
    layers = sorted(({"layer": op.name, "op_type": op.op_type, "precision": precision, "time_us": float(t),
                      "estimated": True} for op, t in zip(costs, shares)), key=lambda r: -r["time_us"])[:60]
    # Validated: the band is the error seen on held-out figures of this device, symmetric in ratio.
    # Unvalidated: a wide band, and no error figure.
    spread = 1 + error_pct / 100 if error_pct is not None else UNVALIDATED_FACTOR
    low, high = max(floor, estimate / spread), estimate * spread
    validated = error_pct is not None
    latency = {"median_ms": estimate, "mean_ms": None, "p90_ms": None, "p99_ms": None, "std_ms": None,
               "min_ms": None, "ci_low_ms": low, "ci_high_ms": high,
               "interval": "validated" if validated else "unvalidated", "confidence": 0.9 if validated else None,
               "iterations": 0, "warmup_iterations": 0, "total_s": 0.0, "stop_reason": "estimated"}
    detail.update(physical_lower_bound_ms=bound, raised_to_lower_bound=clamped, accuracy_from=ref.key)
    return Measurement(
        key=measurement_key(info.id, runtime, processor_name, precision, asked.name), candidate=info.id,
        backend=runtime, processor=processor_name, precision=precision, device=asked.name, source="estimated",
        status="ok", executed_precision=precision, latency=latency, accuracy=ref.accuracy, measured_on=measured_on,
        estimate_error_pct=round(error_pct, 1) if error_pct is not None else None,
        layers=tuple(layers), timestamp=time.time(), extra={"estimate": detail, "contention": contention})


def _anchor_transfer(anchored: AnchorCheck, ops, precision, own):
    """Latency from the device's comparable published anchors; error from their leave-one-anchor-out."""
    estimate = anchored.predict(ops)
    s = anchored.summary
    error = anchored.error
    basis = (f"90th percentile of |log(predicted/published)| over {s['n']} leave-one-anchor-out predictions of this "
             f"device's comparable published measurements ({100 * s['within_25pct']:.0f}% within +-25%)"
             if error is not None else
             f"unvalidated: {len(anchored.anchors)} comparable published measurement(s) give "
             f"{s['n']} leave-one-anchor-out prediction(s), fewer than 2")
    if own:  # earlier measurements of this very device check the transfer directly: they win
        checked = interval_error([anchored.predict(p.ops) / p.latency_ms - 1 for p in own])
        if checked is not None:
            error, basis = checked, f"90th percentile of |log error| on {len(own)} earlier measurements of this device"
    hw = anchored.hardware
    assert hw is not None  # usable
    shares = op_times(ops, anchored.precision, hw, anchored.coef())
    detail = {"method": "anchor transfer",
              "how": "geometric mean over the anchors of published latency x (candidate / reference model), the "
                     "ratio from the additive roofline on the device's derated peaks, its factors the prior's "
                     "times a shape fitted to the published anchors of this processor class",
              "roofline_shape": anchored.describe_shape(),
              "anchors": anchored.describe(),
              "leave_one_anchor_out": {**s, "predictions": [{k: r[k] for k in ("model", "published_ms", "predicted_ms",
                                                                               "error", "from")}
                                                            for r in anchored.rows]},
              "error_basis": basis, "target_peak_gflops": hw.peak_gflops,
              "target_bandwidth_gbs": hw.memory_bandwidth_gbs}
    return estimate, (100 * error if error is not None else None), shares, detail


def _host_scaled(runtime, precision, ref, ops, host, hw, calib, own):
    """This machine's measurement of the candidate x roofline(target) / roofline(here)."""
    coef, fitted = calib.coef(ref.backend, ref.precision)
    host_pred = predict(coef, ops, ref.precision, host)
    target_pred = predict(coef, ops, precision, hw)
    estimate = ref.median_ms * target_pred / host_pred
    host_error_pct, basis = calib.error_pct(ref.backend, ref.precision)
    if ref.backend != runtime or ref.precision != precision:
        basis += f"; {runtime} {precision} is modelled from this machine's {ref.backend} {ref.precision}"
    cross, error_pct = None, None
    if own:  # earlier measurements of this very device: the only error figure that is about it
        errs = [predict(coef, p.ops, p.precision, hw) / p.latency_ms - 1 for p in own]
        summary = error_summary(errs)
        cross = f"on {len(own)} earlier measurements of this device: " + json.dumps(summary)
        error_pct = summary["p90_abs_pct"]
    shares = op_times(ops, precision, hw, coef)
    detail = {"method": "host-scaled roofline",
              "how": "additive per-op roofline, scaled from this machine's measurement of the same candidate",
              "anchors": [], "why_not_anchored": f"no comparable published measurement of the device with {runtime} "
                                                 f"at {precision} (edgebench/estimate/anchors.py)",
              "reference": ref.key, "reference_median_ms": ref.median_ms, "factors": fitted,
              "host_error_pct": round(host_error_pct, 1), "host_error_basis": basis,
              "cross_device_error": cross or "unvalidated: no measurement of this device checks it",
              "error_basis": cross or "unvalidated: no measurement of this device checks it",
              "target_peak_gflops": hw.peak_gflops, "target_bandwidth_gbs": hw.memory_bandwidth_gbs}
    return estimate, error_pct, shares, detail
