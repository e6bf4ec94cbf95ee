"""The Runner contract every runtime implements.

A runner loads one artifact onto one processor at one precision, runs inference on named inputs
(`infer({name: array}) -> [outputs in model order]`), and can say
what precision it really executed in. It never reads the clock: `timing.measure` times every
runner the same way, so differences between runtimes are the runtimes', not the harness's.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional

import numpy as np

from edgebench.core.errors import IncompatibleError


@dataclass(frozen=True)
class Placement:
    """Where and how a runner executes: processor, precision, threads, runtime-specific options."""
    processor: str = "cpu"  # cpu | gpu | npu
    precision: str = "fp32"  # fp32 | fp16 | bf16 | int8
    threads: Optional[int] = None
    batch_size: int = 1
    # Runtime-specific settings; "input_shapes" ({name: [dims]}) fixes a dynamic model's inputs
    # at the shapes being measured (OpenVINO reshape, TensorRT optimisation profile).
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Availability:
    available: bool
    version: Optional[str] = None
    processors: tuple = ()
    precisions: tuple = ()
    reason: Optional[str] = None  # why not, when unavailable
    install: Optional[str] = None  # the pip extra that brings it


class InFlight(ABC):
    """Several requests in flight on one loaded model, kept running in the runtime's own idiom
    (OpenVINO's AsyncInferQueue, threads on a shared ONNX Runtime session, one TensorRT execution
    context per request). It never reads the clock: `measure.throughput` passes `started`, called
    just before each request is submitted (its value is that request's token), and `finished`,
    called with the token as soon as that request completes; `finished` returns False once no
    further request should be submitted."""
    count: int  # requests in flight
    idiom: str  # how, in words, for the record

    @abstractmethod
    def run(self, inputs: dict[str, np.ndarray], started: Callable[[], Any], finished: Callable[[Any], bool]) -> None:
        """Keep `count` requests running on `inputs` until `finished` says stop; return once every
        submitted request has completed. A runtime error in any request is raised here."""

    def run_each_once(self, inputs: dict[str, np.ndarray]) -> None:
        """Issue exactly one request on each of the `count` in flight, together, and return when
        the last has completed: a multi-stream query served as requests (measure/throughput.py).
        A driver that cannot promise exactly one each says so, and the row is skipped with it."""
        raise IncompatibleError(f"{self.idiom}: edgebench cannot issue exactly one request on each in flight")

    def close(self) -> None:  # noqa: B027 - a no-op default for drivers that hold nothing of their own
        """Free what the driver itself holds (threads); the runner's model is the runner's to free."""


class ThreadStreams(InFlight):
    """One Python thread per request in flight, each calling a blocking `infer` of its own (for
    runtimes that release the GIL while they compute)."""

    def __init__(self, calls: list[Callable[[dict[str, np.ndarray]], Any]], idiom: str):
        self.calls, self.count, self.idiom = calls, len(calls), idiom
        self._pool: Optional[ThreadPoolExecutor] = None

    def run(self, inputs, started, finished) -> None:
        def loop(call) -> None:
            more = True
            while more:
                token = started()
                call(inputs)
                more = finished(token)

        # One pool kept across runs: a query served as requests calls run() once per query, and
        # starting `count` threads each time would be timed as part of every query.
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.count, thread_name_prefix="edgebench-stream")
        futures = [self._pool.submit(loop, call) for call in self.calls]
        wait(futures)  # every stream has ended before an error is raised and the model may be freed
        for f in futures:
            f.result()  # re-raises a stream's error here

    def run_each_once(self, inputs) -> None:
        # Every stream loops until `finished` says stop: saying so at once runs each call exactly once.
        self.run(inputs, lambda: None, lambda _token: False)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def split_threads(threads: Optional[int], streams: int) -> Optional[int]:
    """Compute threads per stream, so that `streams` concurrent requests share the cores the
    placement was given rather than each taking all of them (oversubscription)."""
    return max(1, threads // max(1, streams)) if threads else None


class Runner(ABC):
    """What one runtime is and can do, written once: the pipeline plans with it, the estimator
    estimates with it, the worker runs it, and the report sizes artifacts with it."""
    name: ClassVar[str]
    formats: ClassVar[tuple[str, ...]]  # artifact formats it loads, in order of preference
    devices: ClassVar[tuple[str, ...]]  # processors it can target when present
    precisions: ClassVar[tuple[str, ...]]
    # Reduced float precisions the runtime applies to a float artifact by itself when asked (a
    # precision hint: OpenVINO's inference_precision, TensorRT's builder flags). Runtimes without
    # one run the artifact as exported, so only fp32 is planned for them.
    reduced_float_precisions: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str] = ""  # pip extra, e.g. "edgebench[tensorrt]"
    # Why this runner's figures are not yet trusted, until its tests have passed on real hardware
    # (shown by `edgebench backends` and on every report row it measures); None once they have.
    unverified: ClassVar[Optional[str]] = None
    opt_in: ClassVar[bool] = False  # planned only when asked for by name (--runtimes)
    # Getting a model ready costs tens of seconds or more (an engine build, a compile on the first
    # call): compare then does not load the baseline again beside each candidate (measure/pairing.py).
    costly_start: ClassVar[bool] = False

    @classmethod
    def deployed_format(cls, available: Iterable[str]) -> Optional[str]:
        """The artifact format this runtime deploys among those a candidate has (its size is the
        one a report shows for this runtime), or None when it can load none of them."""
        have = set(available)
        return next((f for f in cls.formats if f in have), None)

    @classmethod
    def plan_precisions(cls, artifact_precision: str, processor_precisions: Iterable[str]) -> list[str]:
        """The precisions to measure an artifact at on a processor: an INT8 artifact at int8; a
        float one at fp32 plus the reduced precisions this runtime applies by itself."""
        supported = [p for p in processor_precisions if p in cls.precisions]
        if artifact_precision == "int8":
            return ["int8"] if "int8" in supported else []
        return [p for p in ("fp32", *cls.reduced_float_precisions) if p in supported]

    def prepare(self, artifact: Path, placement: Placement) -> None:  # noqa: B027 - most runtimes build nothing ahead
        """Ahead-of-time work before `load` (TensorRT's engine build), timed apart from loading."""

    @classmethod
    @abstractmethod
    def availability(cls) -> Availability:
        """Whether the runtime is importable and which processors it sees, without loading a model."""

    @abstractmethod
    def load(self, artifact: Path, placement: Placement) -> None: ...

    @abstractmethod
    def infer(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run once on `inputs` ({model input name: array}, every input of the model, at the
        shapes and dtypes of its `InputSpec`s) and return the outputs as numpy arrays in the
        model's output order. The same dict object may be passed many times (the timing loop
        does), so a runner may bind it once and re-bind only for a new object."""

    def synchronize(self) -> None:  # noqa: B027 - a no-op default that runners override when they need it
        """Block until queued work has finished; a no-op for synchronous runtimes."""

    def runtime_latency_ms(self) -> Optional[float]:
        """The runtime's own measure of the last inference (what its C++ benchmark tools report,
        without the Python call around it), or None where the runtime keeps none."""
        return None

    def profiled_latency_ms(self, inputs: dict[str, np.ndarray], iterations: int) -> list[float]:
        """For a runtime whose only own clock slows the runs it times (ONNX Runtime's profiler):
        its own figure for each of `iterations` runs of a separate, instrumented pass made after
        the timed calls, which stay unprofiled; [] where there is none. Recorded beside the wall
        time as such, never ranked by: its instrumentation is part of what it measures."""
        return []

    def close(self) -> None:  # noqa: B027 - a no-op default that runners override when they need it
        """Free the model; the runner is not used afterwards."""

    def executed_precision(self) -> Optional[str]:
        """The precision the runtime really computes in, read back from the loaded model (it may
        differ from the one requested); None where the runtime cannot tell, so a report never
        presents the request as what ran."""
        return None

    def runtime_version(self) -> Optional[str]:
        return self.availability().version

    @classmethod
    def check_placement(cls, placement: Placement) -> None:
        """A precision or processor this runtime does not have is a one-line user error."""
        if placement.precision not in cls.precisions:
            raise IncompatibleError(f"{cls.name} has no precision '{placement.precision}' "
                                    f"(it has {', '.join(cls.precisions)})")
        if placement.processor not in cls.devices:
            raise IncompatibleError(f"{cls.name} cannot run on the {placement.processor} "
                                    f"(it runs on {', '.join(cls.devices)})")

    def throughput_streams(self) -> InFlight:
        """Requests in flight on the loaded model for the offline scenario. The placement's
        options say how many ("streams", where the runtime does not choose itself) and that the
        model was loaded for throughput ("hint": "throughput"). A runtime without a throughput mode
        raises IncompatibleError with why: its offline row is skipped with that reason."""
        raise IncompatibleError(f"{self.name} has no throughput mode in edgebench")

    @classmethod
    def has_throughput_mode(cls) -> bool:
        """Whether this runtime keeps requests in flight at all (the planner asks before it plans a
        multi-stream query as requests)."""
        return cls.throughput_streams is not Runner.throughput_streams

    def extra_metrics(self, inputs: dict[str, np.ndarray]) -> dict:
        """Runtime-specific figures stored beside the timing (e.g. GPU compute vs copies); {} by default."""
        return {}

    def layer_profile(self, inputs: dict[str, np.ndarray], iterations: int = 20) -> list[dict]:
        """Per-layer or per-op time and precision, where the runtime exposes it; [] otherwise."""
        return []


def unavailable(reason: str, extra: str) -> Availability:
    return Availability(False, reason=reason, install=f"pip install '{extra}'" if extra else None)
