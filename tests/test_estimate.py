"""The latency estimator: graph costs, fitting, and the estimate stage of `compare`."""
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers.slow_model import add_dead_work

from edgebench.core.store import RunStore
from edgebench.devices.profiles import get_profile
from edgebench.estimate.anchor_hardware import anchor_ops
from edgebench.estimate.anchors import check
from edgebench.estimate.device_rows import _anchor_transfer, add_estimates
from edgebench.estimate.op_costs import GROUPS, graph_costs
from edgebench.estimate.roofline import PRIOR, Hardware, Point, features, fit, leave_one_model_out, ops_of, predict


def test_graph_flops_match_a_hand_count(tiny_onnx):
    costs = graph_costs(tiny_onnx["onnx"])
    by_group = {}
    for op in costs:
        by_group[op.group] = by_group.get(op.group, 0) + op.flops
    # tiny-cnn at 32x32: conv 3->16 s2 (16x16), conv 16->32 s2 (8x8), 1x1 conv 32->64 (8x8); depthwise 3x3 on 32
    # channels (8x8); linear 64->10. FLOPs = 2 x MACs.
    assert by_group["conv"] == 2 * (16 * 16 * 16 * 27 + 8 * 8 * 32 * 144 + 8 * 8 * 64 * 32)
    assert by_group["dwconv"] == 2 * 8 * 8 * 32 * 9
    assert by_group["gemm"] == 2 * 64 * 10
    assert all(op.bytes_moved > 0 for op in costs)
    assert not any(op.op_type in ("Reshape", "Flatten", "Shape") for op in costs)  # free at run time


def test_quantized_graph_folds_weight_dequantization(tmp_path, tiny_onnx, digits):
    from edgebench.compress.ptq import quantize_onnx

    q = quantize_onnx(tiny_onnx["onnx"], tmp_path / "q.onnx", digits.calib.x[:16], True, "uint8")
    fp32 = graph_costs(tiny_onnx["onnx"])
    int8 = graph_costs(q)
    assert sum(op.flops for op in int8) == pytest.approx(sum(op.flops for op in fp32), rel=0.02)
    assert any(op.op_type == "QuantizeLinear" for op in int8)  # activation Q/DQ cost data movement


def test_fit_recovers_known_factors():
    rng = np.random.default_rng(0)
    hw = Hardware({"fp32": 50.0}, 10.0)
    true = np.array([2.0, 5.0, 4.0, 1.5, 3.0, 4.0, 2.0, 12.0, 3.0])
    points = []
    for m in range(12):
        ops = [[int(rng.integers(0, 7)), float(rng.uniform(1e5, 5e7)), float(rng.uniform(1e3, 1e6))]
               for _ in range(int(rng.integers(20, 120)))]
        points.append(Point(f"m{m}", "onnxruntime", "fp32", float(features(ops, "fp32", hw) @ true), ops, hw.__dict__))
    coef = fit(points)
    for p in points:
        assert predict(coef, p.ops, "fp32", hw) == pytest.approx(p.latency_ms, rel=0.05)
    assert max(abs(e) for e in leave_one_model_out(points)) < 0.10


def test_compare_adds_labelled_estimates_for_the_asked_device(tiny_run):
    opts, result = tiny_run
    estimated = [m for m in result.measurements if m.source == "estimated"]
    measured = [m for m in result.measurements if m.source == "measured" and m.ok]
    assert estimated and measured
    assert {m.device for m in estimated} == {"jetson-orin-nano"} and {m.device for m in measured} == {"host"}
    assert {m.processor for m in estimated} == {"cpu", "gpu"}
    assert {"tensorrt", "onnxruntime"} <= {m.backend for m in estimated}
    assert {("tensorrt", "fp16"), ("tensorrt", "int8")} <= {(m.backend, m.precision) for m in estimated}
    by_method: dict = {}
    for m in estimated:
        info = m.extra["estimate"]
        by_method.setdefault(info["method"], set()).add((m.backend, m.processor, m.precision))
        # never below what the device's peaks allow, no invented percentiles, accuracy measured here
        assert m.ok and m.median_ms >= info["physical_lower_bound_ms"] > 0
        assert info["physical_lower_bound_ms"] <= m.latency["ci_low_ms"] < m.median_ms < m.latency["ci_high_ms"] \
            or info["raised_to_lower_bound"]
        assert m.latency["p99_ms"] is None
        assert m.accuracy == next(x.accuracy for x in measured if x.key == info["accuracy_from"])
        assert m.layers and all(layer["estimated"] for layer in m.layers)
        # an error figure only where held-out figures of the device check the estimate
        assert (m.estimate_error_pct is None) == (m.latency["interval"] == "unvalidated"), m.key
        if info["method"] == "host-scaled roofline":
            assert info["reference"] in {x.key for x in measured} and info["host_error_basis"]
            assert info["cross_device_error"].startswith("unvalidated") and m.estimate_error_pct is None
        else:
            found = check(get_profile("jetson"), m.backend, m.processor, m.precision)
            assert [a["model"] for a in info["anchors"]] == [a.model for a in found.anchors]
            assert info["leave_one_anchor_out"]["n"] == len(found.rows)
            expected = found.error
            assert m.estimate_error_pct == (round(100 * expected, 1) if expected is not None else None)
    # The Orin Nano's published ORT GPU figures (6 models) check each other, and since the held-out
    # figures were adopted as anchors (2026-11-30) so do its 3 ORT CPU figures (before, its one ORT CPU
    # figure anchored but could not be checked); nothing anchors TensorRT (its anchors are YOLO, not shipped).
    assert {("onnxruntime", "gpu", "fp32"), ("onnxruntime", "cpu", "fp32")} <= by_method["anchor transfer"]
    assert not {r for r in by_method["anchor transfer"] if r[0] == "tensorrt"}
    gpu = [m for m in estimated if (m.backend, m.processor, m.precision) == ("onnxruntime", "gpu", "fp32")]
    cpu = [m for m in estimated if (m.backend, m.processor, m.precision) == ("onnxruntime", "cpu", "fp32")]
    assert gpu and all(m.estimate_error_pct and m.latency["interval"] == "validated" for m in gpu)
    assert cpu and all(m.estimate_error_pct and m.latency["interval"] == "validated" for m in cpu)
    # An anchored row its anchors cannot check (one anchor: the A100's TensorRT INT8 resnet50) states no error
    alone = check(get_profile("nvidia-a100"), "tensorrt", "gpu", "int8")
    assert alone.usable and len(alone.anchors) == 1
    estimate, error_pct, _, detail = _anchor_transfer(alone, anchor_ops(alone.anchors[0]), "int8", [])
    assert estimate and error_pct is None and detail["error_basis"].startswith("unvalidated")
    html = (result.run_dir / "report.html").read_text()
    assert "estimated, unvalidated" in html and "estimated &plusmn;" in html


def test_estimates_follow_the_target_hardware(tiny_run, tmp_path):
    _, result = tiny_run
    copy = tmp_path / "run"
    shutil.copytree(result.run_dir, copy, ignore=shutil.ignore_patterns(".lock"))

    def baseline_cpu_ms(device: str) -> float:
        profile = get_profile(device)
        with RunStore(copy) as store:
            add_estimates(store, store.candidates(), profile, "host", copy, tmp_path)
            return next(m.median_ms for m in store.measurements() if m.device == profile.name and
                        m.candidate == "baseline" and m.backend == "onnxruntime" and m.processor == "cpu")

    slow, fast = baseline_cpu_ms("raspberry-pi-4"), baseline_cpu_ms("x86-avx512-server")
    assert fast < slow


def test_prior_is_used_without_calibration_and_follows_the_roofline():
    assert fit([]) == pytest.approx(PRIOR)
    hw = Hardware({"fp32": 100.0}, 20.0)
    conv = [[GROUPS.index("conv"), 1e8, 1e6]]  # 1 ms of compute, 0.2 ms of memory traffic: compute-bound
    add = [[GROUPS.index("elementwise"), 1e6, 1e7]]  # 0.01 ms of compute, 2 ms of traffic: memory-bound
    base = {name: predict(PRIOR, ops, "fp32", hw) for name, ops in (("conv", conv), ("add", add))}
    faster_compute, faster_memory = Hardware({"fp32": 200.0}, 20.0), Hardware({"fp32": 100.0}, 40.0)
    assert predict(PRIOR, conv, "fp32", faster_compute) < base["conv"] == predict(PRIOR, conv, "fp32", faster_memory)
    assert predict(PRIOR, add, "fp32", faster_memory) < base["add"] == predict(PRIOR, add, "fp32", faster_compute)


def test_graph_costs_follow_a_model_rewritten_in_place(tiny_onnx, tmp_path):
    """Costs are cached per file; a model overwritten at the same path must not get the old answer."""
    path = tmp_path / "model.onnx"
    path.write_bytes(Path(tiny_onnx["onnx"]).read_bytes())
    before = ops_of(path)
    assert before == ops_of(tiny_onnx["onnx"])
    slower = add_dead_work(Path(tiny_onnx["onnx"]), tmp_path / "slower.onnx", width=256)
    path.write_bytes(slower.read_bytes())
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # coarse clocks: make the rewrite visible
    after = ops_of(path)
    assert after == ops_of(slower) and len(after) > len(before)
    gemm = GROUPS.index("gemm")
    assert sum(f for g, f, _ in after if g == gemm) > sum(f for g, f, _ in before if g == gemm) + 2 * 256 * 256
