"""A candidate's speedup is timed against the baseline in the same worker process."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from helpers.slow_model import add_dead_work

from edgebench.core.records import Measurement
from edgebench.measure.pairing import merge_pairs, pair_with_baseline, round_ratios
from edgebench.measure.processes import merge
from edgebench.measure.worker import MeasureTask, run_isolated


def _task(candidate, backend="onnxruntime", precision="fp32", **kw):
    return MeasureTask(key=f"{candidate}/{backend}/{precision}", candidate=candidate, backend=backend,
                       artifact=f"/run/{candidate}.onnx", processor="cpu", precision=precision, device="host",
                       measured_on="here", eval_data="/run/eval.npz", num_classes=10, **kw)


def test_each_candidate_is_paired_with_the_fp32_baseline_of_its_runtime_and_group():
    tasks = [_task("baseline"), _task("baseline", "openvino"), _task("baseline", precision="int8"),
             _task("prune50"), _task("ptq", precision="int8"), _task("prune50", "openvino"),
             _task("prune50", "pytorch"),  # no baseline planned on pytorch: nothing to pair with
             _task("prune50", options={"hint": "throughput", "streams": 2}, scenario="offline"),
             _task("baseline", "tensorrt"), _task("prune50", "tensorrt")]
    paired = {t.key + t.scenario: t.pair for t in pair_with_baseline(tasks)}
    assert paired["prune50/onnxruntime/fp32single-stream"]["key"] == "baseline/onnxruntime/fp32"
    assert paired["ptq/onnxruntime/int8single-stream"]["artifact"] == "/run/baseline.onnx"
    assert paired["ptq/onnxruntime/int8single-stream"]["precision"] == "fp32"
    assert paired["prune50/openvino/fp32single-stream"]["key"] == "baseline/openvino/fp32"
    assert paired["prune50/pytorch/fp32single-stream"] is None
    assert paired["prune50/onnxruntime/fp32offline"] is None  # a throughput row is ranked by samples per second
    assert paired["prune50/tensorrt/fp32single-stream"] is None  # would build the baseline's engine again
    assert all(paired[k] is None for k in paired if k.startswith("baseline"))


def test_round_interval_brackets_the_ratio_and_narrows_with_agreeing_rounds():
    rng = np.random.default_rng(0)
    block, rounds = 10, 40
    drift = np.repeat(np.exp(rng.normal(0, 0.3, rounds)), block)  # the machine drifts from round to round
    base = 2.0 * drift * np.exp(rng.normal(0, 0.02, rounds * block))
    mine = 1.0 * drift * np.exp(rng.normal(0, 0.02, rounds * block))
    speedup, low, high = round_ratios(base, mine, block)
    assert low <= speedup <= high and low < 2.0 < high and high / low < 1.05  # the drift both share cancels


def test_several_sessions_merge_into_a_rerun_interval_and_an_error_is_kept():
    sessions = [{"baseline": "b", "speedup": 2.0 * f, "low": 1.9, "high": 2.1, "baseline_median_ms": 2.0 * f * m,
                 "median_ms": m} for f, m in ((1.0, 1.0), (1.05, 2.0), (0.95, 1.5))]
    merged = merge_pairs(sessions)
    assert merged["processes"] == 3 and "over 3 processes" in merged["basis"]
    assert merged["low"] < merged["speedup"] < merged["high"] and abs(merged["speedup"] - 2.0) < 0.05
    assert merge_pairs([None, {"error": "RuntimeError: x"}]) == {"error": "RuntimeError: x"}


def test_merge_of_processes_carries_the_paired_speedup():
    def m(speedup, median):
        lat = {"median_ms": median, "ci_low_ms": median * 0.99, "ci_high_ms": median * 1.01,
               "warmup_iterations": 1, "total_s": 0.1}
        return Measurement(key="k", candidate="c", backend="onnxruntime", processor="cpu", precision="fp32",
                           device="host", source="measured", status="ok", latency=lat, samples_ms=(median,) * 5,
                           extra={"paired": {"baseline": "b", "speedup": speedup, "baseline_median_ms": speedup * median,
                                             "median_ms": median, "low": 0, "high": 0}})

    merged = merge([m(1.5, 1.0), m(1.6, 2.0)], {})
    assert merged.extra["paired"]["processes"] == 2 and 1.5 < merged.extra["paired"]["speedup"] < 1.6


def test_a_worker_times_the_candidate_against_a_slower_baseline(tmp_path, tiny_onnx, digits):
    """Real runtimes in a real worker: the baseline carries dead work that makes it several times
    slower, so the in-process speedup is well above 1, whatever the machine's load does to both."""
    from edgebench.measure.eval_sets import write_labelled_eval_set

    data = tmp_path / "eval.npz"
    write_labelled_eval_set(data, "input", digits.eval.x[:32], digits.eval.y[:32])
    slow = add_dead_work(Path(tiny_onnx["onnx"]), tmp_path / "slow.onnx", width=1024)
    timing = {"time_budget_s": 0.5, "min_iterations": 20, "warmup_iterations": 3}
    base = MeasureTask(key="b", candidate="baseline", backend="onnxruntime", artifact=str(slow), processor="cpu",
                       precision="fp32", device="host", measured_on="here", eval_data=str(data), num_classes=10,
                       threads=1, timeout_s=300, layer_profile=False, timing=timing)
    cand = dataclasses.replace(base, key="c", candidate="fast", artifact=str(tiny_onnx["onnx"]))
    (_, task) = pair_with_baseline([base, cand])
    m = run_isolated(task)
    assert m.ok, m.error
    paired = m.extra["paired"]
    assert paired["baseline"] == "b" and paired["rounds"] >= 2 and paired["processes"] == 1
    assert paired["speedup"] > 1.5 and paired["low"] <= paired["speedup"] <= paired["high"]
    assert paired["baseline_median_ms"] > paired["median_ms"]


def test_a_baseline_that_cannot_load_leaves_the_row_and_says_why(tmp_path, tiny_onnx, digits):
    from edgebench.measure.eval_sets import write_labelled_eval_set

    data = tmp_path / "eval.npz"
    write_labelled_eval_set(data, "input", digits.eval.x[:16], digits.eval.y[:16])
    task = MeasureTask(key="c", candidate="fast", backend="onnxruntime", artifact=str(tiny_onnx["onnx"]),
                       processor="cpu", precision="fp32", device="host", measured_on="here", eval_data=str(data),
                       num_classes=10, threads=1, timeout_s=300, layer_profile=False,
                       timing={"time_budget_s": 0.2, "min_iterations": 10, "warmup_iterations": 2},
                       pair={"key": "b", "artifact": str(tmp_path / "missing.onnx"), "precision": "fp32", "options": {}})
    m = run_isolated(task)
    assert m.ok and m.latency and "error" in m.extra["paired"]


def test_report_prefers_the_in_process_speedup_and_names_its_basis():
    from helpers.run_folder import measured

    from edgebench.report.summary import paired_basis
    from edgebench.report.table import build_rows

    base = measured("baseline", 2.0)
    session = {"baseline": base.key, "speedup": 1.8, "low": 1.7, "high": 1.9, "processes": 1,
               "basis": "in-process A/B against the baseline, one process"}
    small = measured("small", 1.0)
    small = dataclasses.replace(small, extra={"paired": session})
    failed = dataclasses.replace(measured("other", 1.0, backend="onnxruntime"), key="other",
                                 extra={"paired": {"error": "RuntimeError: no"}})
    rows = {r["candidate"]: r for r in build_rows([], [base, small, failed])}
    assert (rows["small"]["speedup"], rows["small"]["speedup_low"], rows["small"]["speedup_high"]) == (1.8, 1.7, 1.9)
    assert paired_basis(rows["small"]) == ", in-process A/B against the baseline, one process"
    assert rows["other"]["speedup_basis"] == "from the two intervals (the in-process A/B failed: RuntimeError: no)"


def test_rows_that_disagree_with_the_in_process_speedup_are_flagged():
    from helpers.run_folder import measured

    from edgebench.report.table import build_rows

    base = measured("baseline", 2.0)
    session = {"speedup": 1.05, "low": 1.0, "high": 1.1, "basis": "in-process A/B against the baseline, one process"}
    agree = dataclasses.replace(measured("same", 1.95), key="same", extra={"paired": session})
    moved = dataclasses.replace(measured("moved", 1.0), key="moved", extra={"paired": session})  # rows say 2x
    rows = {r["candidate"]: r for r in build_rows([], [base, agree, moved])}
    assert "placement" not in rows["same"]["flag_kinds"]
    assert "placement" in rows["moved"]["flag_kinds"] and "say 2.00x" in rows["moved"]["flags"][-1]


def test_int8_slower_reads_the_side_by_side_speedups_when_both_rows_have_them():
    """prune50-ptq against its parent prune50: each was timed beside the same FP32 baseline in its
    own worker, so the ratio of the two speedups is the comparison; the rows' own medians, from
    separate processes, are not."""
    from helpers.run_folder import measured

    from edgebench.core.records import CandidateInfo
    from edgebench.report.table import build_rows

    base = CandidateInfo(id="baseline", name="baseline", lineage=({"pass": "baseline", "config": {}},))
    pruned = CandidateInfo(id="prune50", name="prune50", lineage=base.lineage + ({"pass": "prune", "config": {}},))
    quant = CandidateInfo(id="prune50-ptq", name="prune50-ptq", precision="int8",
                          lineage=pruned.lineage + ({"pass": "ptq", "config": {}},))

    def side_by_side(candidate, ms, speedup, precision="fp32"):
        session = {"speedup": speedup, "low": speedup * 0.95, "high": speedup * 1.05,
                   "basis": "in-process A/B against the baseline, one process"}
        return dataclasses.replace(measured(candidate, ms, precision=precision), extra={"paired": session})

    def flags(parent_speedup, int8_ms, int8_speedup):
        rows = build_rows([base, pruned, quant], [measured("baseline", 2.0), side_by_side("prune50", 1.0, parent_speedup),
                                                  side_by_side("prune50-ptq", int8_ms, int8_speedup, "int8")])
        return next(r["flags"] for r in rows if r["candidate"] == "prune50-ptq")

    # Its median (another process) says slower than prune50's; side by side it is faster: no flag.
    assert not [f for f in flags(1.5, 1.4, 1.8) if "INT8 slower" in f]
    # Its median says faster; side by side it is slower (1.5 / 1.2 = 1.25x): flagged, on that basis.
    (flag,) = [f for f in flags(1.5, 0.9, 1.2) if "INT8 slower" in f]
    assert "1.25x, each timed beside the FP32 baseline" in flag
