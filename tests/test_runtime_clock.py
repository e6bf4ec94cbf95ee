"""The runtime's own latency is recorded beside the wall clock, and can be what ranks."""
from __future__ import annotations

import numpy as np

from edgebench.backends import Placement, create_runner
from edgebench.measure.timing import TimingConfig, measure
from edgebench.measure.worker import MeasureTask, choose_clock

QUICK = TimingConfig(warmup_iterations=3, warmup_s=0.0, min_iterations=20, max_iterations=40, time_budget_s=0.5)


def _run(backend, path, digits):
    runner = create_runner(backend)
    runner.load(path, Placement("cpu", "fp32", 1))
    own: list = []
    x = {"input": np.ascontiguousarray(digits.eval.x[:1])}
    stats, wall = measure(runner, x, QUICK, runtime_samples=own)
    runner.close()
    return stats, wall, own


def test_openvino_reports_its_own_latency_inside_the_wall_time(tiny_onnx, digits):
    stats, wall, own = _run("openvino", tiny_onnx["openvino"], digits)
    assert len(own) == len(wall) and all(v > 0 for v in own)
    # The runtime's figure is part of the Python call it was read after (side by side, same calls).
    assert np.median(np.asarray(own) / wall) <= 1.0


def test_runtimes_without_a_clock_give_none(tiny_onnx, digits):
    _, wall, own = _run("onnxruntime", tiny_onnx["onnx"], digits)
    assert own == [] and len(wall) >= 20


def test_choose_clock_ranks_by_the_one_asked_for():
    from edgebench.measure.timing import summarize

    wall = np.array([1.0, 1.1, 1.2] * 10)
    own = [0.8, 0.9, 1.0] * 10
    stats = summarize(wall, QUICK, 3, 0.1, "ci-reached")
    task = MeasureTask(key="k", candidate="c", backend="openvino", artifact="a", processor="cpu", precision="fp32",
                       device="host", measured_on="here", eval_data="e", num_classes=10, timing={})
    extra: dict = {}
    kept, _ = choose_clock(task, stats, wall, own, extra)
    assert kept is stats and extra["ranked_by"] == "wall" and extra["runtime_clock"]["median_ms"] == 0.9
    runtime_task = MeasureTask.from_dict(dict(task.to_dict(), options={"clock": "runtime"}))
    extra = {}
    kept, samples = choose_clock(runtime_task, stats, wall, own, extra)
    assert kept.median_ms == 0.9 and extra["ranked_by"] == "runtime" and extra["wall_clock"]["median_ms"] == 1.1
    extra = {}
    assert choose_clock(runtime_task, stats, wall, [], extra)[0] is stats and extra["ranked_by"] == "wall"
