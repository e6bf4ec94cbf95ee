"""Runtimes edgebench can time. Each registers here; plugins register through the
`edgebench.backends` entry-point group."""
from __future__ import annotations

from ..registry import Registry
from .base import Availability, Placement, Runner
from .onnxruntime_runner import OnnxRuntimeRunner
from .openvino_runner import OpenVinoRunner
from .tensorrt_runner import TensorRtRunner
from .torch_runner import TorchCompileRunner, TorchRunner

BACKENDS: Registry[type[Runner]] = Registry("runtime", "edgebench.backends")
BACKENDS.add("pytorch", TorchRunner, aliases=("torch",))
BACKENDS.add("onnxruntime", OnnxRuntimeRunner, aliases=("ort",))
BACKENDS.add("openvino", OpenVinoRunner, aliases=("ov",))
BACKENDS.add("tensorrt", TensorRtRunner, aliases=("trt",))
BACKENDS.add("torch-compile", TorchCompileRunner, aliases=("torch.compile", "inductor"))

_availability_cache: dict[str, Availability] = {}


def availability(name: str) -> Availability:
    if name not in _availability_cache:
        runner = BACKENDS.get(name)
        try:
            _availability_cache[name] = runner.availability()
        except Exception as e:  # a broken install must show up as unavailable, not crash the CLI
            _availability_cache[name] = Availability(False, reason=f"{type(e).__name__}: {e}",
                                                     install=f"pip install '{runner.extra}'" if runner.extra else None)
    return _availability_cache[name]


def create_runner(name: str) -> Runner:
    return BACKENDS.get(name)()


__all__ = ["BACKENDS", "Availability", "Placement", "Runner", "availability", "create_runner"]
