"""The end-to-end slice on a tiny CNN and real data: build, measure on real runtimes, report, resume."""
import json

from edgebench.compare import compare
from edgebench.core.store import RunStore


def test_compare_produces_measured_report(tiny_run):
    opts, result = tiny_run
    run = result.run_dir
    for name in ("report.html", "report.json", "results.csv", "pareto.png", "summary.md", "measurements.jsonl"):
        assert (run / name).is_file(), name
    ok = [m for m in result.measurements if m.ok]
    backends = {m.backend for m in ok}
    assert {"onnxruntime", "openvino", "pytorch"} <= backends
    assert {c.name for c in result.candidates} >= {"baseline", "ptq-int8"}
    from edgebench.devices.host import cpu_flags

    float_kernels = "bf16" if {"avx512_bf16", "amx_bf16"} & cpu_flags() else "fp32"  # what OpenVINO picks itself
    for m in (m for m in ok if m.source == "measured"):
        assert m.latency["iterations"] >= 5 and m.latency["median_ms"] > 0
        assert m.accuracy["total"] == 360
        assert m.device == "host"  # measured here: never labelled as the Jetson's
        if m.precision == "fp32":
            assert m.executed_precision == "fp32", m  # asked explicitly, so no runtime may pick bf16
        elif m.backend == "openvino" and m.precision == "int8":
            assert m.executed_precision == f"int8+{float_kernels}", m  # INT8 ops, the rest in the plugin's choice
    baseline_acc = [m.top1 for m in ok if m.candidate == "baseline" and m.precision == "fp32" and m.source == "measured"]
    assert min(baseline_acc) > 0.5  # trained on real digits, far above chance
    # One FP32 model, deployed three ways, scored on the same images: the runtimes agree.
    assert len(baseline_acc) >= 3 and max(baseline_acc) - min(baseline_acc) <= 0.01, baseline_acc
    info = json.loads((run / "run.json").read_text())
    assert info["device"] == "jetson-orin-nano" and info["figures_are_target"] is False
    assert info["input_shape"] == [1, 3, 32, 32]


def test_rerun_resumes_without_measuring_again(tiny_run):
    opts, result = tiny_run
    def measured_lines():
        # Estimates are recomputed on every run (they follow this machine's calibration, remeasured
        # once it is quiet); measurements are what a resume must never repeat.
        text = (result.run_dir / "measurements.jsonl").read_text().splitlines()
        return [line for line in text if json.loads(line)["source"] == "measured"]

    before = measured_lines()
    again = compare(opts)
    assert again.run_dir == result.run_dir
    assert measured_lines() == before


def test_report_json_and_loader(tiny_run):
    import edgebench

    _, result = tiny_run
    frame = edgebench.load_run(result.run_dir)
    assert len(frame) == len(RunStore(result.run_dir).measurements())
    assert frame["pareto"].any()
    assert {"median_ms", "top1", "backend", "precision", "speedup"} <= set(frame.columns)
    data = json.loads((result.run_dir / "report.json").read_text())
    assert data["run"]["model_name"] == "tiny-cnn"
