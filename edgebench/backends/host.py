"""The `host` device: this machine, with the runtimes installed here filled into its profile.

Profiles are data (`edgebench.devices`); which runtimes this machine can run is the backends'
knowledge, so the host profile is completed here, one layer up.
"""
from __future__ import annotations

import os
from typing import Any, Literal

from edgebench.backends import BACKENDS, availability
from edgebench.devices.host import cpu_flags, cpu_model, gpu_name, host_description, physical_cores
from edgebench.devices.profiles import DeviceProfile, Processor, all_profiles, detected_profile, get_profile


def _runtimes_on(processor: str) -> list[str]:
    """Every runtime that can target the processor, when some installed runtime sees it here (a CPU
    always): one that is not installed, or whose check failed, stays in the plan and becomes an
    "unavailable" row with its reason and the extra that brings it, rather than vanishing."""
    present = processor == "cpu" or any(availability(name).available and processor in availability(name).processors
                                        for name, _ in BACKENDS.items())
    return [name for name, runner in BACKENDS.items() if present and processor in runner.devices]


def host_profile() -> DeviceProfile:
    """The `host` profile with what this machine actually has filled in."""
    base = all_profiles().get("host")
    flags = cpu_flags()
    precisions: list[Literal["fp32", "bf16", "fp16", "int8"]] = ["fp32", "int8"]
    if {"avx512_bf16", "amx_bf16"} & flags or "bf16" in flags:
        precisions.insert(1, "bf16")
    processors = {"cpu": Processor(name=cpu_model(), runtimes=_runtimes_on("cpu"), precisions=precisions,
                                   cores=physical_cores(), peak_gflops={}, memory_bandwidth_gbs=None)}
    if gpu_runtimes := _runtimes_on("gpu"):
        processors["gpu"] = Processor(name=gpu_name(), runtimes=gpu_runtimes, precisions=["fp32", "fp16", "int8"])
    if npu_runtimes := _runtimes_on("npu"):
        processors["npu"] = Processor(name="NPU", runtimes=npu_runtimes, precisions=["fp16", "int8"])
    fields: dict[str, Any] = base.model_dump() if base else {"name": "host", "aliases": ["local"], "detect": {"always": True}}
    fields.update(description=host_description(), processors=processors, threads=fields.get("threads") or os.cpu_count())
    return DeviceProfile(**fields)


def device_profile(name: str) -> DeviceProfile:
    """`get_profile`, with `host` (or its aliases) completed for this machine."""
    profile = get_profile(name)
    return host_profile() if profile.name == "host" else profile


def local_device_name() -> str:
    """`local_device().name`, without completing the host profile: that asks every runtime whether
    it is installed (torch's import alone takes seconds), and the name does not depend on it."""
    found = detected_profile()
    return found.name if found else "host"


def local_device() -> DeviceProfile:
    """The most specific profile that recognises this machine (falls back to `host`)."""
    return detected_profile() or host_profile()
