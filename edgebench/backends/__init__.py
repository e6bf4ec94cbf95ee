"""Runtimes edgebench can time. Each registers here; plugins register through the
`edgebench.backends` entry-point group."""
from __future__ import annotations

from edgebench.backends.base import Availability, Placement, Runner
from edgebench.backends.litert_runner import LiteRtRunner
from edgebench.backends.onnxruntime_runner import OnnxRuntimeRunner
from edgebench.backends.openvino_runner import OpenVinoRunner
from edgebench.backends.tensorrt_runner import TensorRtRunner
from edgebench.backends.torch_runner import TorchCompileRunner, TorchRunner
from edgebench.core.registry import Registry

BACKENDS: Registry[type[Runner]] = Registry("runtime", "edgebench.backends")
BACKENDS.add("pytorch", TorchRunner, aliases=("torch",))
BACKENDS.add("onnxruntime", OnnxRuntimeRunner, aliases=("ort",))
BACKENDS.add("openvino", OpenVinoRunner, aliases=("ov",))
BACKENDS.add("tensorrt", TensorRtRunner, aliases=("trt",))
BACKENDS.add("litert", LiteRtRunner, aliases=("tflite", "tensorflow-lite"))
BACKENDS.add("torch-compile", TorchCompileRunner, aliases=("torch.compile", "inductor"))

_availability_cache: dict[str, Availability] = {}


def availability(name: str) -> Availability:
    if name not in _availability_cache:
        runner = BACKENDS.get(name)
        try:
            _availability_cache[name] = runner.availability()
        except Exception as e:  # noqa: BLE001 - a broken install must show up as unavailable, not crash the CLI
            _availability_cache[name] = Availability(False, reason=f"{type(e).__name__}: {e}",
                                                     install=f"pip install '{runner.extra}'" if runner.extra else None)
    return _availability_cache[name]


def create_runner(name: str) -> Runner:
    return BACKENDS.get(name)()


__all__ = ["BACKENDS", "Availability", "Placement", "Runner", "availability", "create_runner"]
