"""Records that travel between the pipeline, worker processes, the store and the report.

All are frozen dataclasses of plain values so that they round-trip through JSON unchanged:
`Measurement.from_dict(json.loads(json.dumps(m.to_dict()))) == m`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional


class _Record:
    __dataclass_fields__: ClassVar[dict[str, Any]]  # every record is a @dataclass: declared so asdict/fields type-check

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        known = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {}
        for name, value in data.items():
            if name not in known:
                continue  # records written by a newer edgebench keep loading
            if isinstance(value, list) and "tuple" in str(known[name].type):
                value = tuple(value)
            kwargs[name] = value
        return cls(**kwargs)


@dataclass(frozen=True)
class LatencyStats(_Record):
    """Robust summary of per-iteration latencies, in milliseconds."""
    median_ms: float
    # None on an estimated row: an estimate has an interval, not percentiles it never observed.
    mean_ms: Optional[float]
    p90_ms: Optional[float]
    p99_ms: Optional[float]
    std_ms: Optional[float]
    min_ms: Optional[float]
    ci_low_ms: float  # distribution-free confidence interval of the median
    ci_high_ms: float
    confidence: Optional[float]
    iterations: int
    warmup_iterations: int
    total_s: float
    stop_reason: str  # "ci-reached" | "time-budget" | "max-iterations"


@dataclass(frozen=True)
class ThroughputStats(_Record):
    """Several requests in flight for a time budget (the offline scenario): how many completed."""
    in_flight: int  # requests kept running at once (streams, infer requests, execution contexts)
    completed: int  # requests that finished inside the measured span
    elapsed_s: float  # first submission to last completion
    batch_size: int
    samples_per_s: float  # batch_size x completed / elapsed_s
    idiom: str  # how the runtime kept them in flight, e.g. "AsyncInferQueue(4), THROUGHPUT hint"
    stop_reason: str  # "time-budget" | "max-requests"


# MLPerf LoadGen's scenario names, as users know them: one query at a time (p90 latency), queries
# of several samples (p99 latency per query), everything at once (samples per second).
SCENARIOS = ("single-stream", "multi-stream", "offline")


@dataclass(frozen=True)
class AccuracyResult(_Record):
    top1: float  # fraction in [0, 1]
    correct: int
    total: int
    ci_low: float  # Wilson score interval, 95%
    ci_high: float
    split: str = "eval"


@dataclass(frozen=True)
class CandidateInfo(_Record):
    """A compressed (or baseline) model and where its deployable artifacts lie.

    `artifacts` maps a format ("torch", "onnx", "openvino", "onnx-int8", ...) to a path relative
    to the run folder. `lineage` is the recipe that made it, pass by pass.
    """
    id: str
    name: str
    lineage: tuple = ()
    parent: Optional[str] = None
    params: Optional[int] = None
    macs: Optional[int] = None
    artifacts: dict = field(default_factory=dict)
    file_bytes: dict = field(default_factory=dict)
    input_shape: tuple = ()
    num_classes: Optional[int] = None
    precision: str = "fp32"  # precision of the weights in the artifact (int8 after PTQ/QAT)
    notes: tuple = ()


@dataclass(frozen=True)
class Measurement(_Record):
    """One candidate x runtime x processor x precision, timed and scored where it was deployed."""
    key: str
    candidate: str
    backend: str
    processor: str  # cpu | gpu | npu
    precision: str  # requested
    device: str  # profile name of the machine the figures describe
    source: str  # "measured" | "estimated"
    status: str  # "ok" | "failed" | "skipped" (reason in error) | "unavailable" (reason and extra in error)
    executed_precision: Optional[str] = None  # what the runtime actually ran (e.g. bf16 for OV f32 on AMX)
    latency: Optional[dict] = None  # LatencyStats.to_dict()
    accuracy: Optional[dict] = None  # AccuracyResult.to_dict()
    samples_ms: tuple = ()
    load_s: Optional[float] = None
    first_inference_ms: Optional[float] = None
    peak_rss_mb: Optional[float] = None
    batch_size: int = 1
    threads: Optional[int] = None
    runtime_version: Optional[str] = None
    error: Optional[str] = None
    exit_signal: Optional[int] = None
    measured_on: Optional[str] = None  # free text: which machine really ran it
    node_id: Optional[str] = None
    estimate_error_pct: Optional[float] = None
    layers: tuple = ()  # per-layer / per-op breakdown rows where measured
    extra: dict = field(default_factory=dict)
    timestamp: float = 0.0
    shape: Optional[str] = None  # the input shape set measured (models/inputs.shape_label); None: the run's only one
    quality: Optional[dict] = None  # measure.quality.QualityResult.to_dict(): what the quality figure is
    session: Optional[int] = None  # the run.json session that stored it (its settings and environment)
    # MLPerf LoadGen's names (measure/scenarios.py); records written before scenarios existed are single-stream.
    scenario: str = "single-stream"
    throughput: Optional[dict] = None  # measure.throughput.ThroughputStats.to_dict() on an offline row

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def median_ms(self) -> Optional[float]:
        return self.latency["median_ms"] if self.latency else None

    @property
    def top1(self) -> Optional[float]:
        return self.accuracy["top1"] if self.accuracy else None


def measurement_key(candidate: str, backend: str, processor: str, precision: str, device: str,
                    batch_size: int = 1, shape: Optional[str] = None, scenario: str = "single-stream") -> str:
    key = f"{candidate}|{backend}|{processor}|{precision}|{device}|b{batch_size}"
    key = f"{key}|{shape}" if shape else key
    # Single-stream keys are the keys of runs made before scenarios existed, so those runs resume.
    return key if scenario == "single-stream" else f"{key}|{scenario}"
