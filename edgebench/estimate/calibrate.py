"""`edgebench devices calibrate`: what this machine's CPU achieves, measured with micro-benchmarks.

Two figures feed the latency estimator's roofline: achievable compute per precision (a large
matrix multiply through torch, i.e. oneDNN/MKL, on all physical cores) and achievable memory
bandwidth (a copy far larger than the caches). They are achievable figures, not the datasheet
peaks the shipped profiles cite, and the written profile says so. Each kernel runs for about a
second; timing goes through `timing.timed`, the only clock reader.
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Optional

import yaml

from edgebench.backends.host import host_profile
from edgebench.core.atomic import write_atomic
from edgebench.core.cache import cache_dir, content_key
from edgebench.core.errors import BusyMachineError
from edgebench.devices.host import cpu_flags, cpu_model, physical_cores
from edgebench.devices.profiles import _load_all, load_profile_file
from edgebench.measure.contention import LoadProbe, busy_reasons, sample_load
from edgebench.measure.timing import timed


def _best_seconds(fn, repeats: int) -> float:
    fn()  # first call pays allocation and kernel selection
    return min(timed(fn)[1] for _ in range(repeats))


def matmul_gflops(precision: str, n: int = 1024, repeats: int = 5) -> Optional[float]:
    """Achievable GFLOP/s (GOP/s for int8) of an n x n matrix multiply; None where torch has no kernel."""
    import torch

    if precision == "int8":
        a = torch.randint(-128, 127, (n, n), dtype=torch.int8)
        b = torch.randint(-128, 127, (n, n), dtype=torch.int8)
        if not hasattr(torch, "_int_mm"):
            return None
        fn = lambda: torch._int_mm(a, b)  # noqa: E731  (s8 x s8 -> s32, VNNI/AMX where present)
    else:
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        fn = lambda: torch.mm(a, b)  # noqa: E731
    try:
        seconds = _best_seconds(fn, repeats)
    except RuntimeError:
        return None
    return 2.0 * n ** 3 / seconds / 1e9


def copy_bandwidth_gbs(megabytes: int = 256, repeats: int = 5) -> float:
    """Achievable memory bandwidth: bytes read plus bytes written by a large tensor copy."""
    import torch

    src = torch.ones(megabytes * 2 ** 20 // 4, dtype=torch.float32)
    dst = torch.empty_like(src)
    seconds = _best_seconds(lambda: dst.copy_(src), repeats)
    return 2 * src.numel() * 4 / seconds / 1e9


PROBE_N = 256  # the size of the multiply that screens out emulated precisions
EMULATED_BELOW = 0.25  # of fp32's speed at that size: a native kernel is not this slow at any size
PROBE_REPEATS = 5  # the best of five: one call can land on a moment another process had the core


def _native_precisions(precisions) -> set[str]:
    """The precisions whose small multiply is not far slower than fp32's. An emulated kernel (bf16
    without AVX512-BF16 or AMX runs at ~1% of fp32) would take a minute at full size only to be
    dropped as slower than fp32. One thread: on a busy machine a small multiply split over threads
    waits on the scheduler, which would hide the difference."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fp32 = matmul_gflops("fp32", PROBE_N, repeats=PROBE_REPEATS) or 0.0
        return {p for p in precisions if (matmul_gflops(p, PROBE_N, repeats=PROBE_REPEATS) or 0.0) > fp32 * EMULATED_BELOW}
    finally:
        torch.set_num_threads(previous)


def measure_cpu(threads: Optional[int] = None, quick: bool = False) -> dict:
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads or physical_cores())
    try:
        n, megabytes = (512, 64) if quick else (1024, 256)
        peaks = {"fp32": matmul_gflops("fp32", n)}
        native = _native_precisions(("bf16", "fp16", "int8"))
        for p in ("bf16", "fp16", "int8"):
            peaks[p] = matmul_gflops(p, n) if p in native else None
        bandwidth = copy_bandwidth_gbs(megabytes)
    finally:
        torch.set_num_threads(previous)
    # A precision whose kernel is slower than fp32 is emulated, not native: not a peak worth stating.
    fp32 = peaks["fp32"] or 0.0
    peak = {p: round(v, 1) for p, v in peaks.items() if v and (p == "fp32" or v > fp32 * 1.1)}
    return {"peak_gflops": peak, "memory_bandwidth_gbs": round(bandwidth, 1), "threads": threads or physical_cores()}


def host_hardware() -> dict:
    """This machine's achievable CPU figures, measured once and cached per CPU model and core count."""
    key = content_key("cpu-calibration", cpu_model(), physical_cores(), os.cpu_count())
    path = cache_dir() / "calibration" / f"{key}.json"
    cached = None
    if path.is_file():
        try:
            cached = json.loads(path.read_text())
        except json.JSONDecodeError:
            pass
    # Figures taken on a busy machine are kept (so reruns estimate alike) until a quiet moment
    # allows measuring again.
    if cached is not None and (not cached.get("busy") or busy_reasons(sample_load(0.3))):
        return cached
    figures, reasons = measure_cpu_quietly()
    figures.update(cpu_model=cpu_model(), cores=physical_cores())
    if reasons:
        figures["busy"] = reasons
    write_atomic(path, json.dumps(figures, indent=2))
    return figures


def measure_cpu_quietly(quick: bool = False) -> tuple[dict, list[str]]:
    """`measure_cpu` with the load before and during it: (figures, reasons the machine was busy)."""
    reasons = [f"before: {r}" for r in busy_reasons(sample_load(0.5))]
    probe = LoadProbe()
    figures = measure_cpu(quick=quick)
    reasons += [f"during: {r}" for r in busy_reasons(probe.stop(), include_load=False)]
    return figures, reasons


def user_profile_dir() -> Path:
    first = next((p for p in os.environ.get("EDGEBENCH_PROFILES", "").split(os.pathsep) if p), None)
    return Path(first) if first else Path.home() / ".config" / "edgebench" / "device_profiles"


def write_profile(name: str, out: Optional[Path] = None, quick: bool = False, allow_busy: bool = False) -> tuple[Path, dict]:
    """Measure the local CPU and write (or update) the profile `name`; returns its path and figures.
    Refuses on a busy machine: a profile is reused for months, so a figure halved by another
    process's load would mislead every estimate made from it."""
    figures, reasons = measure_cpu_quietly(quick=quick)
    if reasons and not allow_busy:
        raise BusyMachineError("not writing a profile: the machine was busy while calibrating ("
                               + "; ".join(reasons) + "); rerun when it is quiet")
    path = Path(out) if out else user_profile_dir() / f"{name}.yaml"
    stamp = f"measured by `edgebench devices calibrate` on {time.strftime('%Y-%m-%d')}: achievable, not datasheet peak"
    if path.is_file():
        data = load_profile_file(path).model_dump(exclude={"path"})
    else:
        host = host_profile()
        data = host.model_dump(exclude={"path"})
        data.update(name=name, aliases=[], description=f"{cpu_model()}, {physical_cores()} cores (calibrated)",
                    detect={"cpu_model_regex": "^" + re.escape(cpu_model()) + "$"}, sources=[])
    cpu = data["processors"].setdefault("cpu", {"name": cpu_model(), "runtimes": ["onnxruntime"],
                                                "precisions": ["fp32"]})
    cpu.update(peak_gflops=figures["peak_gflops"], memory_bandwidth_gbs=figures["memory_bandwidth_gbs"],
               cores=physical_cores())
    flags = cpu_flags()
    data["sources"] = [s for s in data.get("sources", []) if "edgebench devices calibrate" not in s] + [
        f"{stamp}; CPU flags: {', '.join(sorted(f for f in flags if f.startswith(('avx', 'amx', 'fma', 'asimd'))))}"]
    data = {k: v for k, v in data.items() if v not in (None, [], {}) or k in ("name", "processors")}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    load_profile_file(path)  # what we wrote must load back

    _load_all.cache_clear()
    return path, figures
