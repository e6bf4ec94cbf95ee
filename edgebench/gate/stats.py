"""Statistics of the latency gate: is `current` slower than `baseline`, by how much, and is it noise?

Following asv, a slowdown counts only when it is both larger than the threshold and statistically
significant. Two pieces of evidence are used together:

- a one-sided test: Mann-Whitney U (current samples tend to be larger) for p50, as asv does; for
  p90 and p99, whose changes Mann-Whitney barely sees, the share of bootstrap ratios at or below 1;
- a bootstrap confidence interval of the ratio current/baseline of the gated percentile (p50, p90
  or p99), which must lie above 1.

When the samples were taken interleaved (blocks A B B A ...), round r of the baseline and round r
of the current model ran at nearly the same moment, under the same background load. The bootstrap
then resamples whole rounds, keeping each pair together, so that load that changes from round to
round widens the interval instead of being mistaken for a difference between the models.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy.stats import mannwhitneyu

from edgebench.core.errors import UsageError

METRICS = {"p50": 50.0, "p90": 90.0, "p99": 99.0}


@dataclass(frozen=True)
class LatencyComparison:
    metric: str  # p50 | p90 | p99
    baseline_ms: float
    current_ms: float
    ratio: float  # current / baseline of the metric; > 1 is slower
    ci_low: float
    ci_high: float
    confidence: float
    p_value: float  # one-sided, in the direction of the change (slower, or faster)
    test: str
    significant: bool
    verdict: str  # "regression" | "improvement" | "pass" | "noisy"
    n_baseline: int
    n_current: int

    @property
    def change_pct(self) -> float:
        return (self.ratio - 1.0) * 100.0


def bootstrap_ratios(baseline: np.ndarray, current: np.ndarray, percentile: float = 50.0, *,
                     resamples: int = 2000, seed: int = 0, block: Optional[int] = None) -> np.ndarray:
    """Bootstrap distribution of percentile(current) / percentile(baseline).

    With `block`, both arrays hold the same number of rounds of `block` samples each (interleaved
    measurement) and whole rounds are resampled in pairs; otherwise samples are resampled
    independently. Seeded, so the same samples always give the same answer."""
    rng = np.random.default_rng(seed)
    base, cur = np.asarray(baseline, dtype=np.float64), np.asarray(current, dtype=np.float64)
    # The statistic is computed in chunks so that memory stays bounded for long measurements.
    chunk = max(1, int(4e6 // max(len(base), len(cur))))
    ratios = []
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        if block and len(base) == len(cur) and len(base) % block == 0 and len(base) // block >= 2:
            rounds = len(base) // block
            picks = rng.integers(0, rounds, size=(size, rounds))
            b = base.reshape(rounds, block)[picks].reshape(size, -1)
            c = cur.reshape(rounds, block)[picks].reshape(size, -1)
        else:
            b = base[rng.integers(0, len(base), size=(size, len(base)))]
            c = cur[rng.integers(0, len(cur), size=(size, len(cur)))]
        ratios.append(np.percentile(c, percentile, axis=1) / np.percentile(b, percentile, axis=1))
    return np.concatenate(ratios)


def bootstrap_ratio_ci(baseline: np.ndarray, current: np.ndarray, percentile: float = 50.0, *,
                       confidence: float = 0.95, resamples: int = 2000, seed: int = 0,
                       block: Optional[int] = None) -> tuple[float, float]:
    """Percentile-bootstrap CI of percentile(current) / percentile(baseline)."""
    ratios = bootstrap_ratios(baseline, current, percentile, resamples=resamples, seed=seed, block=block)
    return _interval(ratios, confidence)


def _interval(ratios: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2.0 * 100.0
    lo, hi = np.percentile(ratios, [tail, 100.0 - tail])
    return float(lo), float(hi)


def mann_whitney_greater(baseline: np.ndarray, current: np.ndarray) -> float:
    """p-value of the one-sided test that current latencies tend to exceed baseline latencies."""
    if len(baseline) == 0 or len(current) == 0:
        return 1.0
    if np.ptp(np.concatenate([baseline, current])) == 0:
        return 1.0  # all samples equal: no evidence either way (scipy would warn and return nan)
    return float(mannwhitneyu(current, baseline, alternative="greater").pvalue)


def compare_latency(baseline, current, *, metric: str = "p50", max_slowdown: float = 0.05, alpha: float = 0.002,
                    confidence: float = 0.95, resamples: int = 2000, seed: int = 0,
                    block: Optional[int] = None) -> LatencyComparison:
    """Verdict on two latency samples (milliseconds).

    regression:  ratio > 1 + max_slowdown, Mann-Whitney p < alpha, and the CI lies above 1.
    improvement: the mirror image (faster by more than the threshold, significantly).
    noisy:       beyond the threshold, but not significant; reported, never a failure.
    pass:        otherwise.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}")
    base = np.asarray(baseline, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    q = METRICS[metric]
    base_v, cur_v = float(np.percentile(base, q)), float(np.percentile(cur, q))
    ratio = cur_v / base_v
    ratios = bootstrap_ratios(base, cur, q, resamples=resamples, seed=seed, block=block)
    lo, hi = _interval(ratios, confidence)
    if metric == "p50":
        test = "Mann-Whitney U, one-sided"
        p_slower, p_faster = mann_whitney_greater(base, cur), mann_whitney_greater(cur, base)
    else:
        # Mann-Whitney compares whole distributions and barely notices a change confined to the tail
        # (a 2x stall in 20% of inferences gives p ~ 0.1); the bootstrap of the percentile itself does.
        test = "bootstrap of the percentile, one-sided"
        p_slower = float((1 + np.sum(ratios <= 1.0)) / (len(ratios) + 1))
        p_faster = float((1 + np.sum(ratios >= 1.0)) / (len(ratios) + 1))
    if ratio > 1.0 + max_slowdown:
        significant = p_slower < alpha and lo > 1.0
        verdict = "regression" if significant else "noisy"
        p_value = p_slower
    elif ratio < 1.0 / (1.0 + max_slowdown):
        significant = p_faster < alpha and hi < 1.0
        verdict = "improvement" if significant else "noisy"
        p_value = p_faster
    else:
        significant = p_slower < alpha and lo > 1.0
        verdict, p_value = "pass", p_slower
    return LatencyComparison(metric=metric, baseline_ms=base_v, current_ms=cur_v, ratio=ratio, ci_low=lo, ci_high=hi,
                             confidence=confidence, p_value=p_value, test=test,
                             significant=significant, verdict=verdict, n_baseline=len(base), n_current=len(cur))


def parse_fraction(text: str, what: str) -> float:
    """'5%' -> 0.05, '0.05' -> 0.05; a bare number of 1 or more is refused as ambiguous."""
    raw = str(text).strip()
    try:
        value = float(raw[:-1]) / 100.0 if raw.endswith("%") else float(raw)
    except ValueError:
        raise UsageError(f"{what} must be a percentage such as 5% or a fraction such as 0.05, not '{raw}'") from None
    if not raw.endswith("%") and value >= 1.0:
        raise UsageError(f"{what} '{raw}' is ambiguous; write {raw}% or {value / 100:g}")
    if value < 0:
        raise UsageError(f"{what} must not be negative, got '{raw}'")
    return value
