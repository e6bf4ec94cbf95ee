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
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from edgebench.core.records import LatencyStats

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


def measure(runner, inputs: dict[str, np.ndarray], config: TimingConfig = TimingConfig(),
            runtime_samples: list | None = None) -> tuple[LatencyStats, np.ndarray]:
    """Time `runner` on `inputs`. When `runtime_samples` is a list, it receives the runtime's own
    figure for each timed call (`runner.runtime_latency_ms()`), read after the wall clock stops,
    for as long as the runtime keeps one."""
    clock = time.perf_counter_ns
    collect = runtime_samples is not None
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
        if collect:
            own = runner.runtime_latency_ms()
            if own is None:
                collect = False
            else:
                runtime_samples.append(own)  # type: ignore[union-attr]
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


# --- interleaved measurement (used by `edgebench gate`) ---------------------------------------

def quantile_ci(sorted_samples: np.ndarray, q: float, confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free CI of the q-quantile from binomial order statistics (the bound MLPerf's
    early stopping uses): the rank of the true quantile among n samples is Binomial(n, q)."""
    n = len(sorted_samples)
    half = _z(confidence) * math.sqrt(n * q * (1 - q))
    lo = max(0, int(math.floor(n * q - half)))
    hi = min(n - 1, int(math.ceil(n * q + half)))
    return float(sorted_samples[lo]), float(sorted_samples[hi])


@dataclass(frozen=True)
class InterleavedConfig:
    """Alternating blocks A B B A A B ... until the gated quantile of every model is known to
    `target_ci` (full width of its CI, relative), or the time budget is spent."""
    quantile: float = 0.5
    block_iterations: int = 25  # timed iterations per block
    settle_iterations: int = 2  # untimed iterations after each switch (caches, thread pools)
    warmup_s: float = 0.3
    min_rounds: int = 8
    max_rounds: int = 2000
    time_budget_s: float = 10.0
    target_ci: float = 0.01
    confidence: float = 0.95


@dataclass(frozen=True)
class InterleavedResult:
    stats: tuple  # LatencyStats per runner, in the order given
    samples: tuple  # np.ndarray per runner; round r is samples[r*block:(r+1)*block]
    rounds: int
    block_iterations: int
    stop_reason: str


def measure_interleaved(runners, inputs, config: InterleavedConfig = InterleavedConfig()) -> InterleavedResult:
    """Time several runners in one session, alternating blocks so that whatever else the machine
    is doing (a noisy CI runner) falls on all of them alike. Each round visits every runner once;
    the order reverses every other round (ABBA) so that no runner always follows the same one."""
    clock = time.perf_counter_ns
    count = len(runners)
    block = config.block_iterations
    warm_start = clock()
    while (clock() - warm_start) / 1e9 < config.warmup_s:
        for runner, x in zip(runners, inputs):
            runner.infer(x)
            runner.synchronize()
    capacity = config.max_rounds * block
    samples = [np.empty(capacity, dtype=np.float64) for _ in range(count)]
    budget_ns = config.time_budget_s * 1e9
    start = clock()
    rounds, stop = 0, "max-rounds"
    while rounds < config.max_rounds:
        order = range(count) if rounds % 2 == 0 else range(count - 1, -1, -1)
        for i in order:
            runner, x, out = runners[i], inputs[i], samples[i]
            for _ in range(config.settle_iterations):
                runner.infer(x)
                runner.synchronize()
            base = rounds * block
            for j in range(block):
                t0 = clock()
                runner.infer(x)
                runner.synchronize()
                out[base + j] = (clock() - t0) / 1e6
        rounds += 1
        # Checking sorts every sample; checking at geometrically spaced rounds keeps that cheap.
        check = rounds >= config.min_rounds and rounds % max(1, rounds // 8) == 0
        if check and _quantiles_known(samples, rounds * block, config):
            stop = "ci-reached"
            break
        if clock() - start >= budget_ns and rounds >= 2:
            stop = "time-budget"
            break
    total_s = (clock() - start) / 1e9
    n = rounds * block
    kept = tuple(s[:n].copy() for s in samples)
    timing = TimingConfig(confidence=config.confidence)
    stats = tuple(summarize(k, timing, 0, total_s, stop) for k in kept)
    return InterleavedResult(stats, kept, rounds, block, stop)


def _quantiles_known(samples: list, n: int, config: InterleavedConfig) -> bool:
    for s in samples:
        ordered = np.sort(s[:n])
        lo, hi = quantile_ci(ordered, config.quantile, config.confidence)
        estimate = float(np.quantile(ordered, config.quantile))
        if estimate <= 0 or (hi - lo) > config.target_ci * estimate:
            return False
    return True
