"""OpenVINO on CPU, GPU or NPU, with the latency hint and an explicit inference precision.

OpenVINO's CPU plugin runs an "FP32" model in bf16 on CPUs with AMX or AVX512-BF16 unless told
otherwise, so the precision asked for is always set as INFERENCE_PRECISION_HINT and the one the
compiled model reports is recorded.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from edgebench.backends.base import Availability, InFlight, Placement, Runner, unavailable
from edgebench.core.errors import IncompatibleError

OV_DEVICE = {"cpu": "CPU", "gpu": "GPU", "npu": "NPU"}
OV_PRECISION = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}


class OpenVinoRunner(Runner):
    name = "openvino"
    formats = ("openvino", "onnx")
    devices = ("cpu", "gpu", "npu")
    precisions = ("fp32", "bf16", "fp16", "int8")
    reduced_float_precisions = ("bf16", "fp16")  # INFERENCE_PRECISION_HINT: what the plugin picks by itself on AMX CPUs
    extra = "edgebench[openvino]"

    @classmethod
    def availability(cls) -> Availability:
        try:
            import openvino as ov
        except ImportError as e:
            return unavailable(f"openvino is not importable: {e}", cls.extra)
        core = ov.Core()
        present = set(d.split(".")[0] for d in core.available_devices)
        processors = tuple(p for p, d in OV_DEVICE.items() if d in present)
        return Availability(True, version=ov.get_version(), processors=processors, precisions=cls.precisions)

    def load(self, artifact: Path, placement: Placement) -> None:
        import openvino as ov
        import openvino.properties as props
        import openvino.properties.hint as hints

        self.placement = placement
        core = ov.Core()
        device = OV_DEVICE[placement.processor]
        if device not in {d.split(".")[0] for d in core.available_devices}:
            raise IncompatibleError(f"openvino: no {device} device on this machine (found {', '.join(core.available_devices)})")
        model = core.read_model(str(artifact))
        reshape_dynamic(model, placement.options.get("input_shapes") or {}, placement.batch_size)
        mode = placement.options.get("hint", "latency")
        config = {hints.performance_mode: hints.PerformanceMode.THROUGHPUT if mode == "throughput"
                  else hints.PerformanceMode.LATENCY}
        if placement.precision in OV_PRECISION:
            config[hints.inference_precision] = OV_PRECISION[placement.precision]
        if placement.threads and device == "CPU":
            config[props.inference_num_threads] = placement.threads
        if placement.options.get("perf_counters"):
            config[props.enable_profiling] = True
        self.compiled = core.compile_model(model, device, config)
        self.request = self.compiled.create_infer_request()
        self._outputs = len(self.compiled.outputs)
        precision = self.compiled.get_property(hints.inference_precision)
        self._executed = precision.to_string() if hasattr(precision, "to_string") else str(precision)
        self._artifact, self._config, self._device = model, config, device
        self._core = core
        self._ov = ov

    def infer(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        # Bind the arrays without a copy and run infer() without inputs: the dict form also builds
        # a results dict on every call, which cost ~5% on a sub-millisecond model.
        # Re-bind only for a new feed: the timing loop passes the same feed every iteration, and
        # wrapping it in new Tensors each call is overhead an application that reuses buffers avoids.
        if inputs is not getattr(self, "_bound", None):
            self._bound = inputs
            for name, array in inputs.items():
                self.request.set_tensor(name, self._ov.Tensor(np.ascontiguousarray(array), shared_memory=True))
        self.request.infer()
        return [self.request.get_output_tensor(i).data.copy() for i in range(self._outputs)]

    def throughput_streams(self) -> InFlight:
        """An AsyncInferQueue of as many requests as the compiled model asks for
        (OPTIMAL_NUMBER_OF_INFER_REQUESTS), as benchmark_app -hint throughput runs it."""
        import openvino.properties as props

        if self.placement.options.get("hint") != "throughput":
            raise IncompatibleError("openvino: throughput mode needs the model compiled with the THROUGHPUT hint")
        count = int(self.compiled.get_property(props.optimal_number_of_infer_requests))
        return _AsyncQueue(self._ov.AsyncInferQueue(self.compiled, count), count, self._ov.Tensor)

    def runtime_latency_ms(self) -> Optional[float]:
        return float(self.request.latency)  # InferRequest.latency: ms of the last infer(), as benchmark_app counts

    def executed_precision(self) -> str:
        executed = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}.get(self._executed.lower(), self._executed)
        if self.placement.precision == "int8":
            return f"int8+{executed}"  # quantized ops in int8, the rest in the plugin's float precision
        return executed

    def extra_metrics(self, inputs: dict[str, np.ndarray]) -> dict:
        """The settings a figure depends on, read back from the compiled model."""
        import openvino.properties as props
        import openvino.properties.hint as hints

        def read(prop):
            try:
                value = self.compiled.get_property(prop)
                return value.name if hasattr(value, "name") else str(value)
            except RuntimeError:
                return None

        return {"device": self._device, "performance_hint": read(hints.performance_mode),
                "inference_precision": self._executed, "num_streams": read(props.num_streams),
                "inference_num_threads": read(props.inference_num_threads),
                "optimal_infer_requests": read(props.optimal_number_of_infer_requests)}

    def close(self) -> None:
        self.request = None
        self.compiled = None

    def layer_profile(self, inputs: dict[str, np.ndarray], iterations: int = 20) -> list[dict]:
        """OpenVINO performance counters: per executed node, its kernel (which names the precision)."""
        import openvino.properties as props

        config = dict(self._config)
        config[props.enable_profiling] = True
        request = self._core.compile_model(self._artifact, self._device, config).create_infer_request()
        totals: dict[str, dict] = {}
        for _ in range(iterations):
            request.infer(inputs)
            for info in request.profiling_info:
                if info.status != info.Status.EXECUTED:
                    continue
                row = totals.setdefault(info.node_name, {
                    "layer": info.node_name, "op_type": info.node_type,
                    "precision": _precision_from_kernel(info.exec_type), "kernel": info.exec_type, "time_us": 0.0})
                row["time_us"] += info.real_time.total_seconds() * 1e6 / iterations
        return sorted(totals.values(), key=lambda r: -r["time_us"])


class _AsyncQueue(InFlight):
    """OpenVINO's AsyncInferQueue driven from this thread, without a Python completion callback:
    with one, destroying the queue or the compiled model could deadlock (the destructor joins
    OpenVINO's threads while holding the GIL that a callback's thread waits for; seen with
    openvino 2026.4, fixed upstream in openvinotoolkit/openvino#37073). Completions are seen
    through get_idle_request_id(), which waits with the GIL released and returns the request that
    finished; a completion is stamped when this thread sees it (microseconds late at most, when
    two finish together), and the last ones after wait_all()."""

    def __init__(self, queue, count: int, tensor):
        self.queue, self.count, self._tensor = queue, count, tensor
        self.idiom = f"AsyncInferQueue({count}), THROUGHPUT hint"

    def run(self, inputs, started, finished) -> None:
        pending: dict[int, object] = {}  # request id -> its token, while in flight
        more = True
        # Bind the feed to every request once, then start_async() without inputs: as benchmark_app
        # fills each request's tensors before its loop. Passing the dict on every start_async()
        # wraps new Tensors per request, Python work that competes with inference on a small CPU.
        for request in self.queue:
            for name, array in inputs.items():
                request.set_tensor(name, self._tensor(np.ascontiguousarray(array), shared_memory=True))
        try:
            while more:
                # Idle: never started, or just finished (then its completion is counted first, and
                # the wait for a free request is not part of the next request's latency).
                handle = self.queue.get_idle_request_id()
                if handle in pending:
                    more = finished(pending.pop(handle))
                    if not more:
                        break
                pending[handle] = started()
                self.queue.start_async()  # runs on the idle request just returned, with its bound feed
        finally:
            self.queue.wait_all()  # requests still in flight finish and are counted before we return or raise
            for token in pending.values():
                finished(token)


def reshape_dynamic(model, shapes: dict, batch_size: int = 1) -> None:
    """Fix a model's dynamic inputs: at `shapes` ({name: dims}) where given, else a dynamic
    leading dim at `batch_size` (and a static batch of 1 too, when `batch_size` is larger).
    Static shapes let the CPU plugin pick its fastest kernels."""
    new = {}
    for port in model.inputs:
        shape = port.get_partial_shape()
        if not shape.is_dynamic:
            # An IR converted at batch 1 from a model with a dynamic batch (edgebench's own export
            # does this; a fixed-batch ONNX is declined before it gets here): set the batch asked
            # for, as benchmark_app's -b does. A graph that cannot take it fails to reshape, loudly.
            if batch_size > 1 and shape.rank.get_length() > 0 and shape[0].get_length() == 1:
                shape[0] = batch_size
                new[port] = shape
            continue
        name = port.get_any_name()
        if name in shapes:
            new[port] = list(shapes[name])
        elif shape.rank.is_static and shape.rank.get_length() > 0 and shape[0].is_dynamic:
            shape[0] = batch_size
            new[port] = shape
    if new:
        model.reshape(new)


def _precision_from_kernel(exec_type: str) -> str:
    lowered = exec_type.lower()
    for tag, name in (("i8", "int8"), ("u8", "int8"), ("bf16", "bf16"), ("f16", "fp16"), ("f32", "fp32")):
        if lowered.endswith(tag) or f"_{tag}" in lowered:
            return name
    return "?"
