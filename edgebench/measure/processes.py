"""One configuration measured in several short worker processes, and the interval that follows.

A process's samples share its memory layout, its threads' placement and its runtime's one-time
choices (kernels, thread pools), so their spread understates how far a rerun lands: the same
artifact measured a few minutes apart moved 2x on a quiet machine while each run stated a 2%
interval (pyperf's lesson). The interval stated here spans every process's own median interval,
so it includes the spread between processes; a figure from one process says that it is one.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from edgebench.core.records import LatencyStats, Measurement
from edgebench.measure.timing import TimingConfig, summarize


def per_process_tasks(task, processes: int) -> list:
    """The task split into `processes` tasks with a share of the time budget each; only the first
    scores accuracy and profiles layers (those do not depend on the process)."""
    timing = dict(task.timing)
    budget = timing.get("time_budget_s", TimingConfig.time_budget_s)
    timing["time_budget_s"] = max(0.2, budget / processes)
    return [dataclasses.replace(task, timing=timing, processes=1,
                                score=task.score if i == 0 else False,
                                layer_profile=task.layer_profile if i == 0 else False) for i in range(processes)]


def merge(results: list[Measurement], timing: dict) -> Measurement:
    """One Measurement from several processes' results of the same task: pooled samples for the
    percentiles, the interval from the processes' spread."""
    ok = [m for m in results if m.ok and m.latency]
    if not ok:
        return results[0]
    first = ok[0]
    pooled = np.concatenate([np.asarray(m.samples_ms, dtype=np.float64) for m in ok])
    latencies: list[dict] = [m.latency for m in ok if m.latency is not None]
    medians = [lat["median_ms"] for lat in latencies]
    config = TimingConfig(**{k: v for k, v in timing.items() if k in TimingConfig.__dataclass_fields__})
    stats = summarize(pooled, config, sum(lat["warmup_iterations"] for lat in latencies),
                      sum(lat["total_s"] for lat in latencies), "processes")
    stats = dataclasses.replace(stats, ci_low_ms=min(lat["ci_low_ms"] for lat in latencies),
                                ci_high_ms=max(lat["ci_high_ms"] for lat in latencies))
    busy = [m.extra.get("contention") for m in ok if (m.extra.get("contention") or {}).get("busy")]
    extra = dict(first.extra, processes={
        "count": len(ok), "failed": len(results) - len(ok), "medians_ms": medians,
        "spread": max(medians) / min(medians) if min(medians) > 0 else None,
        "interval": "spans every process's median interval"})
    if busy:
        extra["contention"] = busy[0]
    accuracy = next((m.accuracy for m in ok if m.accuracy), None)
    throughput = first.throughput
    if throughput:
        # Processes ran one after another: their samples and their seconds add up.
        parts = [m.throughput for m in ok if m.throughput]
        completed, elapsed = sum(t["completed"] for t in parts), sum(t["elapsed_s"] for t in parts)
        throughput = dict(throughput, completed=completed, elapsed_s=elapsed,
                          samples_per_s=throughput["batch_size"] * completed / elapsed if elapsed > 0 else 0.0)
    return dataclasses.replace(first, latency=LatencyStats.to_dict(stats), samples_ms=tuple(round(float(s), 5)
                                                                                             for s in pooled),
                               accuracy=accuracy, extra=extra, throughput=throughput)
