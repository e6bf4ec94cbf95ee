"""One configuration measured in several short worker processes, and the interval that follows.

A process's samples share its memory layout, its threads' placement and its runtime's one-time
choices (kernels, thread pools), so their spread understates how far a rerun lands: the same
artifact measured a few minutes apart moved 2x on a quiet machine while each run stated a 2%
interval (pyperf's lesson). The interval stated here spans every process's own median interval,
so it includes the spread between processes; a figure from one process says that it is one.

Consecutive processes of one configuration still share the minutes they ran in, and this VM drifts
by tens of percent over minutes: with five processes one after another, 14 of 20 rerun medians fell
inside the stated interval, and the misses were whole-run shifts of one candidate. `run_interleaved`
spreads each configuration's processes over the whole timing stage instead, as the gate's
interleaved A/B does, so a drift lands in every configuration's spread rather than in one
configuration's figure.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from edgebench.core.records import LatencyStats, Measurement
from edgebench.measure.intervals import rerun_interval
from edgebench.measure.pairing import merge_pairs
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


def run_interleaved(tasks: Sequence, run_one: Callable, on_result: Callable) -> None:
    """Run every task with `run_one`, a task of N processes as N single-process parts spread over
    the stage: round r runs part r of every task still open, forward on even rounds and backward on
    odd ones (ABBA), and a task's merged row goes to `on_result` after its last part. Single-process
    tasks are delivered in round 0, in order, exactly as a plain loop would. A task whose part fails
    runs no further parts (a runtime that crashed or hung once would only repeat it); its row says
    how many failed. A stage interrupted before a task's last round loses that task's finished
    parts: it is measured again on resume, never stored from fewer processes than asked."""
    parts = [per_process_tasks(t, t.processes) if t.processes > 1 else [t] for t in tasks]
    done: list[list] = [[] for _ in tasks]
    open_ = list(range(len(tasks)))
    for r in range(max((len(p) for p in parts), default=0)):
        for i in open_ if r % 2 == 0 else open_[::-1]:
            result = run_one(parts[i][r])
            done[i].append(result)
            if len(parts[i]) == 1:
                on_result(result)
            elif len(done[i]) == len(parts[i]) or not result.ok:
                on_result(merge(done[i], tasks[i].timing, asked=len(parts[i])))
        open_ = [i for i in open_ if len(done[i]) < len(parts[i]) and done[i][-1].ok]


def merge(results: list[Measurement], timing: dict, asked: int | None = None) -> Measurement:
    """One Measurement from several processes' results of the same task: pooled samples for the
    percentiles, the interval from the processes' spread. `asked` processes were planned; those
    that neither succeeded nor failed were not run (an earlier one failed)."""
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
    low, high = rerun_interval(medians)
    stats = dataclasses.replace(stats, ci_low_ms=min([low] + [lat["ci_low_ms"] for lat in latencies]),
                                ci_high_ms=max([high] + [lat["ci_high_ms"] for lat in latencies]))
    busy = [m.extra.get("contention") for m in ok if (m.extra.get("contention") or {}).get("busy")]
    extra = dict(first.extra, processes={
        "count": len(ok), "failed": len(results) - len(ok), "not_run": max(0, (asked or len(results)) - len(results)),
        "medians_ms": medians,
        "spread": max(medians) / min(medians) if min(medians) > 0 else None,
        "interval": "95% prediction interval of the median of a rerun in as many processes, from the processes' "
                    "medians (t, log scale), at least as wide as every process's own median interval"})
    if busy:
        extra["contention"] = busy[0]
    if any(m.extra.get("paired") for m in ok):
        extra["paired"] = merge_pairs([m.extra.get("paired") for m in ok])
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
