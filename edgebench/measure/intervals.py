"""Intervals from several processes' medians: where a rerun's median lands, and a speedup paired
by round. On the log scale, since latency ratios are what varies between processes, and without
scipy (the measure layer runs on the light install)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Two-sided 95% quantiles of Student's t, by degrees of freedom; beyond 30 the normal's 1.96 is
# within 4%.
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
    return ratio_interval(np.asarray(base_medians, dtype=np.float64) / np.asarray(medians, dtype=np.float64))


def ratio_interval(ratios: Sequence[float] | np.ndarray) -> tuple[float, float, float] | None:
    """Ratios measured in n pairs (processes): their geometric mean, and where a rerun in as many
    pairs lands (95%, t * s * sqrt(2/n) on the logs). None with fewer than two."""
    logs = np.log(np.asarray(ratios, dtype=np.float64))
    n = len(logs)
    if n < 2 or not np.all(np.isfinite(logs)):
        return None
    t = T_975[n - 2] if n - 2 < len(T_975) else 1.96
    half = t * float(logs.std(ddof=1)) * float(np.sqrt(2 / n))
    mean = float(logs.mean())
    return float(np.exp(mean)), float(np.exp(mean - half)), float(np.exp(mean + half))
