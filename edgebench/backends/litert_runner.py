"""LiteRT (formerly TensorFlow Lite) through the `ai-edge-litert` interpreter, the runtime most
Raspberry Pi and Android deployments use.

The XNNPACK delegate is applied by the interpreter by default (its AUTO op resolver) with the
thread count given; the runner states how many graph nodes it took over, so a row never claims
XNNPACK where the delegate did not apply. A full-integer INT8 model has int8 input and output
tensors: the runner quantizes the float image with the input's scale and zero point, and
dequantizes the output, as a deployed application would.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np

from edgebench.backends.base import Availability, InFlight, Placement, Runner, ThreadStreams, split_threads, unavailable

INTEGER_TYPES = (np.int8, np.uint8, np.int16)


class LiteRtRunner(Runner):
    name = "litert"
    formats = ("tflite",)
    devices = ("cpu",)
    precisions = ("fp32", "int8")
    extra = "edgebench[litert]"

    @classmethod
    def availability(cls) -> Availability:
        try:
            from ai_edge_litert import interpreter  # noqa: F401 - importable is what is asked
        except ImportError as e:
            return unavailable(f"ai-edge-litert is not importable: {e}", cls.extra)
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("ai-edge-litert")
        except PackageNotFoundError:
            v = None
        return Availability(True, version=v, processors=("cpu",), precisions=cls.precisions)

    def load(self, artifact: Path, placement: Placement) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.placement = placement
        self._artifact = artifact
        self.interpreter = Interpreter(model_path=str(artifact), num_threads=placement.threads)
        self.interpreter.allocate_tensors()
        self.inputs = self.interpreter.get_input_details()
        self.outputs = self.interpreter.get_output_details()
        self.input_names = [d["name"] for d in self.inputs]

    def infer(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Named inputs in, outputs in model order. The converter names a .tflite's inputs itself
        (serving_default_args_0): an input not found by name is fed the first array given."""
        for detail in self.inputs:
            x = inputs[detail["name"]] if detail["name"] in inputs else inputs[next(iter(inputs))]
            if tuple(x.shape) != tuple(detail["shape"]):
                self.interpreter.resize_tensor_input(detail["index"], list(x.shape))
                self.interpreter.allocate_tensors()
                self.inputs = self.interpreter.get_input_details()
                self.outputs = self.interpreter.get_output_details()
                detail = next(d for d in self.inputs if d["index"] == detail["index"])
            self.interpreter.set_tensor(detail["index"], _quantize(x, detail))
        self.interpreter.invoke()
        return [_dequantize(self.interpreter.get_tensor(d["index"]), d) for d in self.outputs]

    def throughput_streams(self) -> InFlight:
        """One interpreter per stream (an interpreter is not safe to invoke from two threads),
        each on its share of the threads; invoke() releases the GIL, so the streams overlap."""
        count = int(self.placement.options.get("streams") or 2)
        threads = split_threads(self.placement.threads, count)
        streams = []
        for _ in range(count):
            one = LiteRtRunner()
            one.load(self._artifact, replace(self.placement, threads=threads))
            streams.append(one)
        self._stream_runners = streams
        return ThreadStreams([s.infer for s in streams], f"{count} interpreters, {threads or 'default'} threads each")

    def executed_precision(self) -> Optional[str]:
        """Read back from the loaded model's tensor types: 'int8' when inputs, outputs and the
        weights are integer (full-integer), 'int8+fp32' when float tensors remain, else the float type."""
        types = {np.dtype(t["dtype"]) for t in self.interpreter.get_tensor_details()}
        io_types = {np.dtype(d["dtype"]) for d in self.inputs + self.outputs}
        integer = any(t in types for t in map(np.dtype, INTEGER_TYPES))
        float_name = "fp16" if np.dtype(np.float16) in types and np.dtype(np.float32) not in types else "fp32"
        if integer:
            floats = np.dtype(np.float32) in types or np.dtype(np.float16) in types
            return "int8" if not floats and io_types <= set(map(np.dtype, INTEGER_TYPES)) else f"int8+{float_name}"
        return float_name

    def extra_metrics(self, inputs) -> dict:
        nodes = self._ops()
        delegated = sum(1 for op in nodes or () if op.get("op_name") == "DELEGATE")
        delegate = "unknown" if nodes is None else "XNNPACK" if delegated else "none"
        return {"delegate": delegate, "delegate_partitions": delegated,
                "graph_nodes": len(nodes or ()), "threads": self.placement.threads,
                "input_types": [np.dtype(d["dtype"]).name for d in self.inputs]}

    def layer_profile(self, inputs, iterations: int = 20) -> list[dict]:
        return []  # the Python interpreter exposes no per-op timer

    def close(self) -> None:
        for stream in getattr(self, "_stream_runners", []):
            stream.close()
        self._stream_runners = []
        self.interpreter = None

    def _ops(self) -> Optional[list]:
        # A private accessor, the only one the Python API has for the executed graph; without it
        # the delegate is reported as unknown rather than guessed.
        get = getattr(self.interpreter, "_get_ops_details", None)
        return list(get()) if get else None


def _quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if dtype in map(np.dtype, INTEGER_TYPES) and not np.issubdtype(x.dtype, np.integer):
        scale, zero = detail["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)
    return np.ascontiguousarray(x, dtype=dtype)


def _dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if dtype in map(np.dtype, INTEGER_TYPES):
        scale, zero = detail["quantization"]
        return (y.astype(np.float32) - zero) * scale
    return y
