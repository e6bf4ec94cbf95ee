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


# Two-sided 95% quantiles of Student's t, by degrees of freedom (the measure layer runs on the
# light install, without scipy); beyond 30 the normal's 1.96 is within 4%.
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def rerun_interval(medians: list[float], rerun_processes: int | None = None) -> tuple[float, float]:
    """Where a rerun's median lands (95%) when the rerun, too, measures in `rerun_processes`
    processes (default: as many as these): a prediction interval for the mean of m new processes,
    mean +- t * s * sqrt(1/n + 1/m), on the log of the n processes' medians (latency ratios are what
    varies between processes, not differences). A rerun's stated median pools its m processes, so
    it scatters less than one process's does: m = 1 gives sqrt(1 + 1/n), one more process. The
    range of n medians would cover one more process only (n-1)/(n+1) of the time: 50% with three."""
    logs = np.log(np.asarray([m for m in medians if m > 0], dtype=np.float64))
    n = len(logs)
    if n < 2:
        return (float(np.exp(logs[0])),) * 2 if n else (0.0, 0.0)
    m = rerun_processes or n
    t = T_975[n - 2] if n - 2 < len(T_975) else 1.96
    half = t * float(logs.std(ddof=1)) * float(np.sqrt(1 / n + 1 / m))
    return float(np.exp(logs.mean() - half)), float(np.exp(logs.mean() + half))


def paired_speedup(base_medians: Sequence[float], medians: Sequence[float]) -> tuple[float, float, float] | None:
    """The speedup of a configuration over its baseline, (estimate, low, high) at 95%, from their
    processes paired by round: round r ran process r of both, minutes from round r + 1, so a drift
    of this VM between rounds moves both and cancels in their ratio. The two rows' own intervals
    each carry that drift in full: their quotient spanned 0.3-6x where the paired ratio moved a
    few percent. Geometric mean of base_r / mine_r; the interval, as `rerun_interval`'s, predicts
    where a rerun in as many processes lands (t * s * sqrt(1/n + 1/n) on the logs), so that a
    report's intervals all mean the same thing. None when the rows were not measured in as many
    processes, or in fewer than two."""
    if len(base_medians) != len(medians) or len(medians) < 2 or min(*base_medians, *medians) <= 0:
        return None
    logs = np.log(np.asarray(base_medians, dtype=np.float64)) - np.log(np.asarray(medians, dtype=np.float64))
    n = len(logs)
    t = T_975[n - 2] if n - 2 < len(T_975) else 1.96
    half = t * float(logs.std(ddof=1)) * float(np.sqrt(2 / n))
    mean = float(logs.mean())
    return float(np.exp(mean)), float(np.exp(mean - half)), float(np.exp(mean + half))

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
