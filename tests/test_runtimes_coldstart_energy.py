"""What every measurement states besides steady-state latency: cold start, settings, energy; and
the one-line errors for asking a runtime for what it does not have."""
import os

import pytest

from edgebench.backends import BACKENDS, Placement, availability, create_runner
from edgebench.core.errors import CorruptInputError, IncompatibleError
from edgebench.measure.energy import RAIL, NoEnergy, RaplMeter, energy_meter


def _measured(tiny_run):
    _, result = tiny_run
    return [m for m in result.measurements if m.source == "measured" and m.ok]


def test_cold_start_and_settings_are_recorded(tiny_run):
    rows = _measured(tiny_run)
    assert {m.backend for m in rows} >= {"onnxruntime", "openvino", "pytorch"}
    for m in rows:
        assert m.load_s > 0 and m.first_inference_ms > 0
        assert "energy" in m.extra
    ov = [m for m in rows if m.backend == "openvino"]
    assert all(m.extra["performance_hint"] == "LATENCY" and m.extra["inference_precision"] for m in ov)
    assert all("CPUExecutionProvider" in m.extra["providers"] for m in rows if m.backend == "onnxruntime")


def test_absent_energy_sensor_is_reported_as_absent_not_zero(tiny_run):
    meter = energy_meter()
    if isinstance(meter, NoEnergy):
        for m in _measured(tiny_run):
            assert m.extra["energy"]["available"] is False and m.extra["energy"]["reason"]
            assert "energy_j" not in m.extra["energy"]
    else:
        for m in _measured(tiny_run):
            assert m.extra["energy"]["energy_j"] > 0


def test_rapl_counter_wraparound(tmp_path):
    domain = tmp_path / "intel-rapl:0"
    domain.mkdir()
    (domain / "max_energy_range_uj").write_text("1000000\n")
    (domain / "energy_uj").write_text("999000\n")
    meter = RaplMeter([domain])
    meter.start()
    (domain / "energy_uj").write_text("1000\n")  # wrapped: 2000 uJ were used
    reading = meter.stop(inferences=4, timed_iterations=2, timed_seconds=0.001)  # 2 warm-up + 2 timed
    assert reading["energy_j"] == pytest.approx(0.002)
    assert reading["energy_per_inference_mj"] == pytest.approx(0.5)
    assert reading["mean_power_w"] == pytest.approx(1.0)  # 0.5 mJ per inference at 2000 inferences/s


def test_tegrastats_power_rails_parse():
    line = ("RAM 2448/7620MB (lfb 2x4MB) CPU [1%@729,0%@729] GR3D_FREQ 0% cpu@47.1C VDD_IN 4813mW/4813mW "
            "VDD_CPU_GPU_CV 482mW/482mW VDD_SOC 1445mW/1445mW")
    assert RAIL.findall(line) == [("VDD_IN", "4813", "4813"), ("VDD_CPU_GPU_CV", "482", "482"),
                                  ("VDD_SOC", "1445", "1445")]


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino", "pytorch", "tensorrt"])
def test_unknown_precision_is_a_one_line_error(backend):
    runner = BACKENDS.get(backend)
    with pytest.raises(IncompatibleError, match="has no precision 'int4'") as e:
        runner.check_placement(Placement("cpu" if backend != "tensorrt" else "gpu", "int4"))
    assert "\n" not in str(e.value)


def test_profile_with_unknown_precision_names_the_field(tmp_path):
    from edgebench.devices.profiles import load_profile_file

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndescription: y\nprocessors:\n  cpu:\n    name: z\n    runtimes: [onnxruntime]\n"
                   "    precisions: [fp32, int4]\n")
    with pytest.raises(CorruptInputError, match=r"processors\.cpu\.precisions\.1"):
        load_profile_file(bad)


def test_npu_asked_where_none_exists_is_a_failed_row_not_a_crash(tiny_onnx, tmp_path, digits):
    import numpy as np

    from edgebench.measure.worker import MeasureTask, run_isolated

    if "npu" in availability("openvino").processors:
        pytest.skip("this machine has an NPU")
    data = tmp_path / "eval.npz"
    np.savez(data, **{"in:input": digits.eval.x[:8, None], "y": digits.eval.y[:8]})
    task = MeasureTask(key="k", candidate="c", backend="openvino", artifact=str(tiny_onnx["openvino"]),
                       processor="npu", precision="fp16", device="host", measured_on="here", eval_data=str(data),
                       num_classes=10, timeout_s=120)
    m = run_isolated(task)
    assert m.status == "failed" and "NPU" in m.error and "\n" not in m.error


def test_calibrate_writes_a_profile_that_loads_and_recognises_this_machine(tmp_path):
    from edgebench.devices.profiles import load_profile_file
    from edgebench.estimate.calibrate import write_profile

    path, figures = write_profile("my-box", tmp_path / "my-box.yaml", quick=True, allow_busy=True)
    profile = load_profile_file(path)
    assert profile.name == "my-box" and profile.matches_this_machine()
    cpu = profile.processors["cpu"]
    assert cpu.peak_gflops["fp32"] > 0 and cpu.memory_bandwidth_gbs > 0
    assert any("edgebench devices calibrate" in s for s in profile.sources)


def test_cli_calibrate_and_bad_action(tmp_path):
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=str(__import__("pathlib").Path(__file__).resolve().parent.parent))
    bad = subprocess.run([sys.executable, "-m", "edgebench.cli", "devices", "frobnicate"], capture_output=True,
                         text=True, env=env)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "calibrate" in bad.stderr


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("EDGEBENCH_SLOW_TESTS"), reason="torch.compile takes minutes on 2 cores; "
                    "set EDGEBENCH_SLOW_TESTS=1")
def test_torch_compile_runner_matches_eager(tiny_onnx, digits):
    import numpy as np
    import torch

    runner = create_runner("torch-compile")
    runner.load(tiny_onnx["torch"], Placement("cpu", "fp32", threads=1))
    x = digits.eval.x[:1]
    with torch.no_grad():
        want = tiny_onnx["module"](torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(runner.infer({"input": x})[0], want, rtol=1e-3, atol=1e-4)
    assert runner.extra_metrics({"input": x})["mode"].startswith("torch.compile")


def test_torch_compile_is_planned_only_when_asked_for_by_name(tmp_path):
    from helpers.plans import built_in_inputs

    from edgebench.backends.base import Availability
    from edgebench.compare import CompareOptions, plan_tasks
    from edgebench.core.records import CandidateInfo
    from edgebench.core.signing import sign
    from edgebench.devices.profiles import DeviceProfile, Processor

    (tmp_path / "model.pt").write_bytes(b"a module")
    sign(tmp_path / "model.pt")  # torch artifacts are planned with their verified hash
    (tmp_path / "model.onnx").write_bytes(b"a graph")
    info = CandidateInfo(id="c", name="c", artifacts={"torch": "model.pt", "onnx": "model.onnx"}, num_classes=10)
    profile = DeviceProfile(name="box", description="a box", processors={"cpu": Processor(
        name="cpu", runtimes=["pytorch", "torch-compile", "onnxruntime"], precisions=["fp32"])})

    def planned(runtimes):
        opts = CompareOptions(model="tiny-cnn", runtimes=runtimes)
        tasks = plan_tasks(info, profile, tmp_path, opts, "here", built_in_inputs(tmp_path / "eval.npz"),
                           available=lambda name: Availability(True, processors=("cpu",)))
        return sorted(t.backend for t in tasks)

    assert planned(None) == ["onnxruntime", "pytorch"]  # the device lists it, but compiling costs minutes
    assert planned(["torch-compile"]) == ["torch-compile"]
    assert planned(["inductor", "onnxruntime"]) == ["onnxruntime", "torch-compile"]  # by alias too
