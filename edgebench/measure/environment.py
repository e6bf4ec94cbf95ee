"""Environment fingerprint stored with every run: what a latency figure depends on besides the model."""
from __future__ import annotations

import os
import platform
import socket
from importlib.metadata import PackageNotFoundError, version
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
        "versions": {p: _version(p) for p in ("edgebench", "torch", "onnxruntime", "openvino", "nncf", "tensorrt")
                     if _version(p)},
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
