"""The quiet-machine guard: contention is measured, flagged in every report format, and kept out
of Ship picks, gate verdicts and calibrated profiles. The tests that need a busy machine make one:
two processes that burn a core each."""
from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
from helpers.rows import top1_quality

from edgebench.measure.contention import (
    OTHERS_SHARE_LIMIT,
    LoadReading,
    assess,
    busy_reasons,
    sample_load,
)


@pytest.fixture
def burners():
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    sample_load(0.5)  # let them get going
    yield procs
    for p in procs:
        p.kill()
        p.wait()


def _reading(others=0.0, steal=0.0, load1=0.1, cores=4) -> LoadReading:
    return LoadReading(cores=cores, load1=load1, others_share=others, steal_share=steal)


def test_assess_reasons():
    quiet = _reading()
    steady = [1.0] * 50
    assert assess(quiet, quiet, steady, threads=2) == {**assess(quiet, quiet, steady, 2), "busy": False, "reasons": []}
    busy = assess(_reading(others=0.5), quiet, steady, threads=1)
    assert busy["busy"] and "before: other processes used 2.0 of 4 cores" in busy["reasons"]
    assert assess(quiet, _reading(steal=0.2), steady, 1)["busy"]
    assert assess(_reading(load1=9.0), quiet, steady, 1)["busy"]
    spread = assess(quiet, quiet, [1.0] * 40 + [3.0] * 10, 1)
    assert spread["busy"] and any("spread" in r for r in spread["reasons"])
    over = assess(_reading(others=0.5), _reading(others=0.5), steady, threads=4)
    assert any("oversubscribed" in r for r in over["reasons"])
    assert not busy_reasons(_reading(others=OTHERS_SHARE_LIMIT / 2))


def test_probe_sees_other_processes(burners):
    reading = sample_load(1.0)
    # two burners take min(2, cores) cores; whatever else runs here only adds to it
    assert reading.others_cores >= min(2, reading.cores) * 0.6, reading
    assert busy_reasons(reading)


def test_compare_under_contention_is_flagged_and_ship_card_says_unreliable(tmp_path, burners):
    from edgebench.compare import CompareOptions, compare
    from edgebench.measure.timing import TimingConfig

    opts = CompareOptions(model="tiny-cnn", device="host", data="digits", input_size=32, epochs=1,
                          runs_dir=tmp_path, recipes=["baseline", "ptq-int8"], runtimes=["onnxruntime"],
                          layer_profile=False, timing=TimingConfig(time_budget_s=0.3, min_iterations=20,
                                                                   warmup_iterations=3))
    notes = []

    class Notes:
        def stage(self, name): pass
        def progress(self, label, done, total): pass
        def measured(self, m): pass
        def note(self, text): notes.append(text)

    result = compare(opts, Notes())
    assert any("machine is busy" in n for n in notes), notes
    measured = [m for m in result.measurements if m.ok and m.source == "measured"]
    assert measured and all(m.extra["contention"]["busy"] for m in measured)
    run = result.run_dir
    assert json.loads((run / "run.json").read_text())["load_at_start"]["busy"]
    rows = json.loads((run / "report.json").read_text())["rows"]
    assert all(r["contended"] and any("busy" in f for f in r["flags"]) for r in rows if r["status"] == "ok")
    with open(run / "results.csv") as f:
        assert all(r["contended"] == "True" for r in csv.DictReader(f) if r["status"] == "ok")
    summary = (run / "summary.md").read_text()
    ship = summary[summary.index("**Ship"):]
    assert "UNRELIABLE" in ship.split("\n\n")[1], summary  # the first reason under the pick
    assert "Unreliable figures" in summary
    assert "Unreliable figures" in (run / "report.html").read_text()


def _row(key, ms, top1, contended=False):
    return {"key": key, "name": key, "candidate": key, "backend": "onnxruntime", "precision": "fp32",
            "executed_precision": None, "group": "host / cpu", "source": "measured", "status": "ok", "device": "host",
            "median_ms": ms, "top1": top1, "top1_ci_low": top1 - 0.05, "top1_ci_high": top1 + 0.05,
            "pareto": True, "contended": contended, **top1_quality(top1)}


def test_ship_pick_leaves_out_busy_figures():
    from edgebench.report.summary import recommendations

    rows = [_row("fast-but-busy", 0.1, 0.9, contended=True), _row("quiet", 1.0, 0.9)]
    (pick,) = recommendations(rows)
    assert pick["choice"]["key"] == "quiet"
    assert "left out of this pick" in pick["reasons"][0]
    (pick,) = recommendations([dict(r, contended=True) for r in rows])
    assert pick["reasons"][0].startswith("UNRELIABLE")


def test_gate_verdict_on_busy_figures_says_it_is_unreliable():
    from edgebench.core.records import Measurement
    from edgebench.gate.verdict import GateSettings, latency_check

    def m(ms, busy):
        return Measurement(key="k", candidate="c", backend="onnxruntime", processor="cpu", precision="fp32",
                           device="host", source="measured", status="ok", samples_ms=tuple([ms] * 30),
                           latency={"median_ms": ms}, extra={"contention": {"busy": busy, "reasons": ["x"]}})

    check = latency_check(m(1.0, False), m(2.0, True), GateSettings(resamples=200))
    assert check.verdict == "regression" and check.detail.startswith("UNRELIABLE")
    quiet = latency_check(m(1.0, False), m(2.0, False), GateSettings(resamples=200))
    assert quiet.verdict == "regression" and "UNRELIABLE" not in quiet.detail


def test_calibrate_refuses_a_busy_machine(tmp_path, burners):
    from edgebench.core.errors import BusyMachineError
    from edgebench.estimate.calibrate import write_profile

    with pytest.raises(BusyMachineError, match="busy"):
        write_profile("busy-box", tmp_path / "busy-box.yaml", quick=True)
    assert not (tmp_path / "busy-box.yaml").exists()
