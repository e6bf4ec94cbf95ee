import numpy as np
import pytest
import torch

from edgebench.backends import BACKENDS, Placement, availability, create_runner
from edgebench.core.errors import IncompatibleError

FORMAT = {"pytorch": "torch", "onnxruntime": "onnx", "openvino": "openvino"}


@pytest.mark.parametrize("backend", ["pytorch", "onnxruntime", "openvino"])
def test_runner_matches_torch(backend, tiny_onnx, digits):
    runner = create_runner(backend)
    runner.load(tiny_onnx[FORMAT[backend]], Placement("cpu", "fp32", threads=1))
    x = digits.eval.x[:1]
    got = runner.infer({"input": x})
    assert isinstance(got, list) and len(got) == 1
    got = got[0]
    runner.synchronize()
    with torch.no_grad():
        want = tiny_onnx["module"](torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
    assert runner.executed_precision() == "fp32"
    runner.close()


def test_openvino_reports_executed_precision(tiny_onnx, digits):
    from edgebench.devices.host import cpu_flags

    runner = create_runner("openvino")
    runner.load(tiny_onnx["openvino"], Placement("cpu", "bf16", threads=1))
    runner.infer({"input": digits.eval.x[:1]})
    expected = "bf16" if {"avx512_bf16", "amx_bf16"} & cpu_flags() else "fp32"
    assert runner.executed_precision() in (expected, "bf16", "fp32")


def test_layer_profiles(tiny_onnx, digits):
    for backend in ("onnxruntime", "openvino"):
        runner = create_runner(backend)
        runner.load(tiny_onnx[FORMAT[backend]], Placement("cpu", "fp32", threads=1))
        rows = runner.layer_profile({"input": digits.eval.x[:1]}, iterations=3)
        assert rows and all(r["time_us"] >= 0 for r in rows)
        assert any("Conv" in r["op_type"] or "Convolution" in r["op_type"] for r in rows)


def test_every_backend_reports_availability():
    for name, _ in BACKENDS.items():
        a = availability(name)
        assert a.available or (a.reason and a.install)


def test_missing_processor_is_a_clear_error(tiny_onnx):
    runner = create_runner("openvino")
    if "npu" in availability("openvino").processors:
        pytest.skip("this machine has an NPU")
    with pytest.raises(IncompatibleError, match="NPU"):
        runner.load(tiny_onnx["openvino"], Placement("npu", "fp16"))


def test_unsigned_pickled_module_is_refused(tiny_onnx, tmp_path):
    from edgebench.core.errors import UntrustedInputError

    planted = tmp_path / "model.pt"
    planted.write_bytes(tiny_onnx["torch"].read_bytes())  # same bytes, but no signature from this user
    with pytest.raises(UntrustedInputError, match="not written by this user's edgebench"):
        create_runner("pytorch").load(planted, Placement("cpu", "fp32"))
    (tmp_path / "model.pt.sig").write_text("0" * 64)
    with pytest.raises(UntrustedInputError):
        create_runner("pytorch").load(planted, Placement("cpu", "fp32"))


def test_each_runtime_plans_the_precisions_it_runs():
    """What to measure is the runner's knowledge: a float artifact at fp32 plus the reduced
    precisions the runtime applies by itself; an INT8 artifact at int8; never what the processor lacks."""
    processor = ["fp32", "bf16", "fp16", "int8"]
    assert BACKENDS.get("openvino").plan_precisions("fp32", processor) == ["fp32", "bf16", "fp16"]
    assert BACKENDS.get("openvino").plan_precisions("fp32", ["fp32", "int8"]) == ["fp32"]
    assert BACKENDS.get("tensorrt").plan_precisions("fp32", processor) == ["fp32", "fp16"]
    assert BACKENDS.get("onnxruntime").plan_precisions("fp32", processor) == ["fp32"]
    assert BACKENDS.get("pytorch").plan_precisions("fp32", processor) == ["fp32"]
    assert BACKENDS.get("onnxruntime").plan_precisions("int8", processor) == ["int8"]
    assert BACKENDS.get("pytorch").plan_precisions("int8", processor) == []
    assert BACKENDS.get("openvino").plan_precisions("int8", ["fp32", "fp16"]) == []


def test_deployed_format_follows_the_runners_preference():
    assert BACKENDS.get("openvino").deployed_format({"onnx": 1, "openvino": 2}) == "openvino"
    assert BACKENDS.get("openvino").deployed_format({"onnx": 1}) == "onnx"
    assert BACKENDS.get("pytorch").deployed_format({"onnx": 1}) is None


def test_onnxruntime_reads_the_precision_from_the_graph(tiny_onnx, digits, tmp_path):
    from edgebench.compress.ptq import quantize_onnx

    int8 = quantize_onnx(tiny_onnx["onnx"], tmp_path / "int8.onnx", digits.calib.x[:16], True, "uint8")
    for path, expected in ((tiny_onnx["onnx"], "fp32"), (int8, "int8+fp32")):
        runner = create_runner("onnxruntime")
        # The request is int8 for both: what is reported comes from the graph, not the request.
        runner.load(path, Placement("cpu", "int8", threads=1))
        assert runner.executed_precision() == expected
        runner.close()


def test_pytorch_reports_the_dtype_its_weights_were_loaded_in(tiny_onnx):
    runner = create_runner("pytorch")
    runner.load(tiny_onnx["torch"], Placement("cpu", "bf16", threads=1))
    assert runner.executed_precision() == "bf16"
    runner.close()
