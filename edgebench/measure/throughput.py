"""Throughput: several requests in flight for a time budget (the offline scenario).

The second place in edgebench that reads the clock, beside `timing.measure`, because it has to:
the sequential loop there times one call after another, while here requests overlap, so each
request's start and end are taken by callbacks from whichever thread submits or completes it.
The runner's `InFlight` (backends/base.py) never reads the clock itself; every runtime's requests
are stamped here, the same way.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from edgebench.backends.base import InFlight
from edgebench.core.errors import IncompatibleError
from edgebench.core.records import LatencyStats, ThroughputStats
from edgebench.measure.timing import TimingConfig, measure, summarize


@dataclass(frozen=True)
class ThroughputConfig:
    warmup_s: float = 0.3  # every request in flight has run and the runtime's pools are up
    time_budget_s: float = 3.0
    max_requests: int = 200_000

    @classmethod
    def from_timing(cls, timing: TimingConfig) -> ThroughputConfig:
        """The same warm-up and budget the latency scenarios of the run are given."""
        return cls(warmup_s=timing.warmup_s, time_budget_s=timing.time_budget_s)


def measure_throughput(streams: InFlight, inputs: dict[str, np.ndarray], batch_size: int,
                       config: ThroughputConfig = ThroughputConfig(),
                       confidence: float = 0.95) -> tuple[ThroughputStats, LatencyStats, np.ndarray]:
    """Keep `streams.count` requests in flight on `inputs` (a batch of `batch_size` samples) for
    the time budget, after a warm-up. Returns the throughput, the per-request latency statistics
    and the per-request latencies (ms), in completion order."""
    clock = time.perf_counter_ns
    _run_for(streams, inputs, config.warmup_s, config.max_requests, clock)
    latencies: list[float] = []
    lock = threading.Lock()
    start = clock()
    deadline = start + config.time_budget_s * 1e9
    last = [start]

    def finished(t0: int) -> bool:
        t1 = clock()
        with lock:
            latencies.append((t1 - t0) / 1e6)
            last[0] = max(last[0], t1)
            return t1 < deadline and len(latencies) < config.max_requests

    streams.run(inputs, clock, finished)
    # Elapsed to the last completion: the requests still in flight at the deadline ran to the end
    # and are counted, so neither the work nor the time is cut short.
    elapsed_s = (last[0] - start) / 1e9
    completed = len(latencies)
    stop = "max-requests" if completed >= config.max_requests else "time-budget"
    samples = np.asarray(latencies, dtype=np.float64)
    stats = ThroughputStats(in_flight=streams.count, completed=completed, elapsed_s=elapsed_s, batch_size=batch_size,
                            samples_per_s=batch_size * completed / elapsed_s if elapsed_s > 0 else 0.0,
                            idiom=streams.idiom, stop_reason=stop)
    latency = summarize(samples, TimingConfig(confidence=confidence), 0, elapsed_s, stop)
    return stats, latency, samples


def _run_for(streams: InFlight, inputs: dict[str, np.ndarray], seconds: float, cap: int, clock) -> None:
    """Untimed: keep the requests in flight for `seconds` (at least one round of them)."""
    end = clock() + seconds * 1e9
    done = [0]
    lock = threading.Lock()

    def finished(_token) -> bool:
        with lock:
            done[0] += 1
            return clock() < end and done[0] < cap

    streams.run(inputs, lambda: None, finished)


class _QueryOfRequests:
    """A multi-stream query served as `count` batch-1 requests in flight, in the shape of a runner
    (infer, synchronize), so that `timing.measure` times each query as it times one inference,
    with the same warm-up and stopping rule: a sample is the time from issuing the requests to
    the last completion."""

    def __init__(self, streams: InFlight):
        self.streams = streams

    def infer(self, inputs: dict[str, np.ndarray]) -> None:
        self.streams.run_each_once(inputs)

    def synchronize(self) -> None:
        """run_each_once returns only once every request has completed."""


def measure_query_of_requests(streams: InFlight, inputs: dict[str, np.ndarray], requests: int,
                              config: TimingConfig = TimingConfig()) -> tuple[LatencyStats, np.ndarray]:
    """MLPerf MultiStream on a model that takes one sample at a time: each query of `requests`
    samples is `requests` batch-1 requests issued together; its latency runs to the last completion,
    and the statistics (p99 the scenario's figure) are over queries."""
    if streams.count != requests:
        raise IncompatibleError(f"{streams.idiom} keeps {streams.count} requests in flight, not the query's {requests}")
    return measure(_QueryOfRequests(streams), inputs, config)
