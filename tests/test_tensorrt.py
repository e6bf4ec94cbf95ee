"""TensorRT runner. The build/run tests need an NVIDIA GPU and TensorRT 10; they skip elsewhere."""
import numpy as np
import pytest
import torch

from edgebench.backends import Placement, availability, create_runner

trt_ready = availability("tensorrt").available
needs_trt = [pytest.mark.gpu, pytest.mark.tensorrt,
             pytest.mark.skipif(not trt_ready, reason=f"tensorrt unavailable: {availability('tensorrt').reason}")]


def test_unavailable_tensorrt_says_why_and_which_extra():
    a = availability("tensorrt")
    if a.available:
        assert a.processors == ("gpu",) and a.version
    else:
        assert a.reason and ("edgebench[tensorrt]" in (a.install or "") or "GPU" in a.reason)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.gpu
@pytest.mark.tensorrt
@pytest.mark.skipif(not trt_ready, reason="tensorrt unavailable")
def test_engine_matches_torch_and_splits_compute_from_copies(precision, tiny_onnx, digits):
    runner = create_runner("tensorrt")
    placement = Placement("gpu", precision)
    runner.prepare(tiny_onnx["onnx"], placement)
    runner.load(tiny_onnx["onnx"], placement)
    x = digits.eval.x[:1]
    got = runner.infer({"input": x})[0]
    with torch.no_grad():
        want = tiny_onnx["module"](torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=2e-2 if precision == "fp16" else 1e-3, atol=2e-2)
    split = runner.extra_metrics({"input": x}, iterations=10)
    assert split["gpu_compute_ms"] > 0 and split["h2d_ms"] > 0 and split["d2h_ms"] > 0
    layers = runner.layer_profile({"input": x}, iterations=5)
    assert layers and all(r["time_us"] >= 0 for r in layers)
    runner.close()


@pytest.mark.gpu
@pytest.mark.tensorrt
@pytest.mark.skipif(not trt_ready, reason="tensorrt unavailable")
def test_int8_from_qdq_onnx(tiny_onnx, digits, tmp_path):
    from edgebench.compress.ptq import quantize_onnx

    q = quantize_onnx(tiny_onnx["onnx"], tmp_path / "q.onnx", [{"input": digits.calib.x[:32]}], True, "int8")
    runner = create_runner("tensorrt")
    runner.load(q, Placement("gpu", "int8"))
    feed = {"input": digits.eval.x[:1]}
    logits = runner.infer(feed)[0]
    assert logits.shape == (1, 10) and runner.extra_metrics(feed, iterations=5)["explicit_int8"]
    assert any(r["precision"] == "int8" for r in runner.layer_profile(feed, iterations=3))
    runner.close()


@pytest.mark.gpu
@pytest.mark.tensorrt
@pytest.mark.skipif(not trt_ready, reason="tensorrt unavailable")
def test_int8_from_float_onnx_needs_calibration_data(tiny_onnx, digits, tmp_path):
    from edgebench.core.errors import IncompatibleError

    runner = create_runner("tensorrt")
    with pytest.raises(IncompatibleError, match="calibration"):
        runner.prepare(tiny_onnx["onnx"], Placement("gpu", "int8"))
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=digits.calib.x[:32])
    runner.load(tiny_onnx["onnx"], Placement("gpu", "int8", options={"calibration": str(calib)}))
    assert runner.infer({"input": digits.eval.x[:1]})[0].shape == (1, 10)
    runner.close()


@pytest.mark.gpu
@pytest.mark.tensorrt
@pytest.mark.skipif(not trt_ready, reason="tensorrt unavailable")
def test_throughput_mode_runs_one_context_and_stream_per_request(tiny_onnx, digits):
    """UNVERIFIED until run on an NVIDIA GPU: several execution contexts on one engine, each with
    its own CUDA stream, complete requests in flight at batch 4."""
    from edgebench.measure.throughput import ThroughputConfig, measure_throughput

    runner = create_runner("tensorrt")
    placement = Placement("gpu", "fp32", None, 4, {"hint": "throughput", "streams": 3})
    runner.prepare(tiny_onnx["onnx"], placement)
    runner.load(tiny_onnx["onnx"], placement)
    try:
        stats, latency, samples = measure_throughput(runner.throughput_streams(), {"input": digits.eval.x[:4]}, 4,
                                                     ThroughputConfig(warmup_s=0.1, time_budget_s=0.5))
    finally:
        runner.close()
    assert stats.in_flight == 3 and stats.completed >= 3 and stats.completed == len(samples) == latency.iterations
    assert "execution contexts" in stats.idiom and stats.samples_per_s > 0
