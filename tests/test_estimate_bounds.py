"""Estimates respect physics: none falls below the per-op lower bound from a device's datasheet
peaks and the runtime's dispatch floors, over every shipped profile and a set of models."""
from __future__ import annotations

import numpy as np
import pytest
from helpers.rows import top1_quality

from edgebench.core.records import CandidateInfo, Measurement, measurement_key
from edgebench.devices.profiles import all_profiles
from edgebench.estimate.bounds import lower_bound_ms, processor_bound_ms
from edgebench.estimate.device_rows import _Calibration, _estimate_one
from edgebench.estimate.op_costs import graph_costs
from edgebench.estimate.points import target_hardware
from edgebench.estimate.roofline import GROUPS, Hardware


@pytest.fixture(scope="module")
def graphs(tmp_path_factory, tiny_onnx):
    """tiny-cnn, and two torchvision models built in code with random weights (no download)."""
    import torch
    import torchvision

    from edgebench.models.export import export_onnx

    folder = tmp_path_factory.mktemp("bound-graphs")
    out = {"tiny-cnn": tiny_onnx["onnx"]}
    for name, size in (("mobilenet_v3_small", 64), ("resnet18", 224)):
        torch.manual_seed(0)
        module = getattr(torchvision.models, name)(weights=None).eval()
        x = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
        out[name] = export_onnx(module, folder / f"{name}.onnx", x, rtol=1e-2, atol=1e-3)
    return out


def _ops(path):
    return [[GROUPS.index(op.group), op.flops, op.bytes_moved] for op in graph_costs(path)]


def test_resnet18_int8_on_a_pi5_cannot_beat_its_weights_and_arithmetic(graphs):
    pi5 = all_profiles()["raspberry-pi-5"].processors["cpu"]
    ops = _ops(graphs["resnet18"])
    bound = lower_bound_ms(ops, "int8", pi5.peak_gflops, pi5.memory_bandwidth_gbs, "onnxruntime", "cpu")
    flops = sum(f for _, f, _ in ops)
    assert bound >= flops / (pi5.peak_gflops["int8"] * 1e6)  # 3.6 GOP at 614 GOPS: ~5.9 ms
    assert bound >= 11.0e6 / (pi5.memory_bandwidth_gbs * 1e6)  # ~11 MB of int8 weights at 17 GB/s
    assert bound > 0.27 * 10  # the 0.27 ms the old estimator produced was 20x too fast for the chip


def test_no_estimate_falls_below_the_bound_on_any_profile(graphs):
    host = Hardware({"fp32": 200.0, "int8": 800.0}, 20.0, 1.0)
    calib = _Calibration(points=[], validation={})
    checked = 0
    for profile in all_profiles().values():
        for pname, proc in profile.processors.items():
            hw = target_hardware(proc, pname, host, 2)
            if hw is None:
                continue
            for runtime in proc.runtimes:
                for precision in proc.precisions:
                    for model, path in graphs.items():
                        costs = graph_costs(path)
                        ops = _ops(path)
                        info = CandidateInfo(id=model, name=model, artifacts={"onnx": str(path)})
                        # A host figure far too fast: the raw scaled estimate lands below physics.
                        ref = Measurement(key="ref", candidate=model, backend="onnxruntime", processor="cpu",
                                          precision="fp32", device="host", source="measured", status="ok",
                                          latency={"median_ms": 1e-6}, measured_on="host")
                        m = _estimate_one(info, runtime, pname, precision, profile, ref, costs, ops, host, hw, calib,
                                          [], Measurement, measurement_key)
                        bound = processor_bound_ms(ops, precision, proc, runtime, pname)
                        assert m.median_ms >= bound > 0, (profile.name, pname, runtime, precision, model)
                        assert m.latency["ci_low_ms"] >= bound
                        assert m.latency["p90_ms"] is None and m.latency["p99_ms"] is None  # no invented percentiles
                        assert m.extra["estimate"]["raised_to_lower_bound"]
                        assert m.estimate_error_pct is None and m.latency["interval"] == "unvalidated"
                        checked += 1
    assert checked > 100


def test_estimate_above_the_bound_is_left_alone(graphs):
    orin = all_profiles()["jetson-agx-orin"]
    host = Hardware({"fp32": 200.0}, 20.0, 1.0)
    path = graphs["mobilenet_v3_small"]
    ref = Measurement(key="ref", candidate="m", backend="onnxruntime", processor="cpu", precision="fp32",
                      device="host", source="measured", status="ok", latency={"median_ms": 50.0}, measured_on="host")
    hw = target_hardware(orin.processors["cpu"], "cpu", host, 2)
    m = _estimate_one(CandidateInfo(id="m", name="m"), "onnxruntime", "cpu", "fp32", orin, ref, graph_costs(path),
                      _ops(path), host, hw, _Calibration([], {}), [], Measurement, measurement_key)
    assert not m.extra["estimate"]["raised_to_lower_bound"]
    assert m.latency["ci_low_ms"] < m.median_ms < m.latency["ci_high_ms"]


def _est_row(key, ms, top1, low, high):
    return {"key": key, "name": key, "candidate": key, "backend": "tensorrt", "precision": "fp32",
            "executed_precision": None, "group": "jetson / gpu", "source": "estimated", "status": "ok",
            "device": "jetson", "median_ms": ms, "ci_low_ms": low, "ci_high_ms": high, "top1": top1,
            "top1_ci_low": top1 - 0.001, "top1_ci_high": top1 + 0.001, "pareto": True, "estimate_error_pct": None,
            **top1_quality(top1)}


def test_ship_card_on_estimates_says_so_first_and_ties_overlapping_intervals():
    from edgebench.report.summary import recommendations

    rows = [_est_row("int8", 0.10, 0.950, 0.05, 0.30), _est_row("fp32", 0.20, 0.958, 0.08, 0.60)]
    (pick,) = recommendations(rows)
    assert pick["reasons"][0].startswith("These latencies are estimates") and "UNVALIDATED" in pick["reasons"][0]
    assert pick["choice"]["key"] == "fp32"  # cannot be told apart on latency: the more accurate one
    apart = [_est_row("int8", 0.10, 0.950, 0.09, 0.11), _est_row("fp32", 0.20, 0.958, 0.19, 0.21)]
    assert recommendations(apart)[0]["choice"]["key"] == "int8"


def test_shipped_reference_ops_match_a_fresh_export(graphs):
    """reference_ops.json is what benchmarks/reference_ops.py computes, not figures typed in."""
    from edgebench.estimate.reference import key, reference_ops

    shipped, fresh = reference_ops()[key("resnet18", 224)], _ops(graphs["resnet18"])
    assert len(shipped) == len(fresh)
    for column in (1, 2):
        assert sum(op[column] for op in shipped) == pytest.approx(sum(op[column] for op in fresh), rel=1e-3)


def test_no_anchored_estimate_falls_below_the_bound_and_errors_come_from_the_check(graphs):
    from edgebench.estimate.anchors import check

    host = Hardware({"fp32": 200.0, "int8": 800.0}, 20.0, 1.0)
    calib = _Calibration(points=[], validation={})
    checked = validated = 0
    for profile in all_profiles().values():
        for pname, proc in profile.processors.items():
            hw = target_hardware(proc, pname, host, 2)
            for runtime in proc.runtimes:
                for precision in proc.precisions:
                    anchored = check(profile, runtime, pname, precision)
                    if hw is None or not anchored.usable:
                        continue
                    for model, path in graphs.items():
                        ops = _ops(path)
                        ref = Measurement(key="ref", candidate=model, backend="onnxruntime", processor="cpu",
                                          precision="fp32", device="host", source="measured", status="ok",
                                          latency={"median_ms": 1e-6}, measured_on="host")
                        m = _estimate_one(CandidateInfo(id=model, name=model), runtime, pname, precision, profile,
                                          ref, graph_costs(path), ops, host, hw, calib, [], Measurement,
                                          measurement_key, anchored=anchored)
                        info = m.extra["estimate"]
                        bound = processor_bound_ms(ops, precision, proc, runtime, pname)
                        assert info["method"] == "anchor transfer" and info["anchors"]
                        assert m.median_ms >= bound > 0 and m.latency["ci_low_ms"] >= bound
                        # the host's absurd 1e-6 ms figure plays no part in an anchored latency
                        assert m.median_ms == pytest.approx(max(bound, anchored.predict(ops)))
                        if anchored.error is None:
                            assert m.estimate_error_pct is None and m.latency["interval"] == "unvalidated"
                        else:
                            assert m.estimate_error_pct == round(100 * anchored.error, 1)
                            assert m.latency["interval"] == "validated"
                            assert m.latency["ci_high_ms"] == pytest.approx(m.median_ms * (1 + anchored.error))
                            validated += 1
                        checked += 1
    assert checked >= 20 and validated >= 9
