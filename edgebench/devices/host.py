"""What this machine is, read from the operating system: CPU model and flags, cores, GPU name.

Device detection (`DeviceProfile.matches_this_machine`), the environment fingerprint and the gate
all read these, so there is one place that knows where Linux keeps them.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model", "Hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def physical_cores() -> int:
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def gpu_name() -> str:
    """Name of CUDA device 0 where torch with CUDA is installed, else "GPU"."""
    try:
        import torch
    except ImportError:
        return "GPU"
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return "GPU"


def host_description() -> str:
    return f"this machine: {cpu_model()}, {physical_cores()} cores, {platform.system()} {platform.machine()}"
