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


def test_runtimes_without_a_per_call_clock_give_none(tiny_onnx, digits):
    _, wall, own = _run("onnxruntime", tiny_onnx["onnx"], digits)
    assert own == [] and len(wall) >= 20


def test_onnxruntime_io_binding_outputs_equal_plain_run(tiny_onnx, digits):
    import onnxruntime as ort

    runner = create_runner("onnxruntime")
    runner.load(tiny_onnx["onnx"], Placement("cpu", "fp32", 1))
    plain = ort.InferenceSession(str(tiny_onnx["onnx"]), providers=["CPUExecutionProvider"])
    feeds = [{"input": np.ascontiguousarray(digits.eval.x[i:i + 1])} for i in range(3)]
    # The same feed twice (bound once), then new feeds (re-bound); earlier outputs must not be overwritten.
    got = [runner.infer(feeds[0]), runner.infer(feeds[0]), runner.infer(feeds[1]), runner.infer(feeds[2])]
    want = [plain.run(None, f) for f in (feeds[0], feeds[0], feeds[1], feeds[2])]
    runner.close()
    assert not np.array_equal(want[2][0], want[3][0])
    for g, w in zip(got, want):
        assert len(g) == len(w)
        for a, b in zip(g, w):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_onnxruntime_profiler_gives_a_figure_per_run_of_a_separate_pass(tiny_onnx, digits):
    runner = create_runner("onnxruntime")
    runner.load(tiny_onnx["onnx"], Placement("cpu", "fp32", 1))
    x = {"input": np.ascontiguousarray(digits.eval.x[:1])}
    # Side by side in one process: the timed (unprofiled) calls, then the profiled pass.
    stats, wall = measure(runner, x, QUICK)
    profiled = runner.profiled_latency_ms(x, 15)
    runner.close()
    assert len(profiled) == 15 and all(v > 0 for v in profiled)
    # ORT's model_run is measured inside Run, so it is never far below the Python call around an
    # unprofiled Run; the profiler's own cost can only raise it (hence the wide upper margin).
    ratio = float(np.median(profiled)) / stats.median_ms
    assert 0.2 < ratio < 20


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


def test_a_profiled_pass_is_recorded_but_never_ranks():
    from edgebench.measure.timing import summarize

    wall = np.array([1.0, 1.1, 1.2] * 10)
    stats = summarize(wall, QUICK, 3, 0.1, "ci-reached")
    task = MeasureTask(key="k", candidate="c", backend="onnxruntime", artifact="a", processor="cpu", precision="fp32",
                       device="host", measured_on="here", eval_data="e", num_classes=10, timing={},
                       options={"clock": "runtime"})
    extra: dict = {}
    kept, samples = choose_clock(task, stats, wall, [], extra, [2.0, 2.2, 2.4] * 5)
    assert kept is stats and samples is wall and extra["ranked_by"] == "wall"
    clock = extra["runtime_clock"]
    assert clock["basis"] == "separate profiled pass" and clock["median_ms"] == 2.2 and clock["iterations"] == 15
    assert abs(clock["to_wall_median"] - 2.0) < 1e-9 and "x2.00" in extra["clock_note"]
    # The per-call clock wins when there is one, and says so.
    extra = {}
    kept, _ = choose_clock(task, stats, wall, [0.9] * 30, extra, [2.0] * 5)
    assert kept.median_ms == 0.9 and extra["runtime_clock"]["basis"] == "per timed call"
