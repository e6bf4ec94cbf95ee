"""`edgebench gate` over stored runs: verdicts, bad input, CI outputs. The runs are the real tiny
compare run (conftest.tiny_run) and copies of its report.json with one thing changed."""
import copy
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from edgebench.core.errors import EdgebenchError
from edgebench.gate.command import GateOptions, run_gate
from edgebench.gate.inputs import load_gate_run
from edgebench.gate.outputs import github_annotations, junit_xml, markdown
from edgebench.gate.verdict import GateSettings, evaluate


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "edgebench.cli", *args], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, COLUMNS="200", **(env or {})))


@pytest.fixture(scope="module")
def report(tiny_run):
    _, result = tiny_run
    return json.loads((result.run_dir / "report.json").read_text())


def write(tmp_path, data, name="current.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def slowed(report, factor, which=lambda m: True):
    data = copy.deepcopy(report)
    for m in data["measurements"]:
        if m["status"] == "ok" and which(m):
            m["samples_ms"] = [s * factor for s in m["samples_ms"]]
    return data


def is_ort_baseline(m):
    return m["candidate"] == "baseline" and m["backend"] == "onnxruntime"


def test_run_against_itself_passes(tiny_run, report, tmp_path):
    _, result = tiny_run
    gate = evaluate(load_gate_run(result.run_dir, "baseline"), load_gate_run(write(tmp_path, report), "current"))
    ok = [m for m in report["measurements"] if m["status"] == "ok" and m["source"] == "measured"]
    assert gate.passed and len(gate.comparisons) == len(ok) >= 2
    for c in gate.comparisons:
        lat = next(k for k in c.checks if k.kind == "latency")
        assert lat.latency.ratio == 1.0 and lat.verdict == "pass"
    proc = run_cli("gate", "--baseline", str(result.run_dir), "--current", str(result.run_dir / "report.json"))
    assert proc.returncode == 0, proc.stderr
    assert "gate" in proc.stdout and "Traceback" not in proc.stderr


def test_slower_candidate_fails_only_where_it_is_slower(report, tmp_path):
    base = write(tmp_path, report, "base.json")
    cur = write(tmp_path, slowed(report, 1.3, is_ort_baseline))
    gate = evaluate(load_gate_run(base, "baseline"), load_gate_run(cur, "current"))
    failed = {(c.candidate, c.backend) for c, k in gate.regressions}
    assert failed == {("baseline", "onnxruntime")}
    (c, k), = gate.regressions
    assert k.kind == "latency" and k.latency.ratio == pytest.approx(1.3, rel=1e-6)
    proc = run_cli("gate", "--baseline", str(base), "--current", str(cur), "--max-slowdown", "5%")
    assert proc.returncode == 10, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "regression" in errors[0] and "Traceback" not in proc.stderr
    # A threshold above the slowdown lets it through.
    proc = run_cli("gate", "--baseline", str(base), "--current", str(cur), "--max-slowdown", "40%")
    assert proc.returncode == 0, proc.stderr


def test_accuracy_drop_and_size_growth_are_regressions(report, tmp_path):
    data = copy.deepcopy(report)
    for m in data["measurements"]:
        if is_ort_baseline(m) and m.get("accuracy"):
            m["accuracy"]["top1"] -= 0.03
    for c in data["candidates"]:
        if c["id"] == "baseline":
            c["file_bytes"] = {k: int(v * 1.5) for k, v in c["file_bytes"].items()}
    gate = evaluate(load_gate_run(write(tmp_path, report, "b.json"), "baseline"),
                    load_gate_run(write(tmp_path, data), "current"), GateSettings(max_accuracy_drop=1.0))
    kinds = {(c.backend, k.kind) for c, k in gate.regressions if c.candidate == "baseline"}
    assert ("onnxruntime", "accuracy") in kinds
    assert {k for b, k in kinds} == {"accuracy", "size"}
    assert not [1 for c, k in gate.regressions if c.candidate != "baseline"]
    acc = next(k for c, k in gate.regressions if k.kind == "accuracy")
    assert acc.baseline - acc.current == pytest.approx(3.0)


def test_environment_differences_warn_and_other_hardware_is_refused(report, tmp_path):
    data = copy.deepcopy(report)
    data["run"]["environment"]["governor"] = "powersave-test"
    gate = evaluate(load_gate_run(write(tmp_path, report, "b.json"), "baseline"),
                    load_gate_run(write(tmp_path, data), "current"))
    assert any("governor differs" in w for w in gate.warnings)
    data["run"]["environment"]["cpu_model"] = "Some Other CPU"
    proc = run_cli("gate", "--baseline", str(tmp_path / "b.json"), "--current", str(write(tmp_path, data)))
    assert proc.returncode == 5, proc.stderr
    assert "different devices" in proc.stderr and proc.stderr.count("\n") == 1


def gate_error(**options) -> EdgebenchError:
    with pytest.raises(EdgebenchError) as info:
        run_gate(GateOptions(**options))
    assert "\n" not in str(info.value)
    return info.value


def test_runs_for_different_target_devices_are_refused(report, tmp_path):
    data = copy.deepcopy(report)
    for m in data["measurements"]:
        m["device"] = "raspberry-pi-5"
    e = gate_error(baseline=write(tmp_path, report, "b.json"), current=write(tmp_path, data))
    assert e.exit_code == 5 and "different devices" in str(e)


@pytest.mark.parametrize("setup, code, needle", [
    ("missing", 3, "does not exist"),
    ("not-json", 4, "not a valid report.json"),
    ("no-measurements", 4, "no 'measurements' list"),
    ("empty-folder", 4, "not an edgebench run folder"),
    ("no-overlap", 11, "share no candidate"),
    ("no-ok", 11, "no successful measurement"),
])
def test_bad_input_is_one_line_with_its_own_exit_code(report, tmp_path, setup, code, needle):
    base = write(tmp_path, report, "b.json")
    cur = tmp_path / "current.json"
    if setup == "not-json":
        cur.write_text("{not json")
    elif setup == "no-measurements":
        cur.write_text(json.dumps({"run": {}}))
    elif setup == "empty-folder":
        cur = tmp_path / "folder"
        cur.mkdir()
    elif setup == "no-overlap":
        data = copy.deepcopy(report)
        for m in data["measurements"]:
            m["backend"] = "tensorrt"
        write(tmp_path, data)
    elif setup == "no-ok":
        data = copy.deepcopy(report)
        for m in data["measurements"]:
            m["status"] = "failed"
        write(tmp_path, data)
    e = gate_error(baseline=base, current=cur)
    assert e.exit_code == code and needle in str(e), str(e)


def test_bad_input_on_the_command_line_is_one_line(report, tmp_path):
    proc = run_cli("gate", "--baseline", str(tmp_path / "nope"), "--current", str(write(tmp_path, report)))
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "baseline" in proc.stderr and "does not exist" in proc.stderr
    proc = run_cli("gate", "--current", "x.json")
    assert proc.returncode == 2 and "give both" in proc.stderr


@pytest.mark.parametrize("options, needle", [
    ({}, "give either"),
    ({"baseline": Path("x.json")}, "give both"),
    ({"baseline": Path("x"), "current": Path("y"), "baseline_model": Path("m.onnx")}, "give either"),
    ({"baseline": Path("x"), "current": Path("y"), "settings": GateSettings(metric="p95")}, "--metric must be one of"),
    ({"baseline_model": Path("a.onnx"), "current_model": Path("b.onnx"), "budget_s": 0}, "must be positive"),
])
def test_usage_errors(options, needle):
    e = gate_error(**options)
    assert e.exit_code == 2 and needle in str(e)


def test_ci_outputs_escape_names_and_carry_the_verdict(report, tmp_path):
    data = slowed(report, 1.3, is_ort_baseline)
    evil = "evil|<script>alert(1)</script>\n::error::x%"
    for c in data["candidates"]:
        if c["id"] == "baseline":
            c["name"] = evil
    base = copy.deepcopy(report)
    for c in base["candidates"]:
        if c["id"] == "baseline":
            c["name"] = evil
    gate = evaluate(load_gate_run(write(tmp_path, base, "b.json"), "baseline"),
                    load_gate_run(write(tmp_path, data), "current"))
    text = markdown(gate)
    assert "<script>" not in text and "evil\\|&lt;script&gt;" in text
    assert text.startswith("❌") and text.count("\n| ") == len(gate.comparisons) + 1
    suite = ET.fromstring(junit_xml(gate)).find("testsuite")
    assert int(suite.get("failures")) == 1 and len(suite.findall("testcase")) == 3 * len(gate.comparisons)
    failure = suite.find("testcase/failure")
    assert "regression" in failure.get("message") and evil in "".join(
        case.get("classname") for case in suite.findall("testcase"))
    annotations = github_annotations(gate)
    errors = [a for a in annotations if a.startswith("::error")]
    assert len(errors) == 1 and "\n" not in errors[0] and "%0A::error::x%25" in errors[0]


def test_cli_writes_markdown_junit_json_and_github_summary(report, tmp_path):
    base = write(tmp_path, report, "b.json")
    cur = write(tmp_path, slowed(report, 1.3, is_ort_baseline))
    summary = tmp_path / "step-summary.md"
    proc = run_cli("gate", "--baseline", str(base), "--current", str(cur), "--markdown", str(tmp_path / "g.md"),
                   "--junit", str(tmp_path / "g.xml"), "--json", str(tmp_path / "g.json"),
                   env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)})
    assert proc.returncode == 10, proc.stderr
    assert (tmp_path / "g.md").read_text() == summary.read_text()
    assert "::error title=edgebench gate%3A latency regression::" in proc.stdout
    verdict = json.loads((tmp_path / "g.json").read_text())
    assert verdict["passed"] is False
    ratios = [c["checks"][0]["latency"]["ratio"] for c in verdict["comparisons"]
              if c["candidate"] == "baseline" and c["backend"] == "onnxruntime"]
    assert ratios == [pytest.approx(1.3)]
    ET.parse(tmp_path / "g.xml")


def test_percentile_choice_is_used(report, tmp_path):
    # The premise is built, not sampled: how many samples the fixture's timing happened to collect
    # (and how noisy they were) decided the p90 verdict before. 2000 seeded samples per side.
    rng = np.random.default_rng(12)
    samples = np.sort(rng.lognormal(np.log(1.0), 0.05, 2000))
    slower = samples.copy()
    slower[int(0.8 * len(slower)):] *= 2.0  # only the slowest fifth got slower: the median does not move
    base_data, data = copy.deepcopy(report), copy.deepcopy(report)
    for before, after in zip(base_data["measurements"], data["measurements"]):
        if is_ort_baseline(before):
            before["samples_ms"] = rng.permutation(samples).tolist()
            after["samples_ms"] = rng.permutation(slower).tolist()
    base = load_gate_run(write(tmp_path, base_data, "b.json"), "baseline")
    cur = load_gate_run(write(tmp_path, data), "current")
    p50 = evaluate(base, cur, GateSettings(metric="p50"))
    p90 = evaluate(base, cur, GateSettings(metric="p90"))
    assert p50.passed
    assert [(c.candidate, c.backend) for c, _ in p90.regressions] == [("baseline", "onnxruntime")]
