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
    runner.close()


def _has_bf16() -> bool:
    from edgebench.devices.host import cpu_flags

    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


@pytest.mark.parametrize("asked", ["fp32", "bf16"])
def test_openvino_reports_the_precision_it_computed_in(asked, tiny_onnx, digits):
    """fp32 asked is f32 hinted and fp32 computed, even on CPUs where OpenVINO would pick bf16;
    bf16 is reported only where the CPU has bf16, and the kernels that ran agree with the report."""
    runner = create_runner("openvino")
    runner.load(tiny_onnx["openvino"], Placement("cpu", asked, threads=1))
    x = {"input": digits.eval.x[:1]}
    runner.infer(x)
    expected = "bf16" if asked == "bf16" and _has_bf16() else "fp32"
    assert runner.extra_metrics(x)["inference_precision"] == {"fp32": "f32", "bf16": "bf16"}[expected]
    assert runner.executed_precision() == expected
    kernels = {r["precision"] for r in runner.layer_profile(x, iterations=2)} - {"?"}
    assert kernels and ("bf16" in kernels) == (expected == "bf16"), kernels
    runner.close()


def test_pytorch_computes_in_the_precision_it_reports(tiny_onnx, digits):
    """PyTorch reports the precision it was asked for; check the model really ran in it."""
    x = {"input": digits.eval.x[:16]}
    outputs = {}
    for precision in ("fp32", "bf16"):
        runner = create_runner("pytorch")
        runner.load(tiny_onnx["torch"], Placement("cpu", precision, threads=1))
        outputs[precision] = runner.infer(x)[0]
        assert runner.executed_precision() == precision
        assert next(runner.model.parameters()).dtype == getattr(torch, {"fp32": "float32", "bf16": "bfloat16"}[precision])
        runner.close()
    # bf16 keeps 8 bits of mantissa: the logits move, by about its rounding error, not by more.
    diff = np.abs(outputs["bf16"] - outputs["fp32"]).max() / np.abs(outputs["fp32"]).max()
    assert 1e-4 < diff < 0.1, diff


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


def test_a_runtime_not_yet_run_on_real_hardware_says_so():
    import subprocess
    import sys

    assert BACKENDS.get("tensorrt").unverified and BACKENDS.get("onnxruntime").unverified is None
    out = subprocess.run([sys.executable, "-m", "edgebench.cli", "backends"], capture_output=True, text=True,
                         timeout=120, env={**__import__("os").environ, "COLUMNS": "400"}).stdout
    line = next(line for line in out.splitlines() if "tensorrt" in line)
    assert "UNVERIFIED" in line
