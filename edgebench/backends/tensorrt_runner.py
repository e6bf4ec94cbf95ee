"""TensorRT 10: engines built from ONNX in FP32, FP16 or INT8, timed like trtexec.

- FP32 / FP16: the FP16 builder flag lets TensorRT pick FP16 kernels where faster.
- INT8 from a QDQ ONNX (edgebench's PTQ candidates): explicit quantization, scales come from the
  graph. INT8 from a plain ONNX: implicit quantization with an entropy calibrator fed from
  `placement.options["calibration"]` (an .npz with `x`); TensorRT 10 deprecates this path but
  still ships it, and Jetson DLA needs it.
- DLA: `placement.options["dla_core"]` builds for that DLA core with GPU fallback.
- `prepare` builds and serialises the engine (the worker times it as the engine build);
  `load` deserialises it and allocates pinned host and device buffers.
- `infer` copies host -> device, runs `execute_async_v3` on a CUDA stream, copies back, and
  waits for the stream: the end-to-end figure an application sees. `extra_metrics` separates GPU
  compute from the copies with CUDA events, as trtexec reports "GPU Compute Time" beside "H2D" and
  "D2H Latency"; `layer_profile` uses TensorRT's IProfiler and the engine inspector for the
  precision each fused layer runs in.

Needs an NVIDIA GPU, `tensorrt` and `cuda-python` (`pip install 'edgebench[tensorrt]'`).
"""
from __future__ import annotations

import ctypes
import json
from pathlib import Path
from typing import Optional

import numpy as np

from edgebench.backends.base import Availability, InFlight, Placement, Runner, ThreadStreams, unavailable
from edgebench.core.errors import CorruptInputError, IncompatibleError, RuntimeUnavailableError

WORKSPACE_BYTES = 1 << 30


def _cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        from cuda import cudart  # older cuda-python
    return cudart


def _check(result):
    """cuda-python returns (error, *values); raise on error, return the values."""
    err, *values = result if isinstance(result, tuple) else (result,)
    cudart = _cudart()
    if err != cudart.cudaError_t.cudaSuccess:
        name = cudart.cudaGetErrorName(err)[1]
        raise RuntimeError(f"CUDA error {name.decode() if isinstance(name, bytes) else name}")
    return values[0] if len(values) == 1 else tuple(values)


def _input_shape(name: str, dims, placement: Placement) -> tuple:
    """An input's shape for the optimisation profile and context: as measured when the task
    names it, else the engine's dims with a dynamic batch at the placement's batch size."""
    given = (placement.options.get("input_shapes") or {}).get(name)
    if given:
        return tuple(int(d) for d in given)
    return tuple(placement.batch_size if d < 0 else d for d in dims)


class _Buffer:
    """Pinned host memory (as trtexec uses) and its device twin."""

    def __init__(self, shape: tuple, dtype: np.dtype):
        cudart = _cudart()
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        self.nbytes = int(np.prod(self.shape)) * self.dtype.itemsize
        self.host_ptr = _check(cudart.cudaMallocHost(self.nbytes))
        pointer = ctypes.cast(self.host_ptr, ctypes.POINTER(np.ctypeslib.as_ctypes_type(self.dtype)))
        self.host = np.ctypeslib.as_array(pointer, (int(np.prod(self.shape)),)).reshape(self.shape)
        self.device = _check(cudart.cudaMalloc(self.nbytes))

    def free(self) -> None:
        cudart = _cudart()
        cudart.cudaFree(self.device)
        cudart.cudaFreeHost(self.host_ptr)


def _entropy_calibrator(trt, data: np.ndarray, cache: Path):
    """An IInt8EntropyCalibrator2 that feeds `data` one image at a time."""
    cudart = _cudart()

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.index = 0
            self.batch = np.ascontiguousarray(data[:1], dtype=np.float32)
            self.device = _check(cudart.cudaMalloc(self.batch.nbytes))

        def get_batch_size(self):
            return 1

        def get_batch(self, names):
            if self.index >= len(data):
                return None
            self.batch[...] = data[self.index:self.index + 1]
            self.index += 1
            _check(cudart.cudaMemcpy(self.device, self.batch.ctypes.data, self.batch.nbytes,
                                     cudart.cudaMemcpyKind.cudaMemcpyHostToDevice))
            return [int(self.device)]

        def read_calibration_cache(self):
            return cache.read_bytes() if cache.is_file() else None

        def write_calibration_cache(self, blob):
            cache.write_bytes(bytes(blob))

    return Calibrator()


class TensorRtRunner(Runner):
    name = "tensorrt"
    costly_start = True  # an engine build per load
    formats = ("onnx",)
    devices = ("gpu",)
    precisions = ("fp32", "fp16", "int8")
    reduced_float_precisions = ("fp16",)  # the builder's FP16 flag
    extra = "edgebench[tensorrt]"
    unverified = "written against the TensorRT 10 API; its gpu/tensorrt tests have not yet run on an NVIDIA GPU"

    @classmethod
    def availability(cls) -> Availability:
        try:
            import tensorrt as trt
        except ImportError as e:
            return unavailable(f"tensorrt is not importable ({e})", cls.extra)
        try:
            cudart = _cudart()
        except ImportError as e:
            return unavailable(f"cuda-python is not importable ({e})", cls.extra)
        err, count = cudart.cudaGetDeviceCount()
        if err != cudart.cudaError_t.cudaSuccess or count == 0:
            return Availability(False, version=trt.__version__, reason="no NVIDIA GPU is visible to CUDA",
                                install="needs an NVIDIA GPU and driver")
        return Availability(True, version=trt.__version__, processors=("gpu",), precisions=cls.precisions)

    # ---- build ------------------------------------------------------------------------------
    def prepare(self, artifact: Path, placement: Placement) -> None:
        """Parse the ONNX and build the serialized engine (timed by the worker as build_s)."""
        import tensorrt as trt

        if placement.processor != "gpu":
            raise IncompatibleError(f"tensorrt runs on the GPU (and its DLA cores), not on the {placement.processor}")
        if placement.precision not in self.precisions:
            raise IncompatibleError(f"tensorrt has no '{placement.precision}' precision (it has "
                                    f"{', '.join(self.precisions)})")
        if not self.availability().available:
            raise RuntimeUnavailableError(f"tensorrt: {self.availability().reason}")
        self.placement = placement
        self._logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(self._logger)
        network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse(Path(artifact).read_bytes()):
            errors = "; ".join(str(parser.get_error(i).desc()) for i in range(parser.num_errors))
            raise CorruptInputError(f"tensorrt cannot parse '{Path(artifact).name}': {errors[:300]}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # layer names and precisions for the report
        profile = builder.create_optimization_profile()
        for i in range(network.num_inputs):
            tensor = network.get_input(i)
            shape = _input_shape(tensor.name, tensor.shape, placement)
            profile.set_shape(tensor.name, shape, shape, shape)
        config.add_optimization_profile(profile)
        explicit_int8 = any(network.get_layer(i).type == trt.LayerType.QUANTIZE for i in range(network.num_layers))
        if placement.precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
        elif placement.precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)
            # Layers without an INT8 kernel fall back to FP16, as with trtexec --int8 --fp16.
            config.set_flag(trt.BuilderFlag.FP16)
            if not explicit_int8:
                calibration = placement.options.get("calibration")
                if not calibration:
                    raise IncompatibleError("tensorrt int8 from a float ONNX needs calibration data "
                                            "(options.calibration: an .npz with x); or quantize to QDQ ONNX first")
                data = np.load(calibration)["x"].astype(np.float32)
                self._calibrator = _entropy_calibrator(trt, data, Path(artifact).with_suffix(".trt-calib.cache"))
                config.int8_calibrator = self._calibrator
        dla_core = placement.options.get("dla_core")
        if dla_core is not None:
            if builder.num_DLA_cores <= int(dla_core):
                raise IncompatibleError(f"tensorrt: DLA core {dla_core} asked, this device has {builder.num_DLA_cores}")
            config.default_device_type = trt.DeviceType.DLA
            config.DLA_core = int(dla_core)
            config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise IncompatibleError(f"tensorrt could not build an engine for '{Path(artifact).name}' at "
                                    f"{placement.precision} (see the TensorRT log above)")
        self._plan: Optional[bytes] = bytes(plan)
        self._explicit_int8 = explicit_int8

    # ---- run --------------------------------------------------------------------------------
    def load(self, artifact: Path, placement: Placement) -> None:
        import tensorrt as trt

        if getattr(self, "_plan", None) is None:
            self.prepare(artifact, placement)
        self.placement = placement
        self._runtime = trt.Runtime(self._logger)
        if placement.options.get("dla_core") is not None:
            self._runtime.DLA_core = int(placement.options["dla_core"])
        self.engine = self._runtime.deserialize_cuda_engine(self._plan)
        self.context, self.stream, self.inputs, self.outputs, self.input_names = _bound_context(
            trt, self.engine, placement)
        self._streams: list[_ContextStream] = []

    def _enqueue(self, events=None) -> None:
        cudart = _cudart()
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        if events:
            _check(cudart.cudaEventRecord(events[0], self.stream))
        for buf in self.inputs:
            _check(cudart.cudaMemcpyAsync(buf.device, buf.host_ptr, buf.nbytes, h2d, self.stream))
        if events:
            _check(cudart.cudaEventRecord(events[1], self.stream))
        if not self.context.execute_async_v3(self.stream):
            raise RuntimeError("tensorrt: execute_async_v3 failed")
        if events:
            _check(cudart.cudaEventRecord(events[2], self.stream))
        for buf in self.outputs:
            _check(cudart.cudaMemcpyAsync(buf.host_ptr, buf.device, buf.nbytes, d2h, self.stream))
        if events:
            _check(cudart.cudaEventRecord(events[3], self.stream))
        _check(cudart.cudaStreamSynchronize(self.stream))

    def _stage(self, inputs: dict[str, np.ndarray]) -> None:
        """Copy a feed into the pinned input buffers, by I/O tensor name."""
        for name, buf in zip(self.input_names, self.inputs):
            array = inputs[name]
            if array.shape != buf.shape:
                raise IncompatibleError(f"tensorrt engine takes input '{name}' {buf.shape}, got {array.shape}")
            np.copyto(buf.host, array, casting="same_kind")

    def infer(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        self._stage(inputs)
        self._enqueue()
        return [buf.host.copy() for buf in self.outputs]

    def extra_metrics(self, inputs: dict[str, np.ndarray], iterations: int = 50) -> dict:
        """Median GPU compute and copy times from CUDA events, as trtexec separates them."""
        cudart = _cudart()
        self._stage(inputs)
        events = [_check(cudart.cudaEventCreate()) for _ in range(4)]
        h2d, compute, d2h = [], [], []
        try:
            for _ in range(iterations):
                self._enqueue(events)
                h2d.append(_check(cudart.cudaEventElapsedTime(events[0], events[1])))
                compute.append(_check(cudart.cudaEventElapsedTime(events[1], events[2])))
                d2h.append(_check(cudart.cudaEventElapsedTime(events[2], events[3])))
        finally:
            for e in events:
                cudart.cudaEventDestroy(e)
        return {"gpu_compute_ms": float(np.median(compute)), "h2d_ms": float(np.median(h2d)),
                "d2h_ms": float(np.median(d2h)), "device_timing": f"CUDA events, median of {iterations}",
                "explicit_int8": bool(getattr(self, "_explicit_int8", False)),
                "dla_core": self.placement.options.get("dla_core")}

    def layer_profile(self, inputs: dict[str, np.ndarray], iterations: int = 20) -> list[dict]:
        import tensorrt as trt

        class Profiler(trt.IProfiler):
            def __init__(self) -> None:
                trt.IProfiler.__init__(self)
                self.totals: dict[str, float] = {}

            def report_layer_time(self, layer_name, ms):
                self.totals[layer_name] = self.totals.get(layer_name, 0.0) + ms

        precisions = self._layer_precisions()
        profiler = Profiler()
        self.context.profiler = profiler
        self._stage(inputs)
        # The profiler stays attached: this breakdown runs after timing, just before close().
        for _ in range(iterations):
            self._enqueue()
        rows = [{"layer": name, "op_type": precisions.get(name, ("?", "?"))[0],
                 "precision": precisions.get(name, ("?", "?"))[1], "time_us": ms * 1000 / iterations}
                for name, ms in profiler.totals.items()]
        return sorted(rows, key=lambda r: -r["time_us"])

    def _layer_precisions(self) -> dict[str, tuple[str, str]]:
        import tensorrt as trt

        info = json.loads(self.engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON))
        found = {}
        for layer in info.get("Layers", []):
            if not isinstance(layer, dict):
                continue
            outputs = json.dumps(layer.get("Outputs", []))
            precision = next((p for tag, p in (("Int8", "int8"), ("Half", "fp16"), ("FP16", "fp16"),
                                                ("Float", "fp32"), ("FP32", "fp32")) if tag in outputs), "?")
            found[layer.get("Name", "?")] = (layer.get("LayerType", "?"), precision)
        return found

    def executed_precision(self) -> Optional[str]:
        """The precisions the engine's layers run in, from its inspector (e.g. 'int8+fp16' where
        layers without an INT8 kernel fall back), most reduced first."""
        found = {precision for _, precision in self._layer_precisions().values() if precision != "?"}
        ordered = [p for p in ("int8", "fp16", "fp32") if p in found]
        return "+".join(ordered) or None

    def throughput_streams(self) -> InFlight:
        """One execution context, CUDA stream and set of pinned buffers per request in flight, on
        the one engine (as trtexec --infStreams does); a Python thread drives each, and each waits
        only on its own stream. UNVERIFIED until the gpu tests run on an NVIDIA GPU."""
        import tensorrt as trt

        count = int(self.placement.options.get("streams") or 2)
        self._streams = [_ContextStream(*_bound_context(trt, self.engine, self.placement)) for _ in range(count)]
        return ThreadStreams([s.infer for s in self._streams],
                             f"{count} execution contexts, a CUDA stream each, one engine")

    def close(self) -> None:
        cudart = _cudart()
        for extra in getattr(self, "_streams", []):
            extra.free()
        self._streams = []
        for buf in getattr(self, "inputs", []) + getattr(self, "outputs", []):
            buf.free()
        if getattr(self, "stream", None) is not None:
            cudart.cudaStreamDestroy(self.stream)
        self.inputs, self.outputs, self.stream = [], [], None
        self.context = self.engine = self._plan = None


def _bound_context(trt, engine, placement: Placement):
    """A new execution context on `engine` with its own CUDA stream and pinned I/O buffers:
    (context, stream, inputs, outputs, input names)."""
    context = engine.create_execution_context()
    stream = _check(_cudart().cudaStreamCreate())
    inputs: list[_Buffer] = []
    outputs: list[_Buffer] = []
    names: list[str] = []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        shape = _input_shape(name, engine.get_tensor_shape(name), placement)
        if is_input:
            context.set_input_shape(name, shape)
            names.append(name)
        else:
            shape = tuple(context.get_tensor_shape(name))
        buf = _Buffer(shape, trt.nptype(engine.get_tensor_dtype(name)))
        context.set_tensor_address(name, int(buf.device))
        (inputs if is_input else outputs).append(buf)
    return context, stream, inputs, outputs, names


class _ContextStream:
    """One request in flight: its own context, stream and buffers; `infer` blocks on its stream only."""

    def __init__(self, context, stream, inputs: list[_Buffer], outputs: list[_Buffer], names: list[str]):
        self.context, self.stream, self.inputs, self.outputs, self.input_names = context, stream, inputs, outputs, names

    def infer(self, feed: dict[str, np.ndarray]) -> None:
        cudart = _cudart()
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for name, buf in zip(self.input_names, self.inputs):
            np.copyto(buf.host, feed[name], casting="same_kind")
            _check(cudart.cudaMemcpyAsync(buf.device, buf.host_ptr, buf.nbytes, h2d, self.stream))
        if not self.context.execute_async_v3(self.stream):
            raise RuntimeError("tensorrt: execute_async_v3 failed")
        for buf in self.outputs:
            _check(cudart.cudaMemcpyAsync(buf.host_ptr, buf.device, buf.nbytes, d2h, self.stream))
        _check(cudart.cudaStreamSynchronize(self.stream))

    def free(self) -> None:
        for buf in self.inputs + self.outputs:
            buf.free()
        _cudart().cudaStreamDestroy(self.stream)
        self.context = None


def gpu_name() -> Optional[str]:
    try:
        cudart = _cudart()
        props = _check(cudart.cudaGetDeviceProperties(0))
        return props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    except Exception:  # noqa: BLE001 - the GPU's name is decoration; no CUDA means no name
        return None
