"""The light measuring install and `edgebench measure`: the measuring path imports and runs with
torch, scikit-learn, plotly, matplotlib, pandas (and the rest of `[full]`) blocked, in the CLI and
in its worker processes; a run folder built by a full install, copied to a second folder and
measured there, merges into the builder's report."""
import json
import os
import platform
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "torchvision", "sklearn", "plotly", "matplotlib", "pandas", "nncf", "torch_pruning", "mlxtend",
         "scipy", "jinja2", "onnxscript", "litert_torch")
MEASURING_PATH = ("edgebench.cli.app", "edgebench.cli.parts", "edgebench.measure.worker", "edgebench.measure.on_device",
                  "edgebench.measure.plan", "edgebench.measure.identity", "edgebench.backends",
                  "edgebench.backends.host", "edgebench.core.store", "edgebench.core.merge", "edgebench.devices.profiles",
                  "edgebench.models.onnx_io", "edgebench.models.artifact")


@pytest.fixture(scope="module")
def light_env(tmp_path_factory):
    """Environment whose Python (and every worker it starts) cannot import the heavy modules: a
    sitecustomize on PYTHONPATH installs an import hook that refuses them, as a light install would."""
    site = tmp_path_factory.mktemp("light-site")
    (site / "sitecustomize.py").write_text(textwrap.dedent(f"""
        import importlib.abc, sys
        class _Light(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] in {HEAVY!r}:
                    raise ImportError(f"No module named {{name!r}} (light install)")
        sys.meta_path.insert(0, _Light())
    """))
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]), COLUMNS="200")


def _cli(args, env, cwd=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "edgebench.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout)


def test_the_block_is_real(light_env):
    proc = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True, text=True, env=light_env)
    assert proc.returncode != 0 and "light install" in proc.stderr


def test_measuring_path_imports_without_heavy_modules(light_env):
    code = "import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)\nprint('ok')"
    proc = subprocess.run([sys.executable, "-c", code, *MEASURING_PATH], capture_output=True, text=True, env=light_env)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr


def test_backends_on_a_light_install_says_what_each_missing_part_brings(light_env):
    proc = _cli(["backends"], light_env)
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    assert "onnxruntime" in out and "available" in out
    code = "from edgebench.backends import availability as a; t = a('pytorch'); print(t.available, t.install)"
    torch_row = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=light_env)
    assert torch_row.stdout.split() == ["False", "pip", "install", "'edgebench[torch]'"], torch_row.stderr
    assert "not installed: compare: building candidates" in out and "pip install 'edgebench[full]'" in out
    assert "not installed: report:" in out


@pytest.fixture(scope="module")
def built_run(small_run):
    """A run built by the full install (this interpreter, nothing blocked): conftest.small_run."""
    return small_run.run_dir


def _copy_bundle(run_dir: Path, to: Path) -> Path:
    """What a user copies to the device: artifacts, eval data and the plan (run.json), no rows."""
    target = to / run_dir.name
    shutil.copytree(run_dir / "candidates", target / "candidates")
    shutil.copytree(run_dir / "data", target / "data")
    shutil.copy(run_dir / "run.json", target / "run.json")
    return target


def _lab_profile(folder: Path) -> Path:
    """A device profile whose detect rule this machine matches (its architecture)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "lab-box.yaml").write_text(textwrap.dedent(f"""
        name: lab-box
        description: the lab's measuring box
        processors:
          cpu: {{name: lab cpu, runtimes: [onnxruntime, openvino], precisions: [fp32, int8]}}
        threads: 1
        detect: {{machine: {platform.machine()}}}
    """))
    return folder


def test_light_install_measures_a_copied_bundle_and_the_builder_merges_it(built_run, light_env, tmp_path):
    device_run = _copy_bundle(built_run, tmp_path / "device")
    env = dict(light_env, EDGEBENCH_PROFILES=str(_lab_profile(tmp_path / "profiles")))
    proc = _cli(["measure", str(device_run), "--device", "lab-box"], env)
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr  # this machine is the lab box: no identity warning
    out = device_run / "on-device" / "lab-box"
    rows = [json.loads(line) for line in (out / "measurements.jsonl").read_text().splitlines()]
    assert {(r["backend"], r["precision"]) for r in rows} == {("onnxruntime", "fp32"), ("onnxruntime", "int8"),
                                                             ("openvino", "fp32"), ("openvino", "int8")}
    assert all(r["status"] == "ok" and r["device"] == "lab-box" and r["accuracy"]["total"] == 360 for r in rows), rows

    before = len((built_run / "measurements.jsonl").read_text().splitlines())
    full_env = dict(os.environ, PYTHONPATH=str(ROOT), EDGEBENCH_PROFILES=env["EDGEBENCH_PROFILES"])
    merged = _cli(["report", str(built_run), "--merge", str(out)], full_env)
    assert merged.returncode == 0, merged.stderr
    assert "merged 4 measurement(s)" in merged.stdout
    report = json.loads((built_run / "report.json").read_text())
    devices = {(r["device"], r["backend"], r["precision"]) for r in report["rows"]}
    assert {("lab-box", b, p) for b in ("onnxruntime", "openvino") for p in ("fp32", "int8")} <= devices
    assert any(d == "host" for d, _, _ in devices)  # the builder's own rows stay beside them
    again = _cli(["report", str(built_run), "--merge", str(out)], full_env)  # merging twice adds nothing
    assert "merged 0 measurement(s)" in again.stdout
    assert len((built_run / "measurements.jsonl").read_text().splitlines()) == before + 4


def test_measuring_as_a_device_this_machine_is_not_labels_it_honestly(built_run, light_env, tmp_path):
    device_run = _copy_bundle(built_run, tmp_path / "device")
    proc = _cli(["measure", str(device_run), "--device", "rpi5", "--runtimes", "onnxruntime"], light_env)
    assert proc.returncode == 0, proc.stderr
    assert "does not detect itself as one" in " ".join(proc.stderr.split())
    rows = [json.loads(line) for line in
            (device_run / "on-device" / "raspberry-pi-5" / "measurements.jsonl").read_text().splitlines()]
    assert rows and all(r["device"] != "raspberry-pi-5" and r["extra"]["advertised_device"] == "raspberry-pi-5"
                        for r in rows)


def test_measure_refuses_a_folder_that_is_not_a_run(light_env, tmp_path):
    proc = _cli(["measure", str(tmp_path)], light_env)
    assert proc.returncode != 0 and "not a run folder" in proc.stderr and "Traceback" not in proc.stderr


def test_rows_of_another_host_do_not_replace_the_builders(built_run, light_env, tmp_path):
    """Two machines that detect as no profile are both `host`: merging must not overwrite."""
    device_run = _copy_bundle(built_run, tmp_path / "device")
    proc = _cli(["measure", str(device_run), "--device", "host", "--runtimes", "onnxruntime"], light_env)
    assert proc.returncode == 0, proc.stderr
    out = device_run / "on-device" / "host"
    # Stands in for another machine: same keys, another `measured_on`.
    lines = [json.loads(line) for line in (out / "measurements.jsonl").read_text().splitlines()]
    (out / "measurements.jsonl").write_text("".join(json.dumps(dict(r, measured_on="another box")) + "\n" for r in lines))
    before = (built_run / "measurements.jsonl").read_bytes()
    merged = _cli(["report", str(built_run), "--merge", str(out)], dict(os.environ, PYTHONPATH=str(ROOT)))
    assert merged.returncode == 0, merged.stderr
    assert "merged 0 measurement(s)" in merged.stdout and "not merged" in merged.stderr
    assert (built_run / "measurements.jsonl").read_bytes() == before


@pytest.fixture(scope="module")
def two_shape_run(tmp_path_factory):
    """An ONNX model with dynamic H and W, compared at two --input-shape values (eval-0/eval-1.npz)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgebench.compare import CompareOptions, compare
    from edgebench.measure.timing import TimingConfig

    folder = tmp_path_factory.mktemp("two-shapes")
    weights = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                               helper.make_node("Relu", ["c"], ["y"])], "det",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, "H", "W"])], [weights])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(folder / "det.onnx"))
    opts = CompareOptions(model=str(folder / "det.onnx"), device="host", runs_dir=folder / "runs", run_name="built",
                          input_shapes=["x=1x3x16x16", "x=1x3x24x32"], layer_profile=False, recipes=["baseline"],
                          runtimes=["onnxruntime"],
                          timing=TimingConfig(time_budget_s=0.1, min_iterations=10, warmup_iterations=2))
    return compare(opts).run_dir


def test_every_stored_input_shape_is_measured_with_compares_keys(two_shape_run, light_env, tmp_path):
    device_run = _copy_bundle(two_shape_run, tmp_path / "device")
    env = dict(light_env, EDGEBENCH_PROFILES=str(_lab_profile(tmp_path / "profiles")))
    proc = _cli(["measure", str(device_run), "--device", "lab-box", "--runtimes", "onnxruntime"], env)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in
            (device_run / "on-device" / "lab-box" / "measurements.jsonl").read_text().splitlines()]
    built = [json.loads(line) for line in (two_shape_run / "measurements.jsonl").read_text().splitlines()]
    assert sorted(r["shape"] for r in rows) == sorted(r["shape"] for r in built) == ["1x3x16x16", "1x3x24x32"]
    # The same keys as compare's, but for the device: the merge lines them up shape by shape.
    assert sorted(r["key"] for r in rows) == sorted(r["key"].replace("host", "lab-box") for r in built)
    for r in rows:  # quality on the device: agreement with the builder's FP32 outputs at that shape
        assert r["status"] == "ok" and r["quality"]["metric"] == "agreement" and r["quality"]["value"] > 0.999, r

    merged = _cli(["report", str(two_shape_run), "--merge", str(device_run / "on-device" / "lab-box")],
                  dict(os.environ, PYTHONPATH=str(ROOT), EDGEBENCH_PROFILES=env["EDGEBENCH_PROFILES"]))
    assert merged.returncode == 0 and "merged 2 measurement(s)" in merged.stdout, merged.stderr
    report = json.loads((two_shape_run / "report.json").read_text())
    assert {(r["device"], r["shape"]) for r in report["rows"]} >= {("lab-box", "1x3x16x16"), ("lab-box", "1x3x24x32"),
                                                                   ("host", "1x3x16x16"), ("host", "1x3x24x32")}


def _rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "measurements.jsonl").read_text().splitlines()]


def test_measure_takes_the_runs_scenarios_and_batches_so_keys_line_up(two_shape_run, tmp_path):
    """A run made with --scenario offline --batch-sizes 2 is measured on the device in that
    scenario and batch, under the keys compare gives those rows."""
    from edgebench.core.records import measurement_key
    from edgebench.measure.on_device import measure_run

    device_run = _copy_bundle(two_shape_run, tmp_path / "device")
    info = json.loads((device_run / "run.json").read_text())
    info["options"].update(scenarios=["offline"], batch_sizes=[2])
    (device_run / "run.json").write_text(json.dumps(info))
    result = measure_run(device_run, device="host", runtimes=["onnxruntime"])
    rows = _rows(result.out_dir)
    # the builder's own rows: an earlier test may have merged a device's rows into this run
    built = [b for b in _rows(two_shape_run) if b["device"] == "host" and b["source"] == "measured"]
    assert sorted(r["key"] for r in rows) == sorted(
        measurement_key(b["candidate"], b["backend"], b["processor"], b["precision"], "host", 2, b["shape"], "offline")
        for b in built)
    assert all(r["status"] == "ok" and r["throughput"]["batch_size"] == 2 for r in rows), rows


def test_measure_scenario_override_and_bad_values(two_shape_run, light_env, tmp_path):
    device_run = _copy_bundle(two_shape_run, tmp_path / "device")
    bad = _cli(["measure", str(device_run), "--batch-sizes", "0"], light_env)
    lines = [line for line in bad.stderr.splitlines() if line.strip()]
    assert bad.returncode == 2 and len(lines) == 1 and "--batch-sizes: 0" in lines[0], bad.stderr
    assert not (device_run / "on-device").exists()  # refused before anything was measured
    proc = _cli(["measure", str(device_run), "--device", "host", "--runtimes", "onnxruntime",
                 "--scenario", "multi-stream"], light_env)
    assert proc.returncode == 0, proc.stderr
    rows = _rows(device_run / "on-device" / "host")
    assert sorted((r["scenario"], r["batch_size"], r["shape"]) for r in rows) == [
        ("multi-stream", 8, "1x3x16x16"), ("multi-stream", 8, "1x3x24x32")]
    assert all(r["status"] == "ok" and r["key"].endswith("|multi-stream") for r in rows), rows
    assert "/ multi-stream / batch 8:" in proc.stdout


def test_a_device_measurement_replaces_the_builders_estimate_of_it(tmp_path):
    """A run built for a device holds estimates under the keys the device then measures: the merge
    takes the measurement (the report shows one row per key, the latest), while a row measured on
    another machine under the same key still is not replaced."""
    import numpy as np

    from edgebench.core.merge import merge_measurements
    from edgebench.core.records import Measurement, measurement_key
    from edgebench.core.store import RunStore
    from edgebench.measure.timing import TimingConfig, summarize

    def row(candidate, source, measured_on, timestamp):
        key = measurement_key(candidate, "onnxruntime", "gpu", "fp32", "nvidia-h200")
        ms = 0.05 if source == "estimated" else 0.11
        latency = summarize(np.full(20, ms), TimingConfig(), 3, 0.1, "ci-reached").to_dict()
        return Measurement(key=key, candidate=candidate, backend="onnxruntime", processor="gpu", precision="fp32",
                           device="nvidia-h200", source=source, status="ok", measured_on=measured_on,
                           latency=latency, timestamp=timestamp)

    device_rows = tmp_path / "device" / "measurements.jsonl"
    device_rows.parent.mkdir()
    device_rows.write_text("".join(json.dumps(row(c, "measured", "NVIDIA H200", 2.0).to_dict()) + "\n"
                                   for c in ("baseline", "other")))
    with RunStore(tmp_path / "run") as store:
        store.append(row("baseline", "estimated", "estimated from the builder", 1.0))
        store.append(row("other", "measured", "another box", 1.0))
        result = merge_measurements(store, device_rows.parent)
        latest = {m.candidate: m for m in store.measurements()}
        assert not store.dropped
    assert (result.added, result.conflicts) == (1, 1)
    assert latest["baseline"].source == "measured" and latest["baseline"].median_ms == 0.11
    assert latest["other"].measured_on == "another box"


def test_compare_on_a_light_install_says_what_it_lacks_in_one_line(light_env):
    proc = _cli(["compare", "tiny-cnn", "--data", "digits"], light_env)
    assert proc.returncode == 6 and "Traceback" not in proc.stderr, proc.stderr
    assert "needs the full install" in proc.stderr and "torch_pruning" in proc.stderr
    assert "pip install 'edgebench[full]'" in " ".join(proc.stderr.split())
