"""Device profiles: what a target device has, how to recognise it, and which one this machine is.

Profiles are YAML files in `device_profiles/` (shipped) and in any folder named by
$EDGEBENCH_PROFILES or `--profiles`. They are parsed with yaml.safe_load and validated with
pydantic, so a malformed profile is reported with the field that is wrong.
"""
from __future__ import annotations

import os
import platform
import re
import sys
from functools import cache
from pathlib import Path
from typing import Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgebench.core.errors import CorruptInputError, NotFoundError, closest
from edgebench.devices.host import cpu_model, gpu_name


class Processor(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    peak_gflops: dict[str, float] = Field(default_factory=dict)  # per precision: fp32, fp16, int8 (GOPS)
    memory_bandwidth_gbs: Optional[float] = None
    runtimes: list[str]
    precisions: list[Literal["fp32", "bf16", "fp16", "int8"]]
    cores: Optional[int] = None
    # The clock its cores sustain under an inference (GHz, the datasheet's): a CPU's per-operator
    # dispatch cost is cycles on one core, so it scales with 1 / clock (estimate/anchor_hardware.py).
    clock_ghz: Optional[float] = None
    # The memory bandwidth one core can sustain on its own (GB/s, on the same datasheet footing as
    # memory_bandwidth_gbs): a core keeps only so many cache-line misses in flight, so a run on a few
    # of many cores gets min(memory_bandwidth_gbs, threads x this), not the whole socket's
    # (estimate/anchor_hardware.py device_hardware). None: not stated, no per-core limit.
    core_bandwidth_gbs: Optional[float] = None
    dla_cores: int = 0
    # The architecture (platform.machine(): x86_64, aarch64) and the /proc/cpuinfo flags that decide
    # which INT8 kernels the runtimes pick (avx2, avx512_vnni, asimddp, ...); empty: not stated.
    isa: list[str] = Field(default_factory=list)


class Anchor(BaseModel):
    """A published measurement of a reference model on the device: what estimates are anchored in
    and validated against. `latency_ms` is per inference at `batch` (the source's statistic, p90
    for MLPerf SingleStream); `throughput_ips` at a batch > 1 is never turned into a latency."""
    model_config = ConfigDict(extra="forbid")
    model: str  # reference model: resnet50, mobilenet_v2, mobilenet_v3_large, yolo11n, ...
    input: list[Union[int, str]] = Field(default_factory=list)  # N x C x H x W as the source ran it
    runtime: str  # onnxruntime, tensorrt, openvino, pytorch, litert, or one edgebench has no runner for
    edgebench_runtime: bool = True  # False: ncnn and the like, hardware anchors only
    processor: str  # cpu, gpu, npu, or what the source says (gpu+2xdla)
    precision: str
    batch: Union[int, str] = 1
    scenario: Optional[str] = None  # MLPerf: SingleStream | Offline
    threads: Optional[int] = None
    latency_ms: Optional[float] = None
    latency_ms_mean: Optional[float] = None
    throughput_ips: Optional[float] = None
    reliability: Literal["A", "B", "C"]
    source: str
    device_detail: Optional[str] = None
    note: Optional[str] = None
    use: bool = True  # False: an anomaly kept for the record, never used as an anchor

    @property
    def input_size(self) -> Optional[int]:
        return self.input[-1] if self.input and isinstance(self.input[-1], int) else None

    @property
    def usable_latency(self) -> bool:
        """A batch-1 latency that may anchor an estimate."""
        return self.use and self.latency_ms is not None and self.batch == 1


class Detect(BaseModel):
    """How to recognise the device locally; any rule that matches is enough."""
    model_config = ConfigDict(extra="forbid")
    always: bool = False  # the `host` profile: this machine, whatever it is
    file_contains: dict[str, str] = Field(default_factory=dict)  # path -> substring
    cpu_model_regex: Optional[str] = None
    machine: Optional[str] = None  # platform.machine(), e.g. aarch64
    gpu_name_regex: Optional[str] = None  # name of CUDA device 0, e.g. "A100"


class DeviceProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    aliases: list[str] = Field(default_factory=list)
    description: str
    processors: dict[Literal["cpu", "gpu", "npu"], Processor]
    threads: Optional[int] = None
    power_modes: list[str] = Field(default_factory=list)
    detect: Detect = Field(default_factory=Detect)
    reach: Literal["local", "ray"] = "local"
    sources: list[str] = Field(default_factory=list)
    anchors: list[Anchor] = Field(default_factory=list)
    path: Optional[str] = None

    def matches_this_machine(self) -> bool:
        d = self.detect
        if d.always:
            return True
        for path, needle in d.file_contains.items():
            try:
                if needle in Path(path).read_text(errors="replace"):
                    return True
            except OSError:
                pass
        if d.cpu_model_regex and re.search(d.cpu_model_regex, cpu_model()):
            return True
        if d.gpu_name_regex and re.search(d.gpu_name_regex, gpu_name()):
            return True
        return bool(d.machine and d.machine == platform.machine() and not (d.file_contains or d.cpu_model_regex))


def profile_dirs() -> list[Path]:
    dirs = []
    for extra in os.environ.get("EDGEBENCH_PROFILES", "").split(os.pathsep):
        if extra:
            dirs.append(Path(extra))
    user = Path.home() / ".config" / "edgebench" / "device_profiles"  # where `devices calibrate` writes
    if user.is_dir():
        dirs.append(user)
    repo = Path(__file__).resolve().parents[2] / "device_profiles"
    installed = Path(sys.prefix) / "share" / "edgebench" / "device_profiles"
    dirs += [d for d in (repo, installed) if d.is_dir()]
    return dirs


def load_profile_file(path: Path) -> DeviceProfile:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise CorruptInputError(f"device profile '{path}' is not valid YAML: {str(e).splitlines()[0]}") from None
    except OSError as e:
        raise NotFoundError(f"cannot read device profile '{path}': {e.strerror}") from None
    if not isinstance(data, dict):
        raise CorruptInputError(f"device profile '{path}' must be a mapping of fields, got {type(data).__name__}")
    try:
        profile = DeviceProfile(**data, path=str(path)) if "path" not in data else DeviceProfile(**data)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise CorruptInputError(f"device profile '{path}': field '{field}': {err['msg']}") from None
    except TypeError as e:
        raise CorruptInputError(f"device profile '{path}': {e}") from None
    return profile


@cache
def _load_all(dirs: tuple[Path, ...]) -> dict[str, DeviceProfile]:
    profiles: dict[str, DeviceProfile] = {}
    for d in dirs:
        for f in sorted(d.glob("*.y*ml")):
            p = load_profile_file(f)
            profiles.setdefault(p.name, p)  # earlier dirs (the user's) win over shipped ones
    return profiles


def all_profiles() -> dict[str, DeviceProfile]:
    return _load_all(tuple(profile_dirs()))


def get_profile(name: str) -> DeviceProfile:
    """The profile named (or aliased) `name`, or a YAML file's. `host` comes back as written: the
    runtimes this machine has are filled in by `edgebench.backends.host.device_profile`."""
    if name.endswith((".yaml", ".yml")) and Path(name).exists():
        return load_profile_file(Path(name))
    profiles = all_profiles()
    for p in profiles.values():
        if name == p.name or name in p.aliases:
            return p
    names = list(profiles) + [a for p in profiles.values() for a in p.aliases]
    raise NotFoundError(f"unknown device '{name}'{closest(name, names)}; `edgebench devices` lists them")


def detected_profile() -> Optional[DeviceProfile]:
    """The most specific shipped or user profile whose `detect` rule recognises this machine."""
    for p in all_profiles().values():
        if p.name != "host" and not p.detect.always and p.matches_this_machine():
            return p
    return None
