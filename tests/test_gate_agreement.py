"""Interleaved gate without labels: the current model's agreement with the baseline's outputs."""
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "edgebench.cli", *args], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, COLUMNS="200"))


def error_lines(proc):
    return [line for line in proc.stderr.splitlines() if line.startswith("error:")]


def save(path: Path, nodes, inputs, outputs, initializers=()) -> Path:
    import onnx
    from onnx import helper

    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def box_model(path: Path, weights: np.ndarray) -> Path:
    """A regression head (no class scores): x [1, 4, 8] @ w [8, 4] -> boxes [1, 4, 4]."""
    from onnx import TensorProto, helper, numpy_helper

    return save(path, [helper.make_node("MatMul", ["x", "w"], ["boxes"])],
                [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8])],
                [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 4, 4])],
                [numpy_helper.from_array(weights.astype(np.float32), "w")])


def dynamic_two_input_model(path: Path, scale: np.ndarray) -> Path:
    """Inputs a and b of dynamic length L: scores [1, L] = (a + b) * scale."""
    from onnx import TensorProto, helper, numpy_helper

    return save(path, [helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("Mul", ["s", "k"], ["scores"])],
                [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, "L"]) for n in ("a", "b")],
                [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, "L"])],
                [numpy_helper.from_array(scale.astype(np.float32), "k")])


def checks(path: Path):
    return json.loads(path.read_text())["comparisons"][0]["checks"]


def test_unlabelled_npz_gates_cosine_agreement_with_the_baseline(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((8, 4))
    baseline = box_model(tmp_path / "base.onnx", w)
    perturbed = box_model(tmp_path / "cur.onnx", w + rng.standard_normal(w.shape))
    np.savez(tmp_path / "x.npz", x=rng.standard_normal((16, 1, 4, 8)).astype(np.float32))  # no 'targets'
    data = f"npz:{tmp_path / 'x.npz'}"

    same = run_cli("gate", "--baseline-model", str(baseline), "--current-model", str(baseline), "--threads", "1",
                   "--budget", "1", "--max-slowdown", "50%", "--data", data, "--json", str(tmp_path / "same.json"),
                   "--junit", str(tmp_path / "same.xml"), "--markdown", str(tmp_path / "same.md"))
    assert same.returncode == 0, same.stderr
    _, quality, _ = checks(tmp_path / "same.json")
    assert quality["verdict"] == "pass" and quality["metric"] == "cosine agreement"
    assert quality["current"] == pytest.approx(1.0) and "output 'boxes' over 16 sample(s)" in quality["detail"]
    names = [c.get("name") for c in ET.parse(tmp_path / "same.xml").getroot().iter("testcase")]
    assert "accuracy (cosine agreement)" in names
    assert "cosine agreement 1.0000" in (tmp_path / "same.md").read_text()

    worse = run_cli("gate", "--baseline-model", str(baseline), "--current-model", str(perturbed), "--threads", "1",
                    "--budget", "1", "--max-slowdown", "50%", "--data", data, "--min-agreement", "0.99",
                    "--json", str(tmp_path / "worse.json"), "--junit", str(tmp_path / "worse.xml"))
    assert worse.returncode == 10, worse.stderr
    (line,) = error_lines(worse)
    assert "accuracy (cosine agreement)" in line and "min 0.99" in line, line
    _, quality, _ = checks(tmp_path / "worse.json")
    assert quality["verdict"] == "regression" and quality["current"] < 0.99
    failure = ET.parse(tmp_path / "worse.xml").getroot().find(".//failure")
    assert failure is not None and "cosine agreement" in failure.get("message")


def test_explicit_agreement_on_class_scores_is_top1_agreement(tmp_path):
    """Labels present but --quality agreement: the metric is top-1 agreement (outputs look like class scores)."""
    rng = np.random.default_rng(1)
    scale = rng.uniform(0.5, 2.0, 5)
    baseline = dynamic_two_input_model(tmp_path / "base.onnx", scale)
    flipped = dynamic_two_input_model(tmp_path / "cur.onnx", -scale)  # argmax becomes argmin
    a, b = rng.standard_normal((20, 1, 5)), rng.standard_normal((20, 1, 5))
    np.savez(tmp_path / "d.npz", a=a.astype(np.float32), b=b.astype(np.float32), targets=np.zeros(20, np.int64))
    common = ("--threads", "1", "--budget", "1", "--max-slowdown", "50%", "--data", f"npz:{tmp_path / 'd.npz'}",
              "--quality", "agreement", "--input-shape", "a=1x5", "--input-shape", "b=1x5")

    same = run_cli("gate", "--baseline-model", str(baseline), "--current-model", str(baseline), *common,
                   "--json", str(tmp_path / "same.json"))
    assert same.returncode == 0, same.stderr
    _, quality, _ = checks(tmp_path / "same.json")
    assert quality["metric"] == "top-1 agreement" and quality["current"] == 1.0 and quality["verdict"] == "pass"

    worse = run_cli("gate", "--baseline-model", str(baseline), "--current-model", str(flipped), *common,
                    "--json", str(tmp_path / "worse.json"))
    assert worse.returncode == 10, worse.stderr
    assert "top-1 agreement" in error_lines(worse)[0]
    _, quality, _ = checks(tmp_path / "worse.json")
    assert quality["verdict"] == "regression" and quality["current"] < 0.5


def test_bad_input_shapes_and_quality_options_are_one_line_usage_errors(tmp_path):
    from edgebench.core.errors import EdgebenchError
    from edgebench.gate.interleave import gate_models
    from edgebench.gate.verdict import GateSettings

    model = dynamic_two_input_model(tmp_path / "m.onnx", np.ones(5))
    cases = [(["a=1xq"], "auto", "x.npz", "positive integers"),
             (["zz=1x5"], "auto", "x.npz", "'zz'"),
             ([], "auto", "x.npz", "dynamic input dimensions"),
             (["a=1x5,1x6", "b=1x5,1x6"], "auto", "x.npz", "one shape per input"),
             (["a=1x5", "b=1x5"], "agreement", None, "needs --data"),
             (["a=1x5", "b=1x5"], "cosine", "x.npz", "--quality must be")]
    for shapes, quality, data, needle in cases:
        with pytest.raises(EdgebenchError) as info:
            gate_models(model, model, GateSettings(), input_shapes=shapes, quality=quality,
                        data=f"npz:{tmp_path / data}" if data else None)
        assert info.value.exit_code == 2 and needle in str(info.value) and "\n" not in str(info.value), str(info.value)

    bad = run_cli("gate", "--baseline-model", str(model), "--current-model", str(model), "--input-shape", "a=1x-5")
    assert bad.returncode == 2 and len(error_lines(bad)) == 1 and "Traceback" not in bad.stderr, bad.stderr
