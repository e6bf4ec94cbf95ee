"""A candidate's speedup over the FP32 baseline, timed against the baseline in the same process.

A process's placement (which core its threads land on, its memory layout, the runtime's one-time
choices) moved one artifact's median up to 2x between processes on this VM, while each process
stated a 2% interval. Two rows measured in different processes carry that in full, and so did
their quotient: a pruned model's speedup read 0.92x with a 95% interval of 0.11-7.65x. The gate
never had this problem because it loads both models in one process and alternates blocks of
inferences between them (timing.measure_interleaved), so what the process does to one it does to
the other. This module gives `compare` the same: each candidate's worker also loads the baseline
on the same runtime and placement and times the two interleaved; the ratio of their medians is
the row's speedup. Across several processes the per-process ratios give the interval, as rows'
medians do (intervals.ratio_interval).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import numpy as np

from edgebench.backends import BACKENDS, Placement, create_runner
from edgebench.measure.intervals import ratio_interval
from edgebench.measure.timing import InterleavedConfig, measure_interleaved, median_ci

# Seconds of the interleaved session, at most: it comes on top of the candidate's own timing.
# Small models reach the target interval in well under a second.
PAIR_BUDGET_S = 2.0


def pair_key(task) -> tuple:
    """Tasks whose speedups are read against one baseline row (report.table's group)."""
    return task.device, task.backend, task.processor, task.shape, task.batch_size, task.scenario


def pairable(task) -> bool:
    """Single-inference latency only: a throughput row ranks by samples per second, and a query
    served as several requests in flight cannot alternate with another model's. And not on a
    runtime whose start is costly: each candidate's worker would build the baseline's TensorRT
    engine again, minutes on a Jetson."""
    runner = BACKENDS.get(task.backend) if task.backend in BACKENDS else None
    return runner is not None and not runner.costly_start \
        and task.scenario in ("single-stream", "multi-stream") and not task.options.get("query_as_requests") \
        and not task.options.get("hint") == "throughput"


def pair_with_baseline(tasks: Sequence) -> list:
    """Each candidate's task, told which baseline task to time itself against: the FP32 baseline
    on the same runtime, processor, shapes, batch and scenario, when one is planned (stored
    already or not). The baseline's own tasks are unchanged."""
    baselines = {pair_key(t): t for t in tasks if t.candidate == "baseline" and t.precision == "fp32"}
    out = []
    for t in tasks:
        base = baselines.get(pair_key(t))
        if t.candidate != "baseline" and base is not None and pairable(t) and pairable(base):
            t = dataclasses.replace(t, pair={"key": base.key, "artifact": base.artifact, "precision": base.precision,
                                             "options": dict(base.options)})
        out.append(t)
    return out


def time_against_baseline(task, runner, sample: dict[str, np.ndarray], timing: dict, median_ms: float) -> dict:
    """Load the task's baseline beside `runner` (already loaded, its own median `median_ms`) and
    time the two interleaved; the speedup (the median of the rounds' ratios), its interval over
    rounds, and both medians. Runs in the worker."""
    pair = task.pair
    base = create_runner(task.backend)
    placement = Placement(task.processor, pair["precision"], task.threads, task.batch_size, dict(pair["options"]))
    base.prepare(Path(pair["artifact"]), placement)
    base.load(Path(pair["artifact"]), placement)
    try:
        config = InterleavedConfig(time_budget_s=min(PAIR_BUDGET_S, timing.get("time_budget_s", PAIR_BUDGET_S)),
                                   target_ci=timing.get("target_ci", 0.02), block_iterations=block_for(median_ms))
        result = measure_interleaved([base, runner], [sample, sample], config)
    finally:
        base.close()
    base_stats, stats = result.stats
    speedup, low, high = round_ratios(result.samples[0], result.samples[1], result.block_iterations)
    return {"baseline": pair["key"], "speedup": speedup, "low": low, "high": high,
            "baseline_median_ms": base_stats.median_ms, "median_ms": stats.median_ms, "rounds": result.rounds,
            "block_iterations": result.block_iterations, "stop_reason": result.stop_reason, "processes": 1,
            # Measured: 12 of 17 reruns' speedups fell inside a one-process interval, 17 of 17 inside
            # one from 5 processes (benchmarks/results/repeatability-inprocess*.md).
            "basis": "in-process A/B against the baseline, one process (its interval leaves out the spread "
                     "between processes: --processes 3 or more)"}


def block_for(median_ms: float) -> int:
    """Inferences per block: the gate's 25 for models of 2 ms or less, fewer for slower ones so
    that a block stays near 50 ms and several rounds fit the budget (3 at least, for the medians)."""
    return max(3, min(25, int(50 / max(median_ms, 1e-3))))


def round_ratios(base: np.ndarray, mine: np.ndarray, block: int) -> tuple[float, float, float]:
    """The speedup within one process and its 95% interval: each round's ratio of block medians
    (the two blocks ran back to back), their median and its distribution-free interval. With
    fewer than two rounds, the ratio of the two medians, with no interval to speak of."""
    rounds = min(len(base), len(mine)) // block
    if rounds < 2:
        ratio = float(np.median(base) / np.median(mine))
        return ratio, ratio, ratio
    per_round = np.sort([np.median(base[r * block:(r + 1) * block]) / np.median(mine[r * block:(r + 1) * block])
                         for r in range(rounds)])
    low, high = median_ci(per_round)
    return float(np.median(per_round)), low, high


def merge_pairs(pairs: Sequence[Optional[dict]]) -> Optional[dict]:
    """The speedup of several processes' sessions: the geometric mean of their ratios, with the
    interval where a rerun in as many processes lands (intervals.ratio_interval); one session
    keeps its own interval over rounds and says it is one process's."""
    done = [p for p in pairs if p and "speedup" in p]
    if not done:
        return next((p for p in pairs if p), None)  # a session's error, kept for the report
    if len(done) == 1:
        return done[0]
    interval = ratio_interval([p["speedup"] for p in done])
    if interval is None:
        return None
    speedup, low, high = interval
    return {"baseline": done[0]["baseline"], "speedup": speedup, "low": low, "high": high,
            "speedups": [p["speedup"] for p in done], "processes": len(done),
            "basis": f"in-process A/B against the baseline, over {len(done)} processes"}
