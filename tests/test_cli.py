"""Bad input from the command line: one line on stderr, a distinct non-zero exit, no traceback."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = str(Path(__file__).resolve().parent.parent)  # test this checkout, wherever the editable install points


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "edgebench.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300, env=dict(os.environ, COLUMNS="200", PYTHONPATH=REPO))


@pytest.mark.parametrize("args, code, needle", [
    (["compare", "mobilenetv3", "--device", "jetsn"], 3, "did you mean 'jetson'"),
    (["compare", "/no/such/model.onnx"], 3, "does not exist"),
    (["compare", "mobilenetv3", "--data", "imagefolder:/no/such/dir"], 3, "does not exist"),
    (["compare", "mobilenetv9"], 3, "unknown model"),
    (["compare", "tiny-cnn", "--runtimes", "tensorrtt"], 3, "unknown runtime"),
    (["compare", "tiny-cnn", "--recipes", "prune-typo"], 3, "unknown recipe"),
    # --data digits: the weights are opened after the data loads, and MNIST's text parse alone takes 5 s.
    (["compare", "tiny-cnn", "--data", "digits", "--input-size", "32", "--weights", "/no/such.pt"], 3, "does not exist"),
    (["compare", "tiny-cnn", "--data", "digits", "--transfer-data", "unlabelled.zip"], 2,
     "unknown --transfer-data 'unlabelled.zip'"),
    (["compare", "tiny-cnn", "--data", "digits", "--transfer-data", "digits"], 2, "is the labelled data itself"),
    (["compare", "tiny-cnn", "--data", "digits", "--transfer-data", "imagefolder:/no/such/dir"], 3, "does not exist"),
])
def test_user_errors_are_one_line(args, code, needle, tmp_path):
    proc = run_cli(*args, "--runs-dir", str(tmp_path), cwd=tmp_path)
    assert proc.returncode == code, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_corrupt_onnx_file(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not an onnx model at all")
    proc = run_cli("compare", str(bad), "--runs-dir", str(tmp_path))
    assert proc.returncode == 4 and "not a valid ONNX model" in proc.stderr


# `edgebench backends` and `edgebench devices` run in test_hardening.py's piped-output test.
