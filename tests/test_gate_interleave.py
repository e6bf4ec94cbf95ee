"""Interleaved gate: both models timed in one session on a real runtime, in a worker process."""
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from helpers.slow_model import add_dead_work

from edgebench.measure.timing import InterleavedConfig, measure_interleaved


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "edgebench.cli", *args], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, COLUMNS="200"))


def error_lines(proc):
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


def onnx_graph(path: Path, nodes, inputs, outputs, initializers=()):
    import onnx
    from onnx import helper

    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


class RecordingRunner:
    """Each inference advances a scripted clock by the next latency of its script and logs the
    runner's name, so the order of blocks and the stop round are exact whatever the machine is
    doing; `synchronize` adds `sync_ms` (asynchronous work that finishes there)."""

    def __init__(self, name, clock, log, latencies_ms, sync_ms=0.0):
        self.name, self.clock, self.log = name, clock, log
        self.script = list(latencies_ms)
        self.used = 0
        self.sync_ms = sync_ms

    def infer(self, x):
        self.log.append(self.name)
        self.clock.ns += round(self.script[self.used] * 1e6)
        self.used += 1
        return x

    def synchronize(self):
        self.clock.ns += round(self.sync_ms * 1e6)


def jittered(mean_ms, n=20_000, seed=0):
    """Latencies within +-20% of the mean: a CI of the median far narrower than 50%, never zero-wide."""
    return mean_ms * np.random.default_rng(seed).uniform(0.8, 1.2, n)


def visits(rounds, count):
    """The runner order a correct ABBA schedule gives: forward on even rounds, reversed on odd."""
    return [i for r in range(rounds) for i in (range(count) if r % 2 == 0 else range(count - 1, -1, -1))]


@pytest.mark.parametrize("count", [2, 3])
def test_measure_interleaved_alternates_blocks_and_stops_for_the_stated_reason(clock, count):
    log: list[str] = []
    names = "ABC"[:count]
    runners = [RecordingRunner(names[i], clock, log, jittered(1.0 + i, seed=i), sync_ms=0.25) for i in range(count)]
    config = InterleavedConfig(block_iterations=10, settle_iterations=2, min_rounds=4, target_ci=0.5, warmup_s=0.0,
                               time_budget_s=1e9)
    result = measure_interleaved(runners, [np.zeros(1)] * count, config)

    # A CI this loose is reached at the first check; the first check is at min_rounds, not before.
    assert result.stop_reason == "ci-reached" and result.rounds == 4
    per_visit = config.settle_iterations + config.block_iterations
    order = visits(result.rounds, count)
    assert log == [names[i] for i in order for _ in range(per_visit)]  # A B B A A B B A (A B C C B A ... for three)
    # Each runner's samples are its own timed iterations, settle iterations left out, synchronize counted.
    for i, runner in enumerate(runners):
        timed = np.concatenate([runner.script[v * per_visit + config.settle_iterations:(v + 1) * per_visit]
                                for v in range(result.rounds)])
        np.testing.assert_allclose(result.samples[i], timed + 0.25, atol=1e-6)
        assert result.stats[i].iterations == result.rounds * config.block_iterations
        assert result.stats[i].stop_reason == "ci-reached"


def test_measure_interleaved_stops_at_the_round_that_spends_the_budget_while_any_model_is_unsettled(clock):
    log: list[str] = []
    steady = RecordingRunner("A", clock, log, [1.0] * 20_000)  # zero-wide CI from the first round
    noisy = RecordingRunner("B", clock, log, [1.0, 3.0] * 10_000)  # a median CI as wide as the spread
    config = InterleavedConfig(block_iterations=10, settle_iterations=2, min_rounds=4, target_ci=0.05, warmup_s=0.0,
                               time_budget_s=0.3)
    result = measure_interleaved([steady, noisy], [np.zeros(1)] * 2, config)

    # A round is 12 calls of A at 1 ms and 12 of B at 1 or 3 ms: 36 ms. The ninth ends at 324 ms, the first past 300.
    assert result.stop_reason == "time-budget" and result.rounds == 9
    assert result.stats[0].total_s == pytest.approx(0.324)
    per_visit = config.settle_iterations + config.block_iterations
    assert log == [("A", "B")[i] for i in visits(result.rounds, 2) for _ in range(per_visit)]

    capped = measure_interleaved([RecordingRunner(n, clock, [], [1.0, 3.0] * 1000) for n in "AB"],
                                 [np.zeros(1)] * 2, replace(config, max_rounds=3, time_budget_s=1e9))
    assert capped.stop_reason == "max-rounds" and capped.rounds == 3


def test_measure_interleaved_times_a_real_runtime(tiny_onnx):
    from edgebench.backends import Placement, create_runner

    runners = []
    for _ in range(2):
        r = create_runner("onnxruntime")
        r.load(Path(tiny_onnx["onnx"]), Placement(threads=1))
        runners.append(r)
    x = {"input": np.zeros((1, 3, 32, 32), dtype=np.float32)}
    # A zero-wide target is never met by a real clock, so the budget stops it however loaded the machine is.
    capped = measure_interleaved(runners, [x, x], InterleavedConfig(block_iterations=10, min_rounds=4, target_ci=0.0,
                                                                    time_budget_s=0.3, warmup_s=0.05))
    assert capped.stop_reason == "time-budget" and capped.stats[0].total_s >= 0.3 and capped.rounds >= 2
    assert capped.stats[0].iterations == capped.stats[1].iterations == capped.rounds * 10
    assert all(len(s) == capped.rounds * 10 and np.all(s > 0) for s in capped.samples)


def test_identical_models_pass_and_a_much_slower_one_fails(tiny_onnx, tmp_path):
    slow = add_dead_work(Path(tiny_onnx["onnx"]), tmp_path / "slow.onnx", width=1024)
    same = run_cli("gate", "--baseline-model", str(tiny_onnx["onnx"]), "--current-model", str(tiny_onnx["onnx"]),
                   "--threads", "1", "--budget", "2", "--max-slowdown", "20%", "--data", "digits",
                   "--json", str(tmp_path / "same.json"))
    assert same.returncode == 0, same.stderr
    verdict = json.loads((tmp_path / "same.json").read_text())
    (comparison,) = verdict["comparisons"]
    latency, accuracy, size = comparison["checks"]
    assert latency["latency"]["n_baseline"] == latency["latency"]["n_current"] > 0
    assert accuracy["verdict"] == "pass" and accuracy["baseline"] == accuracy["current"] > 10  # chance is 10%
    assert size["baseline"] == size["current"]
    sessions = {m["extra"]["interleaved_session"] for m in verdict["measurements"]}
    assert len(sessions) == 1 and verdict["mode"] == "interleaved"

    slower = run_cli("gate", "--baseline-model", str(tiny_onnx["onnx"]), "--current-model", str(slow),
                     "--threads", "1", "--budget", "2", "--json", str(tmp_path / "slow.json"))
    assert slower.returncode == 10, slower.stderr
    assert len(error_lines(slower)) == 1 and "latency" in error_lines(slower)[0]
    verdict = json.loads((tmp_path / "slow.json").read_text())
    latency, accuracy, _ = verdict["comparisons"][0]["checks"]
    assert latency["verdict"] == "regression" and latency["latency"]["ratio"] > 1.5
    assert accuracy["verdict"] == "skipped"  # no --data: latency and size only


def test_a_crash_in_the_worker_is_a_recorded_failure(tiny_onnx, tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    broken = onnx_graph(tmp_path / "broken.onnx",
                        [helper.make_node("Reshape", ["input", "shape"], ["logits"])],
                        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])],
                        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)],
                        [numpy_helper.from_array(np.array([7, -1], dtype=np.int64), "shape")])
    proc = run_cli("gate", "--baseline-model", str(tiny_onnx["onnx"]), "--current-model", str(broken),
                   "--budget", "1")
    assert proc.returncode == 11, proc.stderr
    assert len(error_lines(proc)) == 1 and "interleaved measurement failed" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_models_are_one_line_errors(tiny_onnx, tmp_path):
    from onnx import TensorProto, helper

    from edgebench.core.errors import EdgebenchError
    from edgebench.gate.interleave import plan_task

    other = onnx_graph(tmp_path / "other.onnx", [helper.make_node("Identity", ["input"], ["logits"])],
                       [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 64, 64])],
                       [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3, 64, 64])])
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"definitely not protobuf")
    (tmp_path / "model.pt").write_bytes(b"x")
    cases = [(tmp_path / "missing.onnx", 3, "does not exist"), (corrupt, 4, "not a valid ONNX model"),
             (other, 5, "takes input"), (tmp_path / "model.pt", 2, "must be an .onnx")]
    for current, code, needle in cases:
        with pytest.raises(EdgebenchError) as info:
            plan_task(Path(tiny_onnx["onnx"]), current, "onnxruntime", {})
        assert info.value.exit_code == code and needle in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(EdgebenchError) as info:
        plan_task(Path(tiny_onnx["onnx"]), Path(tiny_onnx["onnx"]), "tensorrtt", {})
    assert info.value.exit_code == 3 and "unknown runtime" in str(info.value)


@pytest.mark.parametrize("width", [0, 64])
def test_dead_work_keeps_outputs(tiny_onnx, tmp_path, width):
    import onnxruntime as ort

    slow = add_dead_work(Path(tiny_onnx["onnx"]), tmp_path / "slow.onnx", width=width)
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    outs = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
            for p in (tiny_onnx["onnx"], slow)]
    np.testing.assert_array_equal(outs[0], outs[1])


def two_input_model(path: Path, weights: np.ndarray) -> Path:
    from onnx import TensorProto, helper, numpy_helper

    return onnx_graph(path, [helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("MatMul", ["s", "w"], ["logits"])],
                      [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4]) for n in ("a", "b")],
                      [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])],
                      [numpy_helper.from_array(weights.astype(np.float32), "w")])


def test_accuracy_of_a_two_input_model_from_an_npz_keyed_by_input_name(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3))
    baseline = two_input_model(tmp_path / "base.onnx", w)
    current = two_input_model(tmp_path / "cur.onnx", w[:, [1, 2, 0]])  # classes shuffled: accuracy collapses
    a, b = rng.standard_normal((40, 1, 4)), rng.standard_normal((40, 1, 4))
    targets = ((a + b)[:, 0] @ w).argmax(1)  # the baseline's own predictions: it scores 100%
    np.savez(tmp_path / "data.npz", a=a.astype(np.float32), b=b.astype(np.float32), targets=targets)
    proc = run_cli("gate", "--baseline-model", str(baseline), "--current-model", str(current), "--threads", "1",
                   "--budget", "1", "--data", f"npz:{tmp_path / 'data.npz'}", "--json", str(tmp_path / "v.json"))
    assert proc.returncode == 10 and "Traceback" not in proc.stderr, proc.stderr
    _, accuracy, _ = json.loads((tmp_path / "v.json").read_text())["comparisons"][0]["checks"]
    assert accuracy["verdict"] == "regression" and accuracy["baseline"] == 100.0 and accuracy["current"] < 90

    # An array named for no input, and an input without its array: one line naming both.
    np.savez(tmp_path / "bad.npz", a=a.astype(np.float32), bee=b.astype(np.float32), targets=targets)
    bad = run_cli("gate", "--baseline-model", str(baseline), "--current-model", str(baseline), "--budget", "1",
                  "--data", f"npz:{tmp_path / 'bad.npz'}")
    assert bad.returncode == 2 and len(error_lines(bad)) == 1 and "Traceback" not in bad.stderr, bad.stderr
    assert "missing 'b'" in bad.stderr and "extra 'bee'" in bad.stderr
