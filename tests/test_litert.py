"""The LiteRT runner on real .tflite artifacts converted in the test (litert-torch), FP32 and
full-integer INT8, and LiteRT rows in a compare run. Skips where the runtime or its converter is
not installed; the availability message is checked everywhere."""
import numpy as np
import pytest

from edgebench.backends import Placement, availability
from edgebench.backends.litert_runner import LiteRtRunner


def test_availability_names_the_extra_when_missing():
    a = availability("litert")
    if not a.available:
        assert "edgebench[litert]" in a.install and "ai-edge-litert" in a.reason
    else:
        assert a.processors == ("cpu",) and a.version


@pytest.fixture(scope="module")
def tflite_pair(tiny_onnx, digits, tmp_path_factory):
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("litert_torch")
    pytest.importorskip("ai_edge_quantizer")
    from edgebench.models.litert_export import export_tflite, quantize_tflite_int8

    folder = tmp_path_factory.mktemp("tflite")
    fp32 = export_tflite(tiny_onnx["module"], folder / "model.tflite", digits.eval.x[:8])
    int8 = quantize_tflite_int8(fp32, folder / "model.int8.tflite", digits.calib.x[:64])
    return fp32, int8


def _run(path, x, precision, threads=1):
    runner = LiteRtRunner()
    runner.load(path, Placement("cpu", precision, threads))
    return runner, np.concatenate([runner.infer(x[i:i + 1]) for i in range(len(x))])


def test_fp32_matches_torch_and_states_xnnpack(tflite_pair, tiny_onnx, digits):
    import torch

    x = digits.eval.x[:32]
    runner, got = _run(tflite_pair[0], x, "fp32")
    with torch.no_grad():
        expected = tiny_onnx["module"](torch.from_numpy(x)).numpy()
    assert np.abs(got - expected).max() < 1e-3 * np.abs(expected).max() + 1e-4
    assert runner.executed_precision() == "fp32"
    metrics = runner.extra_metrics(x[:1])
    assert metrics["delegate"] == "XNNPACK" and metrics["delegate_partitions"] >= 1 and metrics["threads"] == 1
    # The named-inputs contract: a dict in, a list of outputs in model order out.
    outputs = runner.infer({runner.input_names[0]: x[:1]})
    assert isinstance(outputs, list) and np.allclose(outputs[0], got[:1])


def test_int8_is_full_integer_and_keeps_accuracy(tflite_pair, tiny_onnx, digits):
    import torch

    x, y = digits.eval.x, digits.eval.y
    runner, got = _run(tflite_pair[1], x, "int8")
    assert runner.executed_precision() == "int8"
    assert runner.extra_metrics(x[:1])["input_types"] == ["int8"]
    with torch.no_grad():
        reference = tiny_onnx["module"](torch.from_numpy(x)).numpy().argmax(1)
    assert (got.argmax(1) == reference).mean() > 0.9
    assert (got.argmax(1) == y).mean() > (reference == y).mean() - 0.1


def test_compare_plans_litert_fp32_and_int8_rows(tmp_path):
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("litert_torch")
    pytest.importorskip("ai_edge_quantizer")
    from edgebench.compare import CompareOptions, compare
    from edgebench.measure.timing import TimingConfig

    opts = CompareOptions(model="tiny-cnn", device="host", data="digits", input_size=32, epochs=2, runs_dir=tmp_path,
                          recipes=["baseline", "ptq-int8"], runtimes=["litert"], layer_profile=False,
                          timing=TimingConfig(time_budget_s=0.2, min_iterations=10, warmup_iterations=2))
    result = compare(opts)
    rows = {m.precision: m for m in result.measurements if m.backend == "litert"}
    assert set(rows) == {"fp32", "int8"}, [(m.precision, m.error) for m in result.measurements]
    for precision, m in rows.items():
        assert m.ok, m.error
        assert m.executed_precision == precision and m.extra["delegate"] == "XNNPACK"
        assert m.accuracy["total"] == 360 and m.top1 > 0.5
    ptq = next(c for c in result.candidates if c.name == "ptq-int8")
    assert ptq.artifacts["tflite"].endswith(".tflite") and ptq.file_bytes["tflite"] > 0
