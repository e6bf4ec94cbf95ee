"""A third-party runtime reaches `compare` through the `edgebench.backends` entry point alone.

The test installs a tiny distribution into a temporary folder (a `toyrt-0.1.dist-info` with its
entry points, and the module `toyrt`), puts that folder on PYTHONPATH, and runs the CLI. Nothing in
edgebench names the toy runtime: it is planned because the host profile takes every runtime that
says it is available on the CPU, and measured in the usual worker process (which finds the entry
point again, since it inherits PYTHONPATH). docs/extending.md shows the same runner.
"""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

TOYRT = '''\
"""A toy runtime: ONNX Runtime underneath, one CPU thread, fp32 only."""
from pathlib import Path

import numpy as np

from edgebench.backends.base import Availability, Placement, Runner, unavailable


class ToyRunner(Runner):
    name = "toy"
    formats = ("onnx",)
    devices = ("cpu",)
    precisions = ("fp32",)
    extra = "toyrt"

    @classmethod
    def availability(cls) -> Availability:
        try:
            import onnxruntime
        except ImportError as e:
            return unavailable(f"onnxruntime is not importable: {e}", cls.extra)
        return Availability(True, version="0.1", processors=("cpu",), precisions=cls.precisions)

    def load(self, artifact: Path, placement: Placement) -> None:
        import onnxruntime as ort

        self.placement = placement
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(artifact), options, providers=["CPUExecutionProvider"])

    def infer(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, inputs)  # named inputs in, every output in model order

    def close(self) -> None:
        self.session = None
'''


def install_toy_distribution(site: Path) -> None:
    (site / "toyrt.py").write_text(TOYRT)
    info = site / "toyrt-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toyrt\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[edgebench.backends]\ntoy = toyrt:ToyRunner\n")


def run_cli(site: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200", PYTHONPATH=os.pathsep.join([str(site), str(REPO)]))
    env.pop("EDGEBENCH_PLUGINS", None)  # the entry point alone must be enough
    return subprocess.run([sys.executable, "-m", "edgebench.cli", *args], capture_output=True, text=True,
                          timeout=600, env=env, cwd=site)


@pytest.mark.slow
def test_runtime_from_an_entry_point_is_planned_measured_and_reported(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    install_toy_distribution(site)

    listed = run_cli(site, "backends")
    assert listed.returncode == 0, listed.stderr
    toy_line = next((line for line in listed.stdout.splitlines() if "toy" in line.split()), None)
    assert toy_line is not None, listed.stdout

    runs = tmp_path / "runs"
    proc = run_cli(site, "compare", "tiny-cnn", "--data", "digits", "--input-size", "32", "--recipes", "baseline",
                   "--runtimes", "toy", "--epochs", "0.2", "--timing-budget", "0.3", "--runs-dir", str(runs),
                   "--name", "toy-run")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = runs / "toy-run"

    rows = [json.loads(line) for line in (run / "measurements.jsonl").read_text().splitlines() if line.strip()]
    toy = [r for r in rows if r["backend"] == "toy"]
    assert len(toy) == 1, rows  # planned once: its one processor x its one precision
    (m,) = toy
    assert m["status"] == "ok", m.get("error")
    # The toy runner cannot read back what precision ran: the row says so (None) rather than echo the request.
    assert (m["processor"], m["precision"], m["executed_precision"]) == ("cpu", "fp32", None)
    assert m["latency"]["median_ms"] > 0 and m["latency"]["iterations"] >= 5
    assert m["runtime_version"] == "0.1"  # from ToyRunner.availability, read in the worker
    assert m["accuracy"]["total"] == 360  # the deployed artifact was scored through the toy runtime
    assert {r["backend"] for r in rows} == {"toy"}  # --runtimes toy: nothing else was measured

    report = json.loads((run / "report.json").read_text())
    assert [(r["backend"], r["status"]) for r in report["rows"]] == [("toy", "ok")]
    with open(run / "results.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [(r["backend"], r["status"]) for r in table] == [("toy", "ok")]
    assert float(table[0]["median_ms"]) == pytest.approx(m["latency"]["median_ms"], rel=1e-3)
    assert ">toy<" in (run / "report.html").read_text()
