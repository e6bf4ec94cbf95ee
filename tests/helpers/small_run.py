"""One small real run on this machine (tiny CNN, one epoch, baseline and INT8, ONNX Runtime and
OpenVINO), shared by the tests that need it whole: test_on_device measures a copy of its folder
elsewhere, and test_kill_resume kills and resumes the same run and compares it with this one."""
from __future__ import annotations

from pathlib import Path


def small_run_options(runs_dir: Path, run_name: str):
    from edgebench.compare import CompareOptions
    from edgebench.measure.timing import TimingConfig

    return CompareOptions(model="tiny-cnn", device="host", data="digits", input_size=32, epochs=1, runs_dir=runs_dir,
                          run_name=run_name, layer_profile=False, recipes=["baseline", "ptq-int8"],
                          runtimes=["onnxruntime", "openvino"],
                          timing=TimingConfig(time_budget_s=0.15, min_iterations=10, warmup_iterations=2))
