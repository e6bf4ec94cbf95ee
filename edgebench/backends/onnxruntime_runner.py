"""ONNX Runtime with the execution provider chosen for the processor."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

from edgebench.backends.base import Availability, InFlight, Placement, Runner, ThreadStreams, split_threads, unavailable
from edgebench.core.errors import IncompatibleError

PROVIDERS_FOR = {
    "cpu": ["CPUExecutionProvider"],
    "gpu": ["TensorrtExecutionProvider", "CUDAExecutionProvider"],
    "npu": ["OpenVINOExecutionProvider", "QNNExecutionProvider"],
}


class OnnxRuntimeRunner(Runner):
    name = "onnxruntime"
    formats = ("onnx",)
    devices = ("cpu", "gpu", "npu")
    precisions = ("fp32", "fp16", "int8")
    extra = "edgebench[onnxruntime]"

    @classmethod
    def availability(cls) -> Availability:
        try:
            import onnxruntime as ort
        except ImportError as e:
            return unavailable(f"onnxruntime is not importable: {e}", cls.extra)
        have = set(ort.get_available_providers())
        processors = tuple(p for p, wanted in PROVIDERS_FOR.items() if have & set(wanted))
        return Availability(True, version=ort.__version__, processors=processors, precisions=cls.precisions)

    def load(self, artifact: Path, placement: Placement) -> None:
        import onnxruntime as ort

        self.placement = placement
        have = ort.get_available_providers()
        # A device profile may name its providers (e.g. TensorRT then CUDA on a Jetson GPU).
        wanted = placement.options.get("providers") or PROVIDERS_FOR[placement.processor]
        providers = [p for p in wanted if p in have]
        if not providers:
            raise IncompatibleError(
                f"onnxruntime has no execution provider for {placement.processor} here (installed: {', '.join(have)})")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Throughput mode runs `streams` concurrent session.run calls: each gets its share of the threads.
        self._streams = int(placement.options.get("streams") or 1)
        threads = split_threads(placement.threads, self._streams)
        if threads:
            options.intra_op_num_threads = threads
        self._precise_u8u8 = asks_for_precise_u8u8(Path(artifact))
        if self._precise_u8u8:
            # ORT applies it only on x86 without VNNI, and only to weights outside [-64, 63].
            options.add_session_config_entry("session.x64quantprecision", "1")
        self._options_for_profile = (str(artifact), providers, threads)
        if placement.processor == "gpu" and hasattr(ort, "preload_dlls"):
            # onnxruntime-gpu finds CUDA and cuDNN from pip's nvidia-* packages (or a compatible
            # torch) only when asked; without them its CUDA provider fails to load.
            ort.preload_dlls()
        self.session = ort.InferenceSession(str(artifact), sess_options=options, providers=_with_cpu_fallback(providers))
        self.providers = self.session.get_providers()
        if placement.processor != "cpu" and self.providers[0] == "CPUExecutionProvider":
            # ORT lists a provider as available even when its libraries fail to load, and then
            # runs the session on the CPU with only a logged warning: never time that as the GPU.
            raise IncompatibleError(f"onnxruntime: {', '.join(providers)} failed to load here (missing CUDA, cuDNN "
                                    f"or TensorRT libraries?), so the session fell back to the CPU")
        self._executed = graph_precision(Path(artifact))
        self._binding = self.session.io_binding()
        self._bound: Optional[dict] = None
        self._bound_values: list = []

    def infer(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        # IO binding (ORT's own idiom for repeated runs): the feed becomes OrtValues once, on the
        # device of the session's first provider, so a timed call is run_with_iobinding plus the
        # copy of the outputs back to numpy, without session.run's per-call dict-to-OrtValue
        # conversion. Re-bound only for a new feed object (the Runner contract allows it).
        if inputs is not self._bound:
            self._bound_values = bind(self.session, self._binding, inputs, _device_of(self.providers))
            self._bound = inputs
        self.session.run_with_iobinding(self._binding)
        return self._binding.copy_outputs_to_cpu()

    def executed_precision(self) -> Optional[str]:
        return self._executed

    def throughput_streams(self) -> InFlight:
        """N threads each calling run() on the one session: ORT releases the GIL inside run() and a
        session is safe to run concurrently, so this is how a server keeps several requests in flight."""
        session = self.session
        calls = [lambda feed: session.run(None, feed) for _ in range(self._streams)]
        threads = split_threads(self.placement.threads, self._streams)
        return ThreadStreams(calls, f"{self._streams} threads on one session, {threads or 'default'} intra-op threads each")

    def extra_metrics(self, inputs: dict[str, np.ndarray]) -> dict:
        extra = {"providers": list(self.providers), "graph_optimization": "ORT_ENABLE_ALL",
                 "intra_op_threads": split_threads(self.placement.threads, self._streams)}
        if self._precise_u8u8:
            extra["x64quantprecision"] = True
        return extra

    def close(self) -> None:
        self.session = None
        self._binding = None
        self._bound = None
        self._bound_values = []

    def layer_profile(self, inputs: dict[str, np.ndarray], iterations: int = 20) -> list[dict]:
        """Per-op-type time from ORT's own profiler (a separate session, so timing is undisturbed)."""
        return summarise_ort_trace(self._profiled_trace(inputs, iterations, warmup=0), iterations)

    def profiled_latency_ms(self, inputs: dict[str, np.ndarray], iterations: int) -> list[float]:
        """ORT's own duration of each Run: the profiler's "model_run" event (microseconds, measured
        inside InferenceSession::Run). ORT keeps no other clock of its own, and its profiler records
        every node as well, which slows Run (about x3 on mobilenet_v3_small at 64x64 on one thread;
        microsoft/onnxruntime#20238), so this comes from a separate profiled session after the
        timed calls, never from them."""
        trace = self._profiled_trace(inputs, iterations, warmup=3)
        runs = [e["dur"] / 1e3 for e in trace if e.get("cat") == "Session" and e.get("name") == "model_run"]
        return runs[-iterations:]

    def _profiled_trace(self, inputs: dict[str, np.ndarray], iterations: int, warmup: int) -> list[dict]:
        import onnxruntime as ort

        path, providers, threads = self._options_for_profile
        options = ort.SessionOptions()
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(tempfile.mkdtemp(prefix="eb-ortprof-"), "ort")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        if self._precise_u8u8:
            options.add_session_config_entry("session.x64quantprecision", "1")
        session = ort.InferenceSession(path, sess_options=options, providers=_with_cpu_fallback(providers))
        binding = session.io_binding()
        values = bind(session, binding, inputs, _device_of(session.get_providers()))  # noqa: F841 - kept alive
        for _ in range(warmup + iterations):
            session.run_with_iobinding(binding)
        trace = session.end_profiling()
        try:
            with open(trace) as f:
                return json.load(f)
        finally:
            shutil.rmtree(os.path.dirname(trace), ignore_errors=True)


def bind(session, binding, inputs: dict[str, np.ndarray], device: str) -> list:
    """Bind `inputs` as OrtValues on `device` and every output to be allocated there by ORT (shapes
    may depend on the input), as ORT's IO binding guide does for repeated runs. Returns the
    OrtValues, which the caller keeps for as long as the binding is used: a CPU OrtValue borrows
    its numpy array's memory, and only the Python OrtValue holds a reference to that array."""
    import onnxruntime as ort

    binding.clear_binding_inputs()
    binding.clear_binding_outputs()
    values = []
    for name, array in inputs.items():
        value = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array), device, 0)
        binding.bind_ortvalue_input(name, value)
        values.append(value)
    for output in session.get_outputs():
        binding.bind_output(output.name, device)
    return values


def _device_of(providers: list[str]) -> str:
    """The OrtValue device of the session's first provider: CUDA and TensorRT keep tensors on the
    GPU; every other provider here takes CPU memory."""
    return "cuda" if providers and providers[0] in ("CUDAExecutionProvider", "TensorrtExecutionProvider") else "cpu"


INTEGER_OPS = ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger",
               "QGemm", "DynamicQuantizeLinear")


def graph_precision(path: Path) -> str:
    """What the graph computes in, read from the model ONNX Runtime loaded: ORT runs an artifact
    as written (no precision hint), so its ops and weights say it. 'int8+fp32' for a quantized
    graph (integer kernels where Q/DQ pairs allow, float elsewhere)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    floats = {t.data_type for t in graph.initializer} | {i.type.tensor_type.elem_type for i in graph.input}
    float_name = "fp16" if onnx.TensorProto.FLOAT16 in floats and onnx.TensorProto.FLOAT not in floats else "fp32"
    if any(node.op_type in INTEGER_OPS for node in graph.node):
        return f"int8+{float_name}"
    return float_name


def asks_for_precise_u8u8(path: Path) -> bool:
    """An INT8 artifact edgebench built with full-range weights for another device (ptq's
    `Int8Choice`) asks to be run with ORT's exact U8U8 kernels where its U8S8 ones would saturate,
    so that this machine's figures are not those of a saturation the target does not have."""
    import onnx

    props = onnx.load(str(path), load_external_data=False).metadata_props
    return any(p.key == "edgebench.ort.x64quantprecision" and p.value == "1" for p in props)


def _with_cpu_fallback(providers: list[str]) -> list[str]:
    return providers if "CPUExecutionProvider" in providers else providers + ["CPUExecutionProvider"]


def summarise_ort_trace(events: list[dict], iterations: int) -> list[dict]:
    by_node: dict[str, dict] = {}
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        args = e.get("args", {})
        name = e["name"][: -len("_kernel_time")]
        row = by_node.setdefault(name, {"layer": name, "op_type": args.get("op_name", "?"),
                                        "precision": _ort_precision(args), "time_us": 0.0})
        row["time_us"] += e.get("dur", 0) / max(1, iterations)
    return sorted(by_node.values(), key=lambda r: -r["time_us"])


def _ort_precision(args: dict) -> str:
    op = args.get("op_name", "")
    if op.startswith(("QLinear", "ConvInteger", "MatMulInteger", "QGemm", "DynamicQuantize")) or op in (
            "QuantizeLinear", "DequantizeLinear"):
        return "int8"
    types = json.dumps(args.get("input_type_shape", ""))
    return "fp16" if "float16" in types else "int8" if "int8" in types else "fp32"
