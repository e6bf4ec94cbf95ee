"""Throughput mode, batch sizes and MLPerf scenarios: several requests in flight per runtime, rows
keyed apart by batch and scenario, fixed-batch models declining, bad flags as one-line errors."""
import threading
import time

import numpy as np
import pytest

from edgebench.backends import Placement, create_runner
from edgebench.backends.base import ThreadStreams
from edgebench.core import validate
from edgebench.core.errors import IncompatibleError, UsageError
from edgebench.core.records import CandidateInfo, Measurement, measurement_key
from edgebench.measure.scenarios import batch_decline, batch_feed, parse_batch_sizes, parse_scenarios, run_over_batched
from edgebench.measure.throughput import ThroughputConfig, measure_throughput

QUICK = ThroughputConfig(warmup_s=0.05, time_budget_s=0.3)


def _export(path, dynamic_batch=True):
    import torch

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                 torch.nn.Flatten(), torch.nn.Linear(8, 4)).eval()
    axes = {"x": {0: "batch"}, "y": {0: "batch"}} if dynamic_batch else None
    torch.onnx.export(module, torch.zeros(1, 3, 16, 16), str(path), input_names=["x"], output_names=["y"],
                      dynamic_axes=axes, dynamo=False)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("throughput")
    return {"dynamic": _export(folder / "dynamic.onnx"), "fixed": _export(folder / "fixed.onnx", dynamic_batch=False)}


def _feed(batch):
    return {"x": np.random.default_rng(0).random((batch, 3, 16, 16), dtype=np.float32)}


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_throughput_mode_keeps_several_requests_in_flight(runtime, tiny):
    runner = create_runner(runtime)
    runner.load(tiny["dynamic"], Placement("cpu", "fp32", 2, 4, {"hint": "throughput", "streams": 2}))
    try:
        streams = runner.throughput_streams()
        stats, latency, samples = measure_throughput(streams, _feed(4), 4, QUICK)
    finally:
        runner.close()
    assert stats.in_flight > 1
    assert stats.completed >= stats.in_flight and stats.completed == len(samples) == latency.iterations
    assert stats.samples_per_s == pytest.approx(4 * stats.completed / stats.elapsed_s)
    assert stats.elapsed_s >= QUICK.time_budget_s and np.all(samples > 0)
    assert ("AsyncInferQueue" if runtime == "openvino" else "threads on one session") in stats.idiom


def test_thread_streams_overlap_and_every_request_is_counted():
    """The driver really has N requests running at once (a sleeping call stands in for a runtime
    that releases the GIL), and counts each completion once."""
    running, peak, lock = [0], [0], threading.Lock()

    def call(feed):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.01)
        with lock:
            running[0] -= 1

    stats, _, samples = measure_throughput(ThreadStreams([call] * 3, "3 sleepers"), {}, 2, QUICK)
    assert peak[0] == 3 and stats.in_flight == 3 and stats.completed == len(samples) >= 3
    assert all(s >= 9.0 for s in samples)  # each request's latency spans its own sleep


def test_stream_error_is_raised_not_swallowed():
    def broken(feed):
        raise RuntimeError("kernel exploded")

    with pytest.raises(RuntimeError, match="kernel exploded"):
        measure_throughput(ThreadStreams([broken, broken], "broken"), {}, 1, QUICK)


def test_runner_without_throughput_mode_says_so():
    from edgebench.backends.base import Runner

    class Plain(Runner):
        name, formats, devices, precisions = "plain", ("onnx",), ("cpu",), ("fp32",)

        @classmethod
        def availability(cls):
            raise NotImplementedError

        def load(self, artifact, placement):
            pass

        def infer(self, inputs):
            return []

    with pytest.raises(IncompatibleError, match="plain has no throughput mode"):
        Plain().throughput_streams()


def test_offline_measurement_end_to_end_in_the_worker(tiny, tmp_path):
    """The worker measures an offline row at batch 2 on ONNX Runtime: throughput recorded beside
    per-request latency, quality scored batch by batch, scenario and batch on the record."""
    from edgebench.measure.eval_sets import write_reference
    from edgebench.measure.worker import MeasureTask, execute

    eval_path = tmp_path / "eval-0.npz"
    np.savez(eval_path, **{"in:x": np.random.default_rng(1).random((5, 1, 3, 16, 16), dtype=np.float32)})
    reference = write_reference(tiny["dynamic"], eval_path, tmp_path / "reference-0.npz", 1)
    key = measurement_key("c", "onnxruntime", "cpu", "fp32", "host", 2, None, "offline")
    task = MeasureTask(key=key, candidate="c", backend="onnxruntime", artifact=str(tiny["dynamic"]), processor="cpu",
                       precision="fp32", device="host", measured_on="here", eval_data=str(eval_path), num_classes=4,
                       threads=2, batch_size=2, timing={"time_budget_s": 0.3, "warmup_s": 0.05},
                       options={"hint": "throughput", "streams": 2}, layer_profile=False, score=False,
                       reference=str(reference), scenario="offline")
    m = execute(task)
    assert m.ok and m.scenario == "offline" and m.batch_size == 2 and m.key.endswith("|b2|offline")
    assert m.throughput["in_flight"] == 2 and m.throughput["samples_per_s"] > 0
    assert m.quality["metric"] == "agreement" and m.quality["value"] > 0.999  # batched outputs split back per sample
    stored = validate.measurement(m.to_dict())
    assert (stored.scenario, stored.throughput) == (m.scenario, m.throughput)


def test_keys_keep_batches_and_scenarios_apart_and_single_stream_keys_unchanged():
    old = "c|onnxruntime|cpu|fp32|host|b1|1x3x16x16"
    assert measurement_key("c", "onnxruntime", "cpu", "fp32", "host", 1, "1x3x16x16") == old
    keys = {measurement_key("c", "onnxruntime", "cpu", "fp32", "host", b, "1x3x16x16", s)
            for b in (1, 8) for s in ("single-stream", "multi-stream", "offline")}
    assert len(keys) == 6


def test_plan_rows_per_batch_and_scenario_and_fixed_batch_declines(tiny, tmp_path):
    from edgebench.backends import Availability
    from edgebench.backends.host import local_device
    from edgebench.measure.plan import PlanSettings, plan_measurements
    from edgebench.measure.run_inputs import RunInputs, ShapeSet
    from edgebench.models.inputs import InputSpec

    inputs = RunInputs([ShapeSet("1x3x16x16", [InputSpec("x", (1, 3, 16, 16), "float32", "NCHW")], tmp_path / "e.npz")],
                       "random")

    def available(runtime):
        return Availability(True, processors=("cpu",))

    def plan(onnx, **settings):
        rows: list = []
        info = CandidateInfo(id="c", name="c", artifacts={"onnx": onnx.name})
        tasks = plan_measurements(info, local_device(), onnx.parent, PlanSettings(runtimes=["onnxruntime"], **settings),
                                  "here", inputs, available, rows)
        return tasks, rows

    tasks, rows = plan(tiny["dynamic"], batch_sizes=(1, 8), scenarios=("single-stream", "offline"))
    assert not rows
    assert sorted((t.scenario, t.batch_size) for t in tasks) == [("offline", 1), ("offline", 8),
                                                                 ("single-stream", 1), ("single-stream", 8)]
    assert len({t.key for t in tasks}) == 4
    eight = next(t for t in tasks if t.batch_size == 8 and t.scenario == "offline")
    assert eight.options["input_shapes"] == {"x": [8, 3, 16, 16]} and eight.options["hint"] == "throughput"

    tasks, rows = plan(tiny["fixed"], batch_sizes=(1, 8), scenarios=("single-stream", "multi-stream"))
    # Multi-stream on a model fixed at batch 1: a query of 8, keyed as any multi-stream row, served
    # as 8 batch-1 requests in flight; single-stream batch 8 still declines.
    assert [(t.scenario, t.batch_size) for t in tasks] == [("single-stream", 1), ("multi-stream", 8)]
    query = tasks[1]
    assert query.key.endswith("|b8|1x3x16x16|multi-stream") and query.options["input_shapes"] == {"x": [1, 3, 16, 16]}
    assert (query.options["query_as_requests"], query.options["streams"], query.options["hint"]) == (8, 8, "throughput")
    assert [(r.scenario, r.batch_size, r.status) for r in rows] == [("single-stream", 8, "skipped")]
    assert all("fixed batch dimension of 1" in r.error and "\n" not in r.error for r in rows)


def test_fixed_batch_multi_stream_declines_where_the_runtime_has_no_throughput_mode(tiny, tmp_path, monkeypatch):
    from edgebench.backends import Availability
    from edgebench.backends.host import local_device
    from edgebench.backends.onnxruntime_runner import OnnxRuntimeRunner
    from edgebench.measure.plan import PlanSettings, plan_measurements
    from edgebench.measure.run_inputs import RunInputs, ShapeSet
    from edgebench.models.inputs import InputSpec

    monkeypatch.setattr(OnnxRuntimeRunner, "has_throughput_mode", classmethod(lambda cls: False))
    inputs = RunInputs([ShapeSet("1x3x16x16", [InputSpec("x", (1, 3, 16, 16), "float32", "NCHW")], tmp_path / "e.npz")],
                       "random")
    rows: list = []
    tasks = plan_measurements(CandidateInfo(id="c", name="c", artifacts={"onnx": tiny["fixed"].name}), local_device(),
                              tiny["fixed"].parent, PlanSettings(runtimes=["onnxruntime"], scenarios=("multi-stream",)),
                              "here", inputs, lambda runtime: Availability(True, processors=("cpu",)), rows)
    assert not tasks and [(r.scenario, r.status) for r in rows] == [("multi-stream", "skipped")]
    assert "fixed batch dimension of 1" in rows[0].error and "no throughput mode" in rows[0].error


def test_a_query_of_requests_runs_them_together_and_times_to_the_last(tmp_path):
    """8 sleeping calls stand in for batch-1 requests of a runtime that releases the GIL: a query
    takes about one call's time, not eight (generous margin), and never less than one call."""
    from edgebench.backends.base import InFlight
    from edgebench.measure.throughput import measure_query_of_requests
    from edgebench.measure.timing import TimingConfig

    calls = [0]
    lock = threading.Lock()

    def call(feed):
        with lock:
            calls[0] += 1
        time.sleep(0.01)

    config = TimingConfig(warmup_iterations=1, warmup_s=0.0, min_iterations=5, max_iterations=20, time_budget_s=0.3)
    streams = ThreadStreams([call] * 8, "8 sleepers")
    try:
        stats, samples = measure_query_of_requests(streams, {}, 8, config)
    finally:
        streams.close()
    assert calls[0] == 8 * (stats.iterations + stats.warmup_iterations)  # exactly 8 requests per query
    assert np.all(samples >= 10.0) and stats.median_ms < 8 * 10.0 / 2
    with pytest.raises(IncompatibleError, match="keeps 2 requests in flight, not the query's 8"):
        measure_query_of_requests(ThreadStreams([call] * 2, "2 sleepers"), {}, 8, config)

    class Queue(InFlight):
        count, idiom = 8, "a queue"

        def run(self, inputs, started, finished):
            raise AssertionError("not reached")

    with pytest.raises(IncompatibleError, match="a queue: edgebench cannot issue exactly one request"):
        measure_query_of_requests(Queue(), {}, 8, config)


def test_fixed_batch_multi_stream_end_to_end_in_the_worker(tiny, tmp_path):
    """ONNX Runtime serves the 8-sample query of a batch-1 model as 8 requests in flight: p99 over
    queries, the row says how it was served, quality scored one sample at a time."""
    from edgebench.measure.eval_sets import write_reference
    from edgebench.measure.worker import MeasureTask, execute
    from edgebench.report.table import scenario_fields

    eval_path = tmp_path / "eval-0.npz"
    np.savez(eval_path, **{"in:x": np.random.default_rng(1).random((5, 1, 3, 16, 16), dtype=np.float32)})
    reference = write_reference(tiny["fixed"], eval_path, tmp_path / "reference-0.npz", 1)
    task = MeasureTask(key=measurement_key("c", "onnxruntime", "cpu", "fp32", "host", 8, None, "multi-stream"),
                       candidate="c", backend="onnxruntime", artifact=str(tiny["fixed"]), processor="cpu",
                       precision="fp32", device="host", measured_on="here", eval_data=str(eval_path), num_classes=4,
                       threads=2, batch_size=8, layer_profile=False, score=False, reference=str(reference),
                       timing={"time_budget_s": 0.3, "warmup_s": 0.05, "min_iterations": 5, "warmup_iterations": 2},
                       options={"hint": "throughput", "streams": 8, "query_as_requests": 8}, scenario="multi-stream")
    m = execute(task)
    assert m.ok and (m.scenario, m.batch_size) == ("multi-stream", 8) and m.latency["p99_ms"] > 0, m.error
    assert m.extra["served_as"].startswith("served as 8 batch-1 requests in flight (8 threads on one session")
    assert m.quality["metric"] == "agreement" and m.quality["value"] > 0.999
    assert "served as 8 batch-1 requests in flight" in scenario_fields(m)["scenario_text"]


def test_batch_helpers(tiny):
    assert batch_decline(8, {"x": [1, 3, 16, 16]}, tiny["fixed"]).startswith("the model's input 'x' has a fixed batch")
    assert batch_decline(8, {"x": [1, 3, 16, 16]}, tiny["dynamic"]) is None
    assert "a batch of 4" in batch_decline(8, {"x": [4, 3, 16, 16]}, None)
    feeds = [{"x": np.full((1, 2), i, np.float32)} for i in range(3)]
    assert batch_feed(feeds, 4)["x"][:, 0].tolist() == [0, 1, 2, 0]

    class Echo:
        def infer(self, feed):
            return [feed["x"] * 2]

    out = run_over_batched(Echo(), feeds, 2)[0]
    assert out.shape == (3, 1, 2) and out[:, 0, 0].tolist() == [0, 2, 4]


def test_flag_parsing():
    assert parse_scenarios(None) == ["single-stream"]
    assert parse_scenarios(["offline,single-stream", "offline", "MultiStream"]) == ["offline", "single-stream",
                                                                                    "multi-stream"]
    assert parse_batch_sizes("1, 8,8") == [1, 8]
    for bad in (["bogus"], ["offline,"]):
        with pytest.raises(UsageError, match="--scenario"):
            parse_scenarios(bad)
    for bad in ("0", "x", "-1"):
        with pytest.raises(UsageError, match="--batch-sizes"):
            parse_batch_sizes(bad)


@pytest.mark.parametrize("args, needle", [(["--scenario", "bogus"], "--scenario: 'bogus'"),
                                          (["--batch-sizes", "0"], "--batch-sizes: 0")])
def test_bad_scenario_flags_are_one_line_exit_2(args, needle, tmp_path):
    from test_cli import run_cli

    proc = run_cli("compare", "tiny-cnn", *args, "--runs-dir", str(tmp_path), cwd=tmp_path)
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and needle in lines[0], proc.stderr


def test_records_without_scenario_still_load_and_unknown_scenarios_do_not():
    row = Measurement(key="k", candidate="c", backend="onnxruntime", processor="cpu", precision="fp32", device="host",
                      source="measured", status="skipped", error="why").to_dict()
    del row["scenario"], row["throughput"]
    assert validate.measurement(row).scenario == "single-stream"
    with pytest.raises(validate.InvalidRecord, match="scenario"):
        validate.measurement(dict(row, scenario="server"))


def test_openvino_sets_the_batch_of_an_ir_converted_at_batch_1(tiny, tmp_path):
    """edgebench's IR is converted at batch 1 from an ONNX with a dynamic batch: batch 4 reshapes it."""
    import openvino as ov

    xml = tmp_path / "static.xml"
    ov.save_model(ov.convert_model(str(tiny["dynamic"]), input=[1, 3, 16, 16]), str(xml))
    runner = create_runner("openvino")
    runner.load(xml, Placement("cpu", "fp32", 1, 4))
    try:
        assert runner.infer(_feed(4))[0].shape == (4, 4)
    finally:
        runner.close()
