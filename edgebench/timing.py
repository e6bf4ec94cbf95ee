"""The only code in edgebench that reads the clock.

`measure` warms a runner up, then times single inferences until the distribution-free confidence
interval of the median is narrower than `target_ci` (relative), or the time budget or iteration cap
is reached; the reason it stopped is recorded. Every runtime is timed by this same loop, with
`runner.synchronize()` inside the timed region so asynchronous GPU work is counted.
"""
from __future__ import annotations

import math
import resource
import sys
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

import numpy as np

from .types import LatencyStats

T = TypeVar("T")


@dataclass(frozen=True)
class TimingConfig:
    warmup_iterations: int = 10
    warmup_s: float = 0.3
    min_iterations: int = 30
    max_iterations: int = 5000
    time_budget_s: float = 3.0
    target_ci: float = 0.02  # full width of the median's CI, relative to the median
    confidence: float = 0.95


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """Run `fn` once and return its result and wall seconds (for load and first-inference times)."""
    start = time.perf_counter_ns()
    result = fn()
    return result, (time.perf_counter_ns() - start) / 1e9


def median_ci(sorted_samples: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free CI of the median from binomial order statistics (normal approximation)."""
    n = len(sorted_samples)
    if n < 6:
        return float(sorted_samples[0]), float(sorted_samples[-1])
    z = _z(confidence)
    half = z * math.sqrt(n) / 2
    lo = max(0, int(math.floor(n / 2 - half)))
    hi = min(n - 1, int(math.ceil(n / 2 + half)))
    return float(sorted_samples[lo]), float(sorted_samples[hi])


def _z(confidence: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + confidence / 2)


def summarize(samples_ms: np.ndarray, config: TimingConfig, warmup: int, total_s: float, stop: str) -> LatencyStats:
    s = np.sort(np.asarray(samples_ms, dtype=np.float64))
    lo, hi = median_ci(s, config.confidence)
    return LatencyStats(
        median_ms=float(np.median(s)), mean_ms=float(s.mean()), p90_ms=float(np.percentile(s, 90)),
        p99_ms=float(np.percentile(s, 99)), std_ms=float(s.std(ddof=1)) if len(s) > 1 else 0.0,
        min_ms=float(s[0]), ci_low_ms=lo, ci_high_ms=hi, confidence=config.confidence,
        iterations=len(s), warmup_iterations=warmup, total_s=total_s, stop_reason=stop)


def measure(runner, inputs: np.ndarray, config: TimingConfig = TimingConfig()) -> tuple[LatencyStats, np.ndarray]:
    clock = time.perf_counter_ns
    warm_start = clock()
    warmup = 0
    while warmup < config.warmup_iterations or (clock() - warm_start) / 1e9 < config.warmup_s:
        runner.infer(inputs)
        runner.synchronize()
        warmup += 1
        if warmup >= 10 * config.warmup_iterations:
            break
    samples = np.empty(config.max_iterations, dtype=np.float64)
    budget_ns = config.time_budget_s * 1e9
    start = clock()
    n, stop = 0, "max-iterations"
    check_every = 10
    while n < config.max_iterations:
        t0 = clock()
        runner.infer(inputs)
        runner.synchronize()
        t1 = clock()
        samples[n] = (t1 - t0) / 1e6
        n += 1
        if n >= config.min_iterations and n % check_every == 0:
            s = np.sort(samples[:n])
            lo, hi = median_ci(s, config.confidence)
            if (hi - lo) <= config.target_ci * s[n // 2]:
                stop = "ci-reached"
                break
        if t1 - start >= budget_ns and n >= min(config.min_iterations, 5):
            stop = "time-budget"
            break
    total_s = (clock() - start) / 1e9
    kept = samples[:n].copy()
    return summarize(kept, config, warmup, total_s, stop), kept


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (each measurement runs in its own worker)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
