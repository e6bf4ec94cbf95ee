"""The hardware an estimate is evaluated for (this machine's measured peaks, a target's derated
published ones) and the measured points the roofline factors are fitted on."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from edgebench.core.cache import cache_dir
from edgebench.core.store import RunStore
from edgebench.devices.host import cpu_flags
from edgebench.estimate.calibrate import host_hardware as measured
from edgebench.estimate.roofline import (
    ACHIEVABLE_BANDWIDTH,
    ACHIEVABLE_COMPUTE,
    POINTS_FILE,
    VALIDATION_FILE,
    Hardware,
    Point,
    ops_of,
)

# ----------------------------------------------------------------------------------------------
# hardware of the host and of a target profile

def host_hardware() -> Hardware:

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
    store = RunStore(run_dir)
    cands = {c.id: c for c in store.candidates()}
    points = []
    for m in store.measurements():
        c = cands.get(m.candidate)
        if not (m.ok and m.source == "measured" and m.device == device and c and "onnx" in c.artifacts
                and m.latency and m.batch_size == 1 and m.scenario == "single-stream"):
            continue
        path = Path(run_dir) / c.artifacts["onnx"]
        if not path.is_file():
            continue
        points.append(Point(f"{model_label}/{m.candidate}", m.backend, m.precision, m.latency["median_ms"], ops_of(path),
                            hw.__dict__, device))
    return points


def other_runs_of(runs_dir: Path, device: str, skip: Path, hw: Hardware) -> list[Point]:
    points = []
    for run in sorted(Path(runs_dir).glob("*/measurements.jsonl")):
        if run.parent.resolve() != Path(skip).resolve():
            points += run_points(run.parent, device, hw, run.parent.name)
    return points

