"""Models nobody here trained, with their real shapes and data, judged without labels.

Each model is exported to ONNX in the test and run through `edgebench compare` as a user would
(the CLI, in a subprocess): timed on ONNX Runtime and OpenVINO at the shapes given, INT8 built,
quality measured as agreement with the FP32 reference, and no traceback anywhere.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
FAST = ["--recipes", "baseline,ptq-int8", "--runtimes", "onnxruntime,openvino", "--timing-budget", "0.1"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from tests.helpers.any_models import build_all

    return build_all(tmp_path_factory.mktemp("any-models"))


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "edgebench.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)


def compare(model: Path, tmp_path: Path, *extra: str) -> tuple[subprocess.CompletedProcess, Path]:
    proc = run_cli(["compare", str(model), *FAST, "--runs-dir", str(tmp_path / "runs"), "--name", "run", *extra],
                   tmp_path)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    return proc, tmp_path / "runs" / "run"


def measurements(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "measurements.jsonl").read_text().splitlines() if line.strip()]


def check_run(proc, run: Path, shapes: list[str], int8: bool = True) -> list[dict]:
    """Timed on both runtimes at every shape, INT8 measured, quality = agreement with FP32."""
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = measurements(run)
    assert not [r for r in rows if r["status"] != "ok"], [(r["key"], r["error"]) for r in rows if r["status"] != "ok"]
    for shape in shapes:
        for backend in ("onnxruntime", "openvino"):
            got = [r for r in rows if r["shape"] == shape and r["backend"] == backend]
            assert any(r["candidate"] == "baseline" for r in got), (shape, backend)
            if int8:
                assert any(r["precision"] == "int8" for r in got), (shape, backend)
    for r in rows:
        assert r["accuracy"] is None  # never top-1 on labels the model was not built for
        assert r["quality"]["metric"] == "agreement" and r["quality"]["samples"] > 0
        assert 0.5 < r["quality"]["value"] <= 1.0 + 1e-6, r["quality"]
        assert {"cosine", "sqnr_db", "max_abs_error"} <= set(r["quality"]["per_output"][0])
    summary = (run / "summary.md").read_text().replace("\\", "")  # Markdown escapes undone
    assert "cosine vs FP32" in summary and "All measurements" in summary
    assert "top-1 accuracy" not in summary and "mnist, 10 classes" not in summary
    for shape in shapes:
        assert shape in summary
    report = json.loads((run / "report.json").read_text())
    assert len(report["measurements"]) == len(rows)
    return rows


def test_detector_with_dynamic_hw_at_several_shapes(models, tmp_path):
    proc, run = compare(models["detector"], tmp_path, "--input-shape", "x=1x3x32x48",
                        "--input-shape", "x=1x3x48x64")
    check_run(proc, run, ["1x3x32x48", "1x3x48x64"])
    info = json.loads((run / "run.json").read_text())
    sets = info["inputs"]["shape_sets"]
    assert [s["label"] for s in sets] == ["1x3x32x48", "1x3x48x64"]
    assert all(0 < s["eval_bytes"] <= 64 * 2 ** 20 for s in sets)


def test_detector_without_shape_is_refused_with_the_flag(models, tmp_path):
    proc = run_cli(["compare", str(models["detector"]), "--runs-dir", str(tmp_path)], tmp_path)
    assert proc.returncode != 0 and "Traceback" not in proc.stdout + proc.stderr
    assert "dims 2:H, 3:W" in proc.stdout + proc.stderr and "--input-shape x=1x3xHxW" in proc.stdout + proc.stderr


def test_fixed_non_square_input_from_an_image_folder(models, tmp_path):
    from PIL import Image

    folder = tmp_path / "images" / "nested"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (30 + 7 * i, 50, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    proc, run = compare(models["wide"], tmp_path, "--data", f"imagefolder:{tmp_path / 'images'}",
                        "--resize", "letterbox", "--mean-values", "123.7,116.3,103.5", "--scale-values", "58.4,57.1,57.4")
    rows = check_run(proc, run, ["1x3x24x40"])
    assert rows[0]["quality"]["samples"] == 6
    assert "top1_agreement" in rows[0]["quality"]["per_output"][0]  # [1,5] looks like class scores


def test_fixed_input_and_a_conflicting_input_size_is_an_error(models, tmp_path):
    proc = run_cli(["compare", str(models["wide"]), "--input-size", "32", "--runs-dir", str(tmp_path)], tmp_path)
    assert proc.returncode == 5 and "Traceback" not in proc.stdout + proc.stderr
    assert "fixed shape [1,3,24,40]" in proc.stdout + proc.stderr


def test_two_input_model_fed_by_name_from_npz(models, tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "inputs.npz", image=rng.standard_normal((8, 1, 3, 16, 16)).astype(np.float32),
             features=rng.standard_normal((8, 1, 8)).astype(np.float32))
    proc, run = compare(models["two_inputs"], tmp_path, "--data", f"npz:{tmp_path / 'inputs.npz'}")
    rows = check_run(proc, run, ["image=1x3x16x16,features=1x8"])
    assert [o["output"] for o in rows[0]["quality"]["per_output"]] == ["scores", "embedding"]


def test_token_transformer_encoder(models, tmp_path):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 100, (8, 1, 16)).astype(np.int64)
    mask = np.ones((8, 1, 16), np.int64)
    mask[:, :, 12:] = 0
    np.savez(tmp_path / "tokens.npz", input_ids=ids, attention_mask=mask)
    proc, run = compare(models["encoder"], tmp_path, "--data", f"npz:{tmp_path / 'tokens.npz'}")
    check_run(proc, run, ["input_ids=1x16,attention_mask=1x16"])


def test_non_image_input_needs_data_that_fits(models, tmp_path):
    proc = run_cli(["compare", str(models["encoder"]), "--runs-dir", str(tmp_path)], tmp_path)
    assert proc.returncode != 0 and "Traceback" not in proc.stdout + proc.stderr
    assert "is not an image" in proc.stdout + proc.stderr and "--data npz:" in proc.stdout + proc.stderr


def test_keypoint_regressor_is_never_scored_as_mnist(models, tmp_path):
    """An [N,10] output on the default built-in data: agreement, not MNIST top-1, and no claim that
    a single option beats every other."""
    proc, run = compare(models["keypoints"], tmp_path, "--input-shape", "x=1x3x32x32")
    check_run(proc, run, ["1x3x32x32"])
    assert "better than every other option" not in (run / "summary.md").read_text()
    # The static plot exists too, on the agreement axis it was measured on (SVG keeps text as comments).
    assert (run / "pareto.png").stat().st_size > 5000
    svg = (run / "pareto.svg").read_text()
    assert "cosine similarity with the FP32 outputs" in svg and "top-1" not in svg


def test_random_data_is_latency_only_and_says_so(models, tmp_path):
    proc = run_cli(["compare", str(models["keypoints"]), "--recipes", "baseline", "--runtimes", "onnxruntime",
                    "--timing-budget", "0.1", "--data", "random", "--input-size", "32",
                    "--runs-dir", str(tmp_path / "runs"), "--name", "run"], tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    rows = measurements(tmp_path / "runs" / "run")
    assert rows and all(r["status"] == "ok" and r["quality"]["metric"] == "none" for r in rows)
    summary = (tmp_path / "runs" / "run" / "summary.md").read_text()
    assert "not measured" in summary and "No pick" in summary and "**Ship" not in summary  # no pick line
    assert "| baseline | onnxruntime |" in summary  # latency shown all the same
    run = tmp_path / "runs" / "run"
    assert (run / "pareto.png").stat().st_size > 5000
    svg = (run / "pareto.svg").read_text()
    assert "latency only: quality" in svg and "median latency" in svg and "top-1" not in svg


def _silero_vad_onnx() -> Path | None:
    """The ONNX model that the installed `silero-vad` package ships, found without importing it."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "silero_vad_openvino_16k.onnx"
    return path if path.is_file() else None


def test_third_party_model_from_an_installed_package(tmp_path):
    """Silero VAD as its authors ship it for OpenVINO: audio [1,576] and an LSTM state [2,1,128]."""
    path = _silero_vad_onnx()
    if path is None:
        pytest.skip("silero-vad is not installed (pip install -e '.[test]' brings it)")
    t = np.arange(576) / 16000
    rng = np.random.default_rng(0)
    audio = np.stack([(0.3 * np.sin(2 * np.pi * (150 + 40 * i) * t) * (i % 2) + 0.01 * rng.standard_normal(576))
                      .astype(np.float32)[None] for i in range(8)])
    np.savez(tmp_path / "audio.npz", input=audio, state=np.zeros((8, 2, 1, 128), np.float32))
    proc, run = compare(path, tmp_path, "--data", f"npz:{tmp_path / 'audio.npz'}")
    rows = check_run(proc, run, ["input=1x576,state=2x1x128"], int8=False)
    assert any(r["precision"] == "int8" for r in rows)  # INT8 on at least one runtime


def test_user_metric_scores_against_npz_targets(models, tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "kp.npz", x=rng.standard_normal((6, 1, 3, 32, 32)).astype(np.float32),
             targets=np.full((6, 1, 10), 0.5, np.float32))
    proc = run_cli(["compare", str(models["keypoints"]), "--recipes", "baseline", "--runtimes", "onnxruntime",
                    "--timing-budget", "0.1", "--data", f"npz:{tmp_path / 'kp.npz'}",
                    "--metric", "tests.helpers.metrics:keypoint_pck",
                    "--runs-dir", str(tmp_path / "runs"), "--name", "run"], tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    rows = measurements(tmp_path / "runs" / "run")
    assert rows and all(r["quality"]["metric"] == "tests.helpers.metrics:keypoint_pck" for r in rows)
    assert all(r["quality"]["value"] == 1.0 for r in rows)  # sigmoid outputs are within 0.5 of 0.5
    assert "keypoint_pck" in (tmp_path / "runs" / "run" / "summary.md").read_text().replace("\\", "")


def test_torch_factory_with_token_inputs_is_exported_by_its_inputs(tmp_path):
    """A torch `module:factory` transformer encoder (int64 ids + mask): exported with the input
    specs given, then timed on ONNX Runtime and OpenVINO, quantized, judged against FP32."""
    rng = np.random.default_rng(1)
    mask = np.ones((6, 1, 16), np.int64)
    mask[:, :, 10:] = 0
    np.savez(tmp_path / "tokens.npz", input_ids=rng.integers(0, 100, (6, 1, 16)), attention_mask=mask)
    proc = run_cli(["compare", "tests.helpers.any_models:TinyEncoder", *FAST,
                    "--input-shape", "input_ids=1x16", "--input-shape", "attention_mask=1x16",
                    "--input-dtype", "input_ids=int64", "--input-dtype", "attention_mask=int64",
                    "--data", f"npz:{tmp_path / 'tokens.npz'}", "--runs-dir", str(tmp_path / "runs"), "--name", "run"],
                   tmp_path)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    check_run(proc, tmp_path / "runs" / "run", ["input_ids=1x16,attention_mask=1x16"])
