"""Environment fingerprint stored with every run: what a latency figure depends on besides the model."""
from __future__ import annotations

import importlib.util
import os
import platform
import socket
from functools import cache
from importlib.metadata import PackageNotFoundError, distribution, packages_distributions, version
from pathlib import Path

from edgebench.devices.host import cpu_model, physical_cores


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


@cache
def module_version(module: str) -> str | None:
    """The version of the distribution whose copy of `module` Python imports. A runtime comes under
    several names (onnxruntime, onnxruntime-gpu, NVIDIA's JetPack builds) and two can be installed
    at once, one shadowing the other: the version of the name alone can be the wrong one, or none.
    A distribution other than the module's namesake is named beside its version."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin:
        return _version(module)
    origin = Path(spec.origin).resolve()
    if _provides(module, module, origin):  # the usual case, without scanning every distribution
        return _version(module)
    for name in packages_distributions().get(module, []):
        if _provides(name, module, origin):
            return f"{version(name)} ({name})"
    return _version(module)


def _provides(dist_name: str, module: str, origin: Path) -> bool:
    try:
        dist = distribution(dist_name)
    except PackageNotFoundError:
        return False
    return Path(str(dist.locate_file(f"{module}/__init__.py"))).resolve() == origin


def fingerprint() -> dict:

    freq_khz = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_max_freq")
    return {
        "hostname": socket.gethostname(),
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": physical_cores(),
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "max_freq_mhz": int(freq_khz) // 1000 if freq_khz and freq_khz.isdigit() else None,
        "jetson_power_mode": _read("/etc/nvpmodel.conf") and _read("/var/lib/nvpmodel/status"),
        "python": platform.python_version(),
        "versions": {p: v for p in ("edgebench", "torch", "onnxruntime", "openvino", "nncf", "tensorrt")
                     if (v := module_version(p))},
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
