"""The fastest a graph can possibly run on a processor: no estimate may be below it.

Per operator, the time to do its arithmetic at the processor's datasheet peak for the precision,
or to move its bytes at the datasheet memory bandwidth, whichever is longer; plus the cost of
dispatching each kernel and the fixed cost of one inference call, per runtime class. The peaks
are the datasheet's, not derated: a bound must hold for the best kernel the runtime could have.

The overhead floors are deliberately low (what a tuned C++ runtime pays), so the bound is a floor,
not an estimate: a GPU kernel launch costs at least a few microseconds and an inference at least
a launch, a synchronisation and the input copy; a CPU runtime walks its graph at least once per op.
"""
from __future__ import annotations

from dataclasses import dataclass

from edgebench.estimate.op_costs import BYTES_PER_ELEMENT, GROUPS


@dataclass(frozen=True)
class Overheads:
    per_kernel_us: float  # dispatch of one kernel
    fixed_us: float  # one inference call: enqueue, synchronise, copy the input in and the output out
    fused_elementwise: bool  # elementwise ops fold into the kernel before them (no dispatch of their own)


# Floors per runtime class (see the module docstring for why they are floors). The GPU ones were
# checked, not changed, for issue 14: a back-to-back CUDA kernel launch costs a few microseconds
# (NVIDIA, "Getting Started with CUDA Graphs", developer.nvidia.com/blog/cuda-graphs/, measures
# about 3-4 us per short kernel launched without a synchronisation between them), so 4 us per node
# stays a floor for ORT CUDA and PyTorch even though ORT CUDA was measured at about 10-15 us per node
# on an H200 (benchmarks/gpu_check.sh): that is what the estimate, not the floor, must learn. Every
# published Jetson and A100 GPU anchor sits above its floor (published / bound 1.2 for TensorRT int8
# resnet50 on AGX Orin, 1.4-2.0 for ORT on Orin Nano, 2.7 on A100): a higher floor would cross the
# tightest of them, and none of them times an eager ORT CUDA graph node by node to justify one.
OVERHEADS = {
    "gpu-compiled": Overheads(per_kernel_us=2.0, fixed_us=15.0, fused_elementwise=True),  # TensorRT
    "gpu-eager": Overheads(per_kernel_us=4.0, fixed_us=15.0, fused_elementwise=False),  # ORT CUDA, PyTorch
    "cpu-compiled": Overheads(per_kernel_us=0.2, fixed_us=2.0, fused_elementwise=True),  # ORT, OpenVINO, LiteRT
    "cpu-eager": Overheads(per_kernel_us=1.0, fixed_us=5.0, fused_elementwise=False),  # PyTorch eager
    "npu": Overheads(per_kernel_us=0.0, fixed_us=20.0, fused_elementwise=True),
}
_ELEMENTWISE = GROUPS.index("elementwise")


def runtime_class(runtime: str, processor: str) -> str:
    if processor == "npu":
        return "npu"
    if processor == "gpu":
        return "gpu-compiled" if runtime == "tensorrt" else "gpu-eager"
    return "cpu-eager" if runtime == "pytorch" else "cpu-compiled"


def peak_gops(peaks: dict, precision: str) -> float:
    """The processor's datasheet peak for `precision`; where the profile states none, the highest
    it states (generous, so the bound stays a bound). FP32 takes the TF32 Tensor Core rate where a
    GPU states one (runtimes may compute FP32 convolutions in TF32)."""
    if precision == "fp32" and peaks.get("tf32"):
        return float(max(peaks["tf32"], peaks.get("fp32") or 0.0))
    if precision in peaks and peaks[precision]:
        return float(peaks[precision])
    return float(max(peaks.values()))


def lower_bound_ms(ops: list, precision: str, peaks: dict, bandwidth_gbs: float, runtime: str,
                   processor: str) -> float:
    """`ops` as [group index, flops, elements] per operator (roofline.ops_of)."""
    peak = peak_gops(peaks, precision) * 1e6  # FLOP per ms
    bandwidth = bandwidth_gbs * 1e6  # bytes per ms
    bpe = BYTES_PER_ELEMENT.get(precision, 4)
    over = OVERHEADS[runtime_class(runtime, processor)]
    compute = sum(max(flops / peak, elements * bpe / bandwidth) for _, flops, elements in ops)
    kernels = sum(1 for g, _, _ in ops if not (over.fused_elementwise and int(g) == _ELEMENTWISE))
    return compute + (kernels * over.per_kernel_us + over.fixed_us) / 1000.0


def processor_bound_ms(ops: list, precision: str, processor, runtime: str, processor_name: str) -> float | None:
    """The bound for a profile's Processor, or None where the profile states no peaks."""
    if not processor.peak_gflops or not processor.memory_bandwidth_gbs:
        return None
    return lower_bound_ms(ops, precision, processor.peak_gflops, processor.memory_bandwidth_gbs, runtime,
                          processor_name)
