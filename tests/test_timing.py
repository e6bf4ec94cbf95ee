import numpy as np
import pytest

from edgebench.measure.timing import TimingConfig, measure, median_ci


class SleepRunner:
    """A runner whose latency is known, to test the timing loop itself (not a runtime)."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.calls = 0
        self.syncs = 0

    def infer(self, x):
        import time

        self.calls += 1
        end = time.perf_counter() + self.seconds
        while time.perf_counter() < end:
            pass
        return x

    def synchronize(self):
        self.syncs += 1


def test_median_ci_contains_true_median_at_stated_rate():
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(400):
        s = np.sort(rng.lognormal(0.0, 0.5, size=101))
        lo, hi = median_ci(s, 0.95)
        hits += lo <= 1.0 <= hi  # the lognormal(0, s) median is exactly 1
    assert 0.92 <= hits / 400 <= 0.99


def test_measure_recovers_known_latency_and_records_everything():
    runner = SleepRunner(0.002)
    stats, samples = measure(runner, np.zeros(1), TimingConfig(warmup_iterations=3, warmup_s=0.0, min_iterations=20,
                                                              time_budget_s=1.0, target_ci=0.05))
    # The minimum is robust to preemption on a loaded machine; the median must not undercut it.
    assert 1.95 < stats.min_ms < 2.4
    assert stats.median_ms >= stats.min_ms
    assert stats.ci_low_ms <= stats.median_ms <= stats.ci_high_ms
    assert stats.p99_ms >= stats.p90_ms >= stats.median_ms >= stats.min_ms
    assert stats.iterations == len(samples) >= 20
    assert runner.syncs == runner.calls  # synchronize is inside every timed iteration
    assert stats.stop_reason in ("ci-reached", "time-budget")


def test_measure_stops_on_time_budget():
    runner = SleepRunner(0.01)
    stats, _ = measure(runner, np.zeros(1), TimingConfig(warmup_iterations=1, warmup_s=0.0, min_iterations=1000,
                                                        time_budget_s=0.2))
    assert stats.stop_reason == "time-budget"
    assert stats.total_s < 0.5


@pytest.mark.parametrize("n", [1, 5, 7])
def test_median_ci_small_samples(n):
    s = np.sort(np.arange(n, dtype=float))
    lo, hi = median_ci(s)
    assert lo <= np.median(s) <= hi
