"""The timing loop. Its statistics and stop rules are checked against a scripted clock (exact
answers, whatever the machine is doing); that it reads a real clock in milliseconds is checked
with injected sleeps compared side by side, as ratios with margins, never as absolute times."""
import math
import time

import numpy as np
import pytest

from edgebench.measure.timing import TimingConfig, measure, median_ci


class ScriptedRunner:
    """Each inference advances a fake clock by the next latency of its script; `synchronize`
    advances it by `sync_ms`, standing for asynchronous work that only finishes there (a GPU)."""

    def __init__(self, clock, latencies_ms, sync_ms=0.0):
        self.clock = clock
        self.latencies = iter(latencies_ms)
        self.sync_ms = sync_ms

    def infer(self, x):
        self.clock.ns += round(next(self.latencies) * 1e6)
        return x

    def synchronize(self):
        self.clock.ns += round(self.sync_ms * 1e6)


def test_statistics_are_those_of_the_timed_iterations_only(clock):
    rng = np.random.default_rng(0)
    warmup = [50.0, 40.0, 30.0]  # cold iterations, far slower: they must not reach the statistics
    timed = rng.lognormal(0.0, 0.3, 200)
    runner = ScriptedRunner(clock, [*warmup, *timed], sync_ms=0.25)
    stats, samples = measure(runner, np.zeros(1), TimingConfig(warmup_iterations=3, warmup_s=0.0, min_iterations=10,
                                                              max_iterations=200, time_budget_s=1e9, target_ci=0.0))
    want = timed + 0.25  # synchronize is inside the timed region
    np.testing.assert_allclose(samples, want, atol=1e-6)
    assert stats.warmup_iterations == 3 and stats.iterations == 200 and stats.stop_reason == "max-iterations"
    assert stats.median_ms == pytest.approx(np.median(want))
    assert stats.mean_ms == pytest.approx(want.mean())
    assert stats.p90_ms == pytest.approx(np.percentile(want, 90))
    assert stats.p99_ms == pytest.approx(np.percentile(want, 99))
    assert stats.min_ms == pytest.approx(want.min())
    assert stats.std_ms == pytest.approx(want.std(ddof=1))
    assert (stats.ci_low_ms, stats.ci_high_ms) == pytest.approx(median_ci(np.sort(want)))
    assert stats.total_s == pytest.approx(want.sum() / 1e3)


def test_stops_once_the_median_is_known_to_the_target(clock):
    runner = ScriptedRunner(clock, [1.0] * 10_000)  # no spread: the CI is zero-width at the first check
    stats, _ = measure(runner, np.zeros(1), TimingConfig(warmup_iterations=1, warmup_s=0.0, min_iterations=30,
                                                        time_budget_s=1e9, target_ci=0.02))
    assert stats.stop_reason == "ci-reached" and stats.iterations == 30


def test_stops_on_the_time_budget_after_the_iteration_that_crossed_it(clock):
    noisy = [1.0, 3.0] * 5000  # a CI too wide for the target: only the budget can stop it
    stats, samples = measure(ScriptedRunner(clock, noisy), np.zeros(1),
                             TimingConfig(warmup_iterations=1, warmup_s=0.0, min_iterations=10, time_budget_s=0.1,
                                          target_ci=0.02))
    assert stats.stop_reason == "time-budget"
    assert samples[:-1].sum() < 100.0 <= samples.sum()  # 100 ms of budget: it stopped at the first sample past it
    assert stats.iterations == 50


def test_a_slow_model_gets_a_few_samples_not_one(clock):
    stats, _ = measure(ScriptedRunner(clock, [400.0] * 100), np.zeros(1),
                       TimingConfig(warmup_iterations=1, warmup_s=0.0, min_iterations=30, time_budget_s=0.5))
    assert stats.stop_reason == "time-budget" and stats.iterations == 5  # a median of five, past the budget


def test_max_iterations_caps_a_run_that_neither_converges_nor_runs_out_of_time(clock):
    stats, samples = measure(ScriptedRunner(clock, [1.0, 3.0] * 100), np.zeros(1),
                             TimingConfig(warmup_iterations=1, warmup_s=0.0, min_iterations=10, max_iterations=40,
                                          time_budget_s=1e9, target_ci=0.02))
    assert stats.stop_reason == "max-iterations" and stats.iterations == len(samples) == 40


class SleepingRunner:
    """A runner whose latency is a known, injected sleep (no CPU used, so a busy machine delays
    its wake-up a little rather than stealing whole time slices from it)."""

    def __init__(self, seconds):
        self.seconds = seconds

    def infer(self, x):
        time.sleep(self.seconds)
        return x

    def synchronize(self):
        pass


def test_median_follows_injected_latency_measured_side_by_side():
    short, long = SleepingRunner(0.001), SleepingRunner(0.003)
    medians = {short: [], long: []}
    config = TimingConfig(warmup_iterations=2, warmup_s=0.0, min_iterations=15, time_budget_s=0.1, target_ci=0.05)
    for _ in range(5):  # alternate, so both meet the same background load; keep each one's quietest round
        for runner in (short, long):
            medians[runner].append(measure(runner, np.zeros(1), config)[0].median_ms)
    a, b = min(medians[short]), min(medians[long])
    # A sleep never ends early, and the figures are milliseconds (not seconds or microseconds).
    assert a >= 1.0 and b >= 3.0, (a, b)
    # Three times the injected latency reads as about three times the median; wake-up delays on a
    # busy machine add the same small amount to both, which pulls the ratio below 3, not above.
    assert 1.7 <= b / a <= 3.3, (a, b)


def test_median_ci_contains_true_median_at_stated_rate():
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(400):
        s = np.sort(rng.lognormal(0.0, 0.5, size=101))
        lo, hi = median_ci(s, 0.95)
        hits += lo <= 1.0 <= hi  # the lognormal(0, s) median is exactly 1
    assert 0.92 <= hits / 400 <= 0.99


def _coverage(n: int, lo_rank: int, hi_rank: int) -> float:
    """P(X(lo) <= median <= X(hi)) for n samples of any continuous distribution (ranks from 1)."""
    return sum(math.comb(n, k) for k in range(lo_rank, hi_rank)) / 2 ** n


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_median_ci_is_the_narrowest_order_statistic_interval_at_its_confidence(confidence):
    # The normal approximation holds from six samples at the default 95%, from about twenty at others.
    for n in range(6 if confidence == 0.95 else 20, 301):
        lo, hi = median_ci(np.arange(n, dtype=float), confidence)  # the samples are their own ranks
        lo_rank, hi_rank = int(lo) + 1, int(hi) + 1
        full_range = (lo_rank, hi_rank) == (1, n)
        # Wide enough (to within the normal approximation), unless no interval can be...
        assert full_range or _coverage(n, lo_rank, hi_rank) >= confidence - 0.005, n
        # ...and no wider than it must be: one rank in on each side falls short.
        assert full_range or _coverage(n, lo_rank + 1, hi_rank - 1) < confidence, n
    # Below six samples no interval reaches 95%: it is the whole range.
    for n in range(1, 6):
        assert median_ci(np.arange(n, dtype=float), 0.95) == (0.0, float(n - 1))
