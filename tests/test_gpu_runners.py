"""PyTorch and ONNX Runtime on an NVIDIA GPU: results that match the CPU's, a session that really
runs on the GPU (no silent fall-back to the CPU provider), a timing loop that waits for the GPU,
and several requests in flight on CUDA streams. They skip without a CUDA GPU; run them on one."""
import numpy as np
import pytest

from edgebench.backends import Placement, availability, create_runner
from edgebench.measure.throughput import ThroughputConfig, measure_throughput
from edgebench.measure.timing import TimingConfig, measure

torch = pytest.importorskip("torch")

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible to torch")
ort_gpu = pytest.mark.skipif("gpu" not in (availability("onnxruntime").processors or ()),
                             reason="onnxruntime has no CUDA execution provider here (pip install 'edgebench[gpu]')")
QUICK = TimingConfig(time_budget_s=0.5, min_iterations=20, warmup_iterations=5)


def _module():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.BatchNorm2d(32), torch.nn.ReLU(),
        torch.nn.Conv2d(32, 64, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from edgebench.core.signing import sign

    folder = tmp_path_factory.mktemp("gpu")
    module = _module()
    x = np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)
    torch.onnx.export(module, torch.from_numpy(x), str(folder / "m.onnx"), input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, dynamo=False)
    torch.save(module, str(folder / "m.pt"))
    sign(folder / "m.pt")
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy()
    return {"onnx": folder / "m.onnx", "torch": folder / "m.pt", "x": x, "want": want}


class _Matmuls(torch.nn.Module):
    """`n` chained 4096x4096 fp16 products: 0.137 TFLOP each, so ~0.14 ms apiece even at the H100/H200's
    dense fp16 peak (989 TFLOP/s) and far longer on any smaller GPU."""

    def __init__(self, n: int):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(4096, 4096) / 64)
        self.n = n

    def forward(self, x):
        for _ in range(self.n):
            x = x @ self.w
        return x[:1, :8]


@cuda
@pytest.mark.gpu
@pytest.mark.parametrize("precision,tol", [("fp32", 1e-2), ("fp16", 3e-2)])
def test_pytorch_on_the_gpu_matches_the_cpu(model, precision, tol):
    runner = create_runner("pytorch")
    runner.load(model["torch"], Placement("gpu", precision))
    try:
        assert next(runner.model.parameters()).is_cuda
        got = runner.infer({"x": model["x"]})[0]
        assert runner.executed_precision() == precision
    finally:
        runner.close()
    np.testing.assert_allclose(got, model["want"], rtol=tol, atol=tol)


@cuda
@pytest.mark.gpu
def test_pytorch_gpu_timing_waits_for_the_kernels(tmp_path):
    """A timed call can be no faster than the GPU's peak allows: a loop that stopped the clock at
    the kernel launch would time ~10 us per launch, not the arithmetic."""
    from edgebench.core.signing import sign

    n = 16
    path = tmp_path / "matmuls.pt"
    torch.save(_Matmuls(n), str(path))
    sign(path)
    runner = create_runner("pytorch")
    runner.load(path, Placement("gpu", "fp16"))
    try:
        stats, _ = measure(runner, {"x": np.ones((4096, 4096), np.float32)}, QUICK)
    finally:
        runner.close()
    floor_ms = n * 2 * 4096 ** 3 / 989e12 * 1e3
    assert stats.median_ms >= floor_ms, (stats.median_ms, floor_ms)


@cuda
@pytest.mark.gpu
def test_pytorch_gpu_streams_keep_several_requests_in_flight(model):
    stats, samples = _two_streams("pytorch", model["torch"], model["x"])
    assert "CUDA stream" in stats.idiom and stats.in_flight == 2
    assert stats.completed == len(samples) and np.all(samples > 0)


@ort_gpu
@pytest.mark.gpu
def test_onnxruntime_runs_on_the_cuda_provider_and_matches(model):
    runner = create_runner("onnxruntime")
    runner.load(model["onnx"], Placement("gpu", "fp32"))
    try:
        # The CUDA provider first: ORT falls back to the CPU provider silently when CUDA fails to load.
        assert runner.providers[0] in ("CUDAExecutionProvider", "TensorrtExecutionProvider"), runner.providers
        got = runner.infer({"x": model["x"]})[0]
        stats, _ = measure(runner, {"x": model["x"]}, QUICK)
        own = runner.profiled_latency_ms({"x": model["x"]}, iterations=10)
        layers = runner.layer_profile({"x": model["x"]}, iterations=5)
        assert runner.extra_metrics({"x": model["x"]})["providers"][0] == runner.providers[0]
    finally:
        runner.close()
    np.testing.assert_allclose(got, model["want"], rtol=1e-2, atol=1e-2)
    assert stats.median_ms > 0 and len(own) == 10 and all(t > 0 for t in own)
    assert layers and any("Conv" in str(r) for r in layers)


@ort_gpu
@pytest.mark.gpu
def test_onnxruntime_gpu_sessions_keep_several_requests_in_flight(model):
    stats, samples = _two_streams("onnxruntime", model["onnx"], model["x"])
    assert stats.in_flight == 2 and stats.completed == len(samples) > 0


def _two_streams(runtime, artifact, x):
    """Half a second of throughput mode with two requests in flight on the GPU: (stats, samples)."""
    runner = create_runner(runtime)
    runner.load(artifact, Placement("gpu", "fp32", options={"streams": 2}))
    try:
        stats, _, samples = measure_throughput(runner.throughput_streams(), {"x": x}, 1,
                                               ThroughputConfig(warmup_s=0.1, time_budget_s=0.5))
    finally:
        runner.close()
    return stats, samples


def test_onnxruntime_refuses_a_gpu_session_that_fell_back_to_the_cpu(model, monkeypatch):
    """ORT lists CUDA among its providers when its package has it, even where CUDA's libraries are
    missing, and then quietly runs on the CPU: a GPU row must never be that CPU's timing."""
    import onnxruntime as ort

    from edgebench.core.errors import IncompatibleError

    if "gpu" in (availability("onnxruntime").processors or ()):
        pytest.skip("a working CUDA provider is installed here")
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    runner = create_runner("onnxruntime")
    with pytest.raises(IncompatibleError, match="fell back to the CPU"):
        runner.load(model["onnx"], Placement("gpu", "fp32"))
