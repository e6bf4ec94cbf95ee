"""A configuration measured in several worker processes states an interval that spans them."""
from __future__ import annotations

import numpy as np

from edgebench.core.records import Measurement
from edgebench.measure.processes import merge
from edgebench.measure.worker import MeasureTask, run_isolated


def _m(samples, busy=False):
    s = np.sort(np.asarray(samples))
    lat = {"median_ms": float(np.median(s)), "ci_low_ms": float(s[len(s) // 2 - 1]),
           "ci_high_ms": float(s[len(s) // 2 + 1]), "warmup_iterations": 3, "total_s": 0.1}
    return Measurement(key="k", candidate="c", backend="onnxruntime", processor="cpu", precision="fp32",
                       device="host", source="measured", status="ok", latency=lat, samples_ms=tuple(samples),
                       extra={"contention": {"busy": busy, "reasons": ["x"] if busy else []}})


def test_merge_interval_spans_the_processes():
    fast, slow = _m([1.0, 1.01, 1.02] * 10), _m([2.0, 2.01, 2.02] * 10, busy=True)
    merged = merge([fast, slow], {})
    lat = merged.latency
    assert lat["ci_low_ms"] <= 1.01 and lat["ci_high_ms"] >= 2.01  # the single-process intervals were 2% wide
    assert merged.extra["processes"]["count"] == 2 and merged.extra["processes"]["spread"] > 1.9
    assert len(merged.samples_ms) == 60 and merged.extra["contention"]["busy"]


def test_run_isolated_in_two_processes(tmp_path, tiny_onnx, digits):
    from edgebench.measure.eval_sets import write_labelled_eval_set

    data = tmp_path / "eval.npz"
    write_labelled_eval_set(data, "input", digits.eval.x[:64], digits.eval.y[:64])
    task = MeasureTask(key="k", candidate="c", backend="onnxruntime", artifact=str(tiny_onnx["onnx"]),
                       processor="cpu", precision="fp32", device="host", measured_on="here", eval_data=str(data),
                       num_classes=10, timeout_s=300, processes=2, layer_profile=False, score=True,
                       timing={"time_budget_s": 0.4, "min_iterations": 20, "warmup_iterations": 3})
    m = run_isolated(task)
    assert m.ok and m.extra["processes"]["count"] == 2 and len(m.extra["processes"]["medians_ms"]) == 2
    assert m.accuracy is not None and m.latency["stop_reason"] == "processes"
    assert m.latency["ci_low_ms"] <= min(m.extra["processes"]["medians_ms"])
    assert m.latency["ci_high_ms"] >= max(m.extra["processes"]["medians_ms"])


def test_rerun_interval_covers_a_rerun_about_95_percent_of_the_time():
    """The stated interval predicts a rerun's median: simulated processes whose medians scatter
    log-normally (as they do between processes here), seeded. A rerun in one process, and a rerun
    in as many processes as the first run (its median pools them: the centre of their medians)."""
    import numpy as np

    from edgebench.measure.intervals import rerun_interval

    rng = np.random.default_rng(0)
    inside = inside_pooled = 0
    trials = 4000
    for _ in range(trials):
        medians = np.exp(rng.normal(0.0, 0.2, size=4))
        pooled = float(np.exp(rng.normal(0.0, 0.2, size=4).mean()))
        low, high = rerun_interval(list(medians))
        inside_pooled += low <= pooled <= high
    assert 0.92 <= inside_pooled / trials <= 0.98
    inside_range = 0
    for _ in range(trials):
        medians = np.exp(rng.normal(0.0, 0.2, size=4))
        rerun = float(np.exp(rng.normal(0.0, 0.2)))
        low, high = rerun_interval(list(medians), rerun_processes=1)
        inside += low <= rerun <= high
        inside_range += medians.min() <= rerun <= medians.max()
    assert 0.92 <= inside / trials <= 0.98
    # the range of the medians, which the interval used to be, covers (n-1)/(n+1) = 60% of reruns
    assert 0.55 <= inside_range / trials <= 0.65


def test_rerun_interval_of_one_process_is_its_median():
    from edgebench.measure.intervals import rerun_interval

    assert rerun_interval([2.0]) == (2.0, 2.0)


def _task(key, processes):
    return MeasureTask(key=key, candidate=key, backend="onnxruntime", artifact="a.onnx", processor="cpu",
                       precision="fp32", device="host", measured_on="here", eval_data="e.npz", num_classes=10,
                       processes=processes, score=True, layer_profile=True, timing={"time_budget_s": 1.0})


def test_processes_are_interleaved_across_configurations():
    """Each configuration's processes spread over the stage (ABBA order), not one after another, so a
    drift over minutes widens every configuration's interval instead of shifting one's median."""
    from edgebench.measure.processes import run_interleaved

    order, rows = [], []

    def run_one(task):
        order.append(task.key)
        return _m([1.0 + 0.01 * len(order)] * 5)

    run_interleaved([_task("a", 3), _task("b", 3), _task("c", 3)], run_one, rows.append)
    assert order == ["a", "b", "c", "c", "b", "a", "a", "b", "c"]
    assert [r.extra["processes"]["count"] for r in rows] == [3, 3, 3]
    # Only the first process of each configuration scores accuracy and profiles layers.
    assert len(rows) == 3 and all(r.latency["stop_reason"] == "processes" for r in rows)


def test_interleaving_stops_a_configuration_after_a_failed_process():
    from edgebench.measure.processes import run_interleaved
    from edgebench.measure.worker import failed

    order, rows, scored = [], [], []

    def run_one(task):
        order.append(task.key)
        scored.append((task.key, task.score, task.layer_profile, task.processes))
        if task.key == "bad" and order.count("bad") == 2:
            return failed(task, "runtime crashed with SIGSEGV")
        return _m([1.0, 1.1, 1.2])

    run_interleaved([_task("ok", 3), _task("bad", 3), _task("single", 1)], run_one, rows.append)
    assert order == ["ok", "bad", "single", "bad", "ok", "ok"]  # "bad" runs no third process
    assert len(rows) == 3
    single, bad, ok = rows  # delivered when finished: round 0, round 1, round 2
    assert single.latency.get("stop_reason") != "processes" and "processes" not in single.extra
    assert {k: bad.extra["processes"][k] for k in ("count", "failed", "not_run")} == {"count": 1, "failed": 1,
                                                                                     "not_run": 1}
    assert ok.extra["processes"]["count"] == 3 and ok.extra["processes"]["not_run"] == 0
    # The single-process task is delivered as measured, in round 0, and every part runs in one process.
    assert all(p == 1 for *_, p in scored)
    assert [s for k, s, _, _ in scored if k == "ok"] == [True, False, False]


def test_paired_speedup_cancels_drift_shared_by_a_round():
    """Rounds drift together (the VM slows for a minute); the true speedup is 2x. The paired
    interval covers a rerun's paired speedup ~95% of the time and is far narrower than the
    quotient of the two rows' own intervals, which each carry the drift in full."""
    from edgebench.measure.intervals import paired_speedup, rerun_interval

    rng = np.random.default_rng(1)
    trials, inside, widths, quotient_widths = 3000, 0, [], []
    for _ in range(trials):
        drift = rng.normal(0.0, 0.4, size=5)  # shared by both configurations in a round
        base = np.exp(np.log(2.0) + drift + rng.normal(0.0, 0.05, size=5))
        mine = np.exp(drift + rng.normal(0.0, 0.05, size=5))
        estimate, low, high = paired_speedup(list(base), list(mine))
        assert low <= estimate <= high
        drift = rng.normal(0.0, 0.4, size=5)
        rerun = paired_speedup(list(np.exp(np.log(2.0) + drift + rng.normal(0.0, 0.05, size=5))),
                               list(np.exp(drift + rng.normal(0.0, 0.05, size=5))))
        inside += low <= rerun[0] <= high
        widths.append(high / low)
        (blo, bhi), (mlo, mhi) = rerun_interval(list(base)), rerun_interval(list(mine))
        quotient_widths.append((bhi / mlo) / (blo / mhi))
    assert 0.92 <= inside / trials <= 0.98
    assert np.median(widths) * 5 < np.median(quotient_widths)


def test_paired_speedup_needs_as_many_processes_on_both_sides():
    from edgebench.measure.intervals import paired_speedup

    assert paired_speedup([1.0, 1.1, 1.2], [0.5, 0.6]) is None
    assert paired_speedup([1.0], [0.5]) is None
    assert paired_speedup([], []) is None


def test_report_speedup_is_paired_when_both_rows_ran_in_processes():
    from edgebench.report.table import build_rows

    def row(candidate, medians):
        m = _m([float(np.median(medians))] * 9)
        lat = dict(m.latency, ci_low_ms=min(medians) * 0.5, ci_high_ms=max(medians) * 2)
        return Measurement(key=candidate, candidate=candidate, backend="onnxruntime", processor="cpu",
                           precision="fp32", device="host", source="measured", status="ok", latency=lat,
                           samples_ms=m.samples_ms, extra={"processes": {"count": len(medians), "medians_ms": medians}})

    rows = {r["candidate"]: r for r in build_rows([], [row("baseline", [1.0, 2.0, 1.5, 1.2]),
                                                      row("small", [0.5, 1.0, 0.75, 0.6])])}
    small = rows["small"]
    assert small["speedup_basis"] == "paired over 4 processes"
    assert abs(small["speedup"] - 2.0) < 1e-9 and abs(small["speedup_low"] - 2.0) < 1e-9  # every round: 2x
