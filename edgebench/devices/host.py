"""What this machine is, read from the operating system: CPU model and flags, cores, GPU name.

Device detection (`DeviceProfile.matches_this_machine`), the environment fingerprint and the gate
all read these, so there is one place that knows where Linux keeps them.
"""
from __future__ import annotations

import ctypes
import os
import platform
import sys
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
    if not gpu_driver_present():
        return "GPU"
    try:
        import torch
    except ImportError:
        return "GPU"
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return "GPU"


def gpu_driver_present() -> bool:
    """Whether torch could see a GPU here. On Linux, CUDA needs the driver's libcuda.so.1 (never in
    a wheel) and ROCm the kernel's /dev/kfd; without either, torch (seconds to import) is not asked,
    so device detection on a CPU machine stays quick. Elsewhere torch is asked."""
    if not sys.platform.startswith("linux") or Path("/dev/kfd").exists():
        return True
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def host_description() -> str:
    return f"this machine: {cpu_model()}, {physical_cores()} cores, {platform.system()} {platform.machine()}"


# x86 features that give ONNX Runtime's integer GEMM a 32-bit-accumulating u8 x s8 dot product.
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
# x86 features whose u8 x s8 kernels (pmaddubsw) add two products into a saturating 16-bit lane.
PAIRWISE_16BIT_FLAGS = frozenset({"sse4_1", "avx2", "avx512bw"})
X86_MACHINES = frozenset({"x86_64", "amd64", "i386", "i686"})


def u8s8_saturates(isa: set[str], machine: str) -> bool:
    """Whether ONNX Runtime's U8S8 INT8 kernels can saturate on a CPU with these /proc/cpuinfo
    flags: x86 with SSE4.1/AVX2/AVX-512 but no VNNI, where two uint8 x int8 products are summed in
    16 bits (ORT's quantization docs: use 7-bit weights, reduce_range, or U8U8 there). ARM's dot
    products and VNNI accumulate in 32 bits and do not."""
    return machine.lower() in X86_MACHINES and bool(isa & PAIRWISE_16BIT_FLAGS) and not isa & VNNI_FLAGS


def host_u8s8_saturates() -> bool:
    return u8s8_saturates(cpu_flags(), platform.machine())
