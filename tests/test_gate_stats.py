"""The gate's statistics on synthetic samples whose answer is known."""
import math

import numpy as np
import pytest

from edgebench.core.errors import UsageError
from edgebench.gate.stats import bootstrap_ratio_ci, compare_latency, mann_whitney_greater, parse_fraction
from edgebench.measure.timing import quantile_ci


def lognormal(seed, n=400, scale=1.0, sigma=0.05):
    return np.random.default_rng(seed).lognormal(math.log(scale), sigma, n)


def test_same_distribution_never_fails_the_gate():
    verdicts = [compare_latency(lognormal(2 * s), lognormal(2 * s + 1), resamples=300, seed=s).verdict
                for s in range(30)]
    assert verdicts == ["pass"] * 30


def test_ten_percent_slower_is_a_regression_with_the_right_ratio():
    r = compare_latency(lognormal(1), lognormal(2, scale=1.10), max_slowdown=0.05)
    assert r.verdict == "regression" and r.significant
    assert r.ratio == pytest.approx(1.10, abs=0.015)
    assert r.ci_low < 1.10 < r.ci_high and r.ci_low > 1.05
    assert r.p_value < 1e-10


def test_small_significant_slowdown_below_threshold_passes():
    r = compare_latency(lognormal(3, n=4000), lognormal(4, n=4000, scale=1.02), max_slowdown=0.05)
    assert r.significant and r.verdict == "pass"
    assert r.ratio == pytest.approx(1.02, abs=0.005)


def test_large_but_not_significant_slowdown_is_noisy_not_a_failure():
    base = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    r = compare_latency(base, base * 1.2, max_slowdown=0.05)
    assert r.ratio == pytest.approx(1.2)
    assert r.verdict == "noisy" and not r.significant and r.p_value > 0.1


def test_faster_is_an_improvement():
    r = compare_latency(lognormal(5), lognormal(6, scale=0.8))
    assert r.verdict == "improvement" and r.ci_high < 1.0 and r.p_value < 1e-10


def test_tail_metric_sees_what_the_median_does_not():
    rng = np.random.default_rng(7)
    base = rng.lognormal(0, 0.05, 2000)
    cur = rng.lognormal(0, 0.05, 2000)
    tail = rng.random(2000) < 0.15  # 15% of current's inferences hit a 1.5x stall
    cur[tail] *= 1.5
    assert compare_latency(base, cur, metric="p50").verdict == "pass"
    p90 = compare_latency(base, cur, metric="p90")
    assert p90.verdict == "regression" and p90.ratio > 1.3


def test_bootstrap_interval_covers_the_true_ratio():
    covered = 0
    for s in range(40):
        lo, hi = bootstrap_ratio_ci(lognormal(100 + s, n=300), lognormal(200 + s, n=300, scale=1.1),
                                    resamples=400, seed=s)
        covered += lo <= 1.1 <= hi
    assert covered >= 34  # nominal 95%: 38 of 40 expected; 34 leaves room for chance


def test_paired_rounds_widen_the_interval_when_load_differs_between_rounds():
    """Each round of the current model met its own background load: sample-level resampling
    pretends the 25 samples of a round are independent; round-level resampling does not."""
    rng = np.random.default_rng(11)
    rounds, block = 20, 25
    load_b = np.repeat(rng.lognormal(0, 0.1, rounds), block)
    load_c = np.repeat(rng.lognormal(0, 0.1, rounds), block)
    base = load_b * rng.lognormal(0, 0.02, rounds * block)
    cur = load_c * rng.lognormal(0, 0.02, rounds * block)
    iid = bootstrap_ratio_ci(base, cur, resamples=1000)
    paired = bootstrap_ratio_ci(base, cur, resamples=1000, block=block)
    assert (paired[1] - paired[0]) > 1.5 * (iid[1] - iid[0])


def test_paired_rounds_cancel_load_shared_by_both_models():
    rng = np.random.default_rng(12)
    rounds, block = 30, 25
    load = np.repeat(rng.lognormal(0, 0.3, rounds), block)  # the runner's load swings a lot
    base = load * rng.lognormal(0, 0.02, rounds * block)
    cur = 1.1 * load * rng.lognormal(0, 0.02, rounds * block)
    r = compare_latency(base, cur, block=block)
    assert r.verdict == "regression" and r.ci_low > 1.05


def test_mann_whitney_edge_cases():
    same = np.ones(10)
    assert mann_whitney_greater(same, same) == 1.0
    assert mann_whitney_greater(np.array([]), same) == 1.0
    assert mann_whitney_greater(np.arange(20.0), np.arange(20.0) + 100) < 1e-6
    assert mann_whitney_greater(np.arange(20.0) + 100, np.arange(20.0)) > 0.99


def test_quantile_ci_covers_the_true_quantile():
    rng = np.random.default_rng(0)
    for q in (0.5, 0.9):
        truth = -math.log(1 - q)  # quantile of Exp(1)
        covered = 0
        for _ in range(200):
            lo, hi = quantile_ci(np.sort(rng.exponential(1.0, 500)), q)
            covered += lo <= truth <= hi
        assert 180 <= covered <= 200, (q, covered)


def test_quantile_ci_narrows_with_more_samples():
    rng = np.random.default_rng(1)
    small = quantile_ci(np.sort(rng.normal(10, 1, 100)), 0.9)
    large = quantile_ci(np.sort(rng.normal(10, 1, 10000)), 0.9)
    assert (large[1] - large[0]) < (small[1] - small[0]) / 5


@pytest.mark.parametrize("text, value", [("5%", 0.05), ("0.05", 0.05), ("12.5%", 0.125), ("0", 0.0)])
def test_parse_fraction(text, value):
    assert parse_fraction(text, "--max-slowdown") == pytest.approx(value)


@pytest.mark.parametrize("text", ["5", "abc", "-1%"])
def test_parse_fraction_refuses_ambiguous_or_bad(text):
    with pytest.raises(UsageError):
        parse_fraction(text, "--max-slowdown")
