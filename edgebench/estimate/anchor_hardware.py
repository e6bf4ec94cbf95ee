"""What a published anchor ran on and computed in: its reference model's operator costs, the
processor's derated peaks at the threads it used, the precision the roofline models it at, and
which anchors can stand in for each other. Shared by the anchor transfer (anchors.py) and the
fitted roofline shape (anchor_shape.py).
"""
from __future__ import annotations

import math
from typing import Optional

from edgebench.devices.profiles import Anchor, DeviceProfile, Processor
from edgebench.estimate.reference import key, reference_ops, winograd_ops
from edgebench.estimate.roofline import ACHIEVABLE_BANDWIDTH, ACHIEVABLE_COMPUTE, Hardware


def buildable(anchor: Anchor) -> bool:
    """A batch-1 latency of a reference model whose operator costs are shipped."""
    return (anchor.usable_latency and anchor.input_size is not None
            and key(anchor.model, anchor.input_size) in reference_ops())


def anchor_ops(anchor: Anchor) -> list:
    return reference_ops()[key(anchor.model, anchor.input_size or 0)]


# CPU runtimes that compute a dense 3x3 stride-1 convolution as Winograd F(m, 3) tiles, on the
# condition op_costs.winograd_eligible records (ncnn's own: src/layer/arm and src/layer/x86
# convolution_*.cpp); the other runtimes' anchors keep those convolutions in the dense conv column.
WINOGRAD_RUNTIMES = ("ncnn",)


def winograd_positions(anchor: Anchor) -> frozenset:
    """Positions in anchor_ops(anchor) of the convolutions its runtime computes as Winograd tiles."""
    if anchor.runtime not in WINOGRAD_RUNTIMES or anchor.processor != "cpu":
        return frozenset()
    return winograd_ops().get(key(anchor.model, anchor.input_size or 0), frozenset())


def sync_scale(threads: Optional[int]) -> float:
    """How much a CPU runtime's per-operator cost grows with the threads it joins after every
    operator: a fork-join barrier over T threads takes ceil(log2 T) rounds in the scalable
    (tree/dissemination) barriers that OpenMP runtimes use (J. Mellor-Crummey, M. Scott,
    "Algorithms for scalable synchronization on shared-memory multiprocessors", ACM TOCS 9(1),
    1991), on top of one dispatch; that OpenMP barrier and parallel-loop overheads grow with the
    thread count is measured by the EPCC OpenMP microbenchmarks (J. M. Bull, "Measuring
    synchronisation and scheduling overheads in OpenMP", EWOMP 1999) and modelled across
    implementations by C. Iwainsky et al., "How Many Threads will be too Many? On the Scalability
    of OpenMP Implementations", Euro-Par 2015, LNCS 9233
    (https://link.springer.com/chapter/10.1007/978-3-662-48096-0_35). 1 + log2 T is this module's
    choice of form (the fitted per-op multiplier sets its size). For the record, a one-off comparison
    on the anchors of the time (not in the committed results; 37 anchors) gave: no scaling 62% within
    +-25%, sqrt(T/4) 65%, T/4 70%, 1 + log2 T 70% (median |error| 17, 16, 17, 15%)."""
    return 1.0 + math.log2(threads) if threads and threads > 1 else 1.0


# The clock at which the per-operator column's unit (1 us per op, roofline.NODE_UNIT_MS) is read:
# a normalisation of the fitted per-op multiplier (anchor_shape.py), of the order of the x86
# server cores the prior (roofline.PRIOR) was calibrated on, not a fitted value.
REFERENCE_CLOCK_GHZ = 3.0


def clock_scale(processor: Processor) -> float:
    """A CPU's per-operator cost relative to a REFERENCE_CLOCK_GHZ core: the work between two
    operators (walking the graph, choosing and entering a kernel, the fork-join of its threads) is
    a count of cycles on the cores that run it, so its time scales with 1 / clock. That OpenMP
    fork/join and barrier overheads are cycle counts that shrink with the clock is how the EPCC
    microbenchmarks report them (J. M. Bull, "Measuring synchronisation and scheduling overheads in
    OpenMP", EWOMP 1999); instructions per cycle differ between cores too, which this leaves to the
    fitted per-op multiplier. 1 where the profile states no clock."""
    return REFERENCE_CLOCK_GHZ / processor.clock_ghz if processor.clock_ghz else 1.0


def device_hardware(processor: Processor, threads: Optional[int] = None,
                    sync_threads: Optional[int] = None) -> Optional[Hardware]:
    """The processor's datasheet peaks derated to achievable, with no host in the picture: the same
    anchors must give the same estimate and error on every machine that runs `compare`. A run on
    `threads` of the processor's cores gets that share of the compute peak (the rest of the cores
    idle); memory bandwidth is the whole processor's unless `threads` cores cannot pull it
    (usable_bandwidth_gbs). `sync_threads`: a CPU run's
    thread count, which scales its per-operator cost (sync_scale) as does its clock (clock_scale);
    None: no scaling (GPU, NPU)."""
    if not processor.peak_gflops or not processor.memory_bandwidth_gbs:
        return None
    share = min(1.0, threads / processor.cores) if threads and processor.cores else 1.0
    per_op = sync_scale(sync_threads) * clock_scale(processor) if sync_threads is not None else 1.0
    return Hardware({p: v * ACHIEVABLE_COMPUTE * share for p, v in processor.peak_gflops.items()},
                    usable_bandwidth_gbs(processor, threads) * ACHIEVABLE_BANDWIDTH, per_op)


def usable_bandwidth_gbs(processor: Processor, threads: Optional[int] = None) -> float:
    """The memory bandwidth a run on `threads` cores (None: every core) can draw: the whole
    processor's, unless its profile states what one core sustains (`core_bandwidth_gbs`) and that
    many cores cannot pull it. A core's bandwidth is bounded by the cache-line misses it keeps in
    flight (Little's law, J. D. C. Little, "A proof for the queuing formula L = lambda W",
    Operations Research 9(3), 1961: bandwidth = misses in flight x line size / memory latency), so
    one core of a server socket reaches a small fraction of the socket's bandwidth, which STREAM is
    run on every core to reach (J. D. McCalpin, "Memory Bandwidth and Machine Balance in Current
    High Performance Computers", IEEE TCCA Newsletter, December 1995). This form was
    adopted after scoring it on the published anchors (selection on validation data; the forms and
    figures tried are listed in benchmarks/results/anchor_validation.md): it removed most of the
    misses of the 1-thread x86 ncnn anchors, where the socket's whole bandwidth behind one core made
    MobileNet's memory-heavy layers look cheap next to ResNet's dense convolutions."""
    total = float(processor.memory_bandwidth_gbs or 0.0)
    active = threads or processor.cores
    if processor.core_bandwidth_gbs and active:
        return min(total, active * processor.core_bandwidth_gbs)
    return total


def processor_hardware(profile: DeviceProfile, processor: str, threads: Optional[int] = None) -> Optional[Hardware]:
    """A processor of `profile` run on `threads` (None: the source's default, every core)."""
    proc = profile.processors.get(processor)  # type: ignore[call-overload]
    if proc is None:
        return None
    sync = (threads or proc.cores or profile.threads) if processor == "cpu" else None
    return device_hardware(proc, threads, sync)


def anchor_hardware(profile: DeviceProfile, anchor: Anchor) -> Optional[Hardware]:
    """The hardware an anchor ran on: its processor's derated peaks at the threads it used."""
    return processor_hardware(profile, anchor.processor, anchor.threads)


def precision_of(anchor: Anchor) -> str:
    """The edgebench precision an anchor's label computes in ("fp32-model (fp16 compute ...)" -> fp16)."""
    text = anchor.precision
    if text.startswith("int8"):
        return "int8"
    return "fp16" if text.startswith("fp16") or "fp16 compute" in text else "fp32"


# Runtimes whose FP32 convolutions and matmuls run on the Tensor Cores in TF32 by default: TensorRT
# (BuilderFlag::kTF32, "Enabled by default", NVIDIA/TensorRT include/NvInfer.h) and ORT on a GPU,
# which edgebench and the anchors' sources run through its TensorRT EP (see anchors.EQUIVALENT_RUNTIMES).
TF32_RUNTIMES = ("tensorrt", "onnxruntime")


def compute_precision(precision: str, processor: Optional[Processor], runtime: str) -> str:
    """The precision the roofline models: FP32 on a GPU whose profile states a TF32 peak, under a
    runtime that uses TF32 by default, computes at the TF32 rate (bytes stay 4 per element)."""
    if (precision == "fp32" and processor is not None and "tf32" in processor.peak_gflops
            and runtime in TF32_RUNTIMES):
        return "tf32"
    return precision


def anchor_precision(profile: DeviceProfile, anchor: Anchor) -> str:
    return compute_precision(precision_of(anchor), profile.processors.get(anchor.processor),  # type: ignore[call-overload]
                             anchor.runtime)


def comparable(a: Anchor, b: Anchor) -> bool:
    """b can stand in for a: same runtime, processor, precision and threads, on the same machine (a
    profile may cite figures of more than one machine of its class: `device_detail` tells them
    apart); a different model."""
    return (a.model != b.model and (a.runtime, a.processor, a.precision, a.threads, a.batch, a.device_detail)
            == (b.runtime, b.processor, b.precision, b.threads, b.batch, b.device_detail))
