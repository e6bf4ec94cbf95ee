"""Nothing hidden, nothing mixed: every planned row reaches every report format, a run folder
keeps one set of settings, stored records are validated, and user-supplied names stay names."""
import csv
import io
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers.run_folder import ENV, make_run, measured
from rich.console import Console

from edgebench.core.cache import code_digest
from edgebench.core.errors import (
    CorruptInputError,
    IncompatibleError,
    MeasurementsFailed,
    NothingMeasured,
    RunSettingsMismatch,
    UsageError,
)
from edgebench.core.records import CandidateInfo
from edgebench.core.sessions import check_run_name, start_session
from edgebench.core.store import RunStore, write_json
from edgebench.report import render_run
from edgebench.report.table import load_tables

REPO = Path(__file__).resolve().parent.parent


def run_cli(*args, cwd=None):
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "edgebench.cli", *args], capture_output=True, text=True,
                          timeout=600, env=env, cwd=cwd)


# --- one folder, one set of settings ---------------------------------------------------------------

def test_rerun_with_other_settings_is_refused_naming_the_differences(tmp_path):
    store = make_run(tmp_path / "r", options={"epochs": 10.0, "seed": 0, "runs_dir": "a"})
    with pytest.raises(RunSettingsMismatch) as info:
        start_session(store, {"options": {"epochs": 0.1, "seed": 0, "runs_dir": "b"}}, ENV, code_digest())
    assert "epochs 10.0 -> 0.1" in str(info.value) and "runs_dir" not in str(info.value)
    assert "\n" not in str(info.value) and info.value.exit_code == 15
    # The same settings resume, as a new session entry; nothing is rewritten away.
    assert start_session(store, {"options": {"epochs": 10.0, "seed": 0, "runs_dir": "b"}}, dict(ENV, python="y"),
                         code_digest()) == 2
    sessions = store.run_info()["sessions"]
    assert [s["id"] for s in sessions] == [1, 2] and sessions[0]["environment"]["python"] == "3.x"
    assert all({"started", "settings", "environment"} <= set(s) for s in sessions)


def test_a_code_change_never_resumes_a_folder(tmp_path, monkeypatch):
    """Candidates stored by other code would be re-reported as this code's (the builder reuses a
    stored candidate by its recipe): a rerun after an upgrade gets a new folder, and --name into
    the old one is refused."""
    import edgebench.compare as compare_module
    from edgebench.compare import CompareOptions

    store = make_run(tmp_path / "r", options={"epochs": 10.0})
    with pytest.raises(RunSettingsMismatch, match=f"edgebench code {code_digest()} -> 0ther"):
        start_session(store, {"options": {"epochs": 10.0}}, ENV, "0ther")
    assert start_session(store, {"options": {"epochs": 10.0}}, ENV, code_digest()) == 2
    opts = CompareOptions(model="tiny-cnn")
    before = opts.run_id("tiny-cnn", "host")
    assert opts.run_id("tiny-cnn", "host") == before  # the same code resumes its folder
    monkeypatch.setattr(compare_module, "code_digest", lambda: "0ther")
    assert opts.run_id("tiny-cnn", "host") != before


def test_a_run_json_from_before_sessions_counts_as_one(tmp_path):
    store = RunStore(tmp_path)
    write_json(tmp_path / "run.json", {"options": {"epochs": 10.0}, "environment": ENV, "started": 1.0})
    # Which code made it is unknown, so even the same settings do not resume it.
    with pytest.raises(RunSettingsMismatch, match=r"edgebench code \(unset\) -> .*epochs 10.0 -> 2.0"):
        start_session(store, {"options": {"epochs": 2.0}}, ENV, code_digest())
    with pytest.raises(RunSettingsMismatch, match=r"edgebench code \(unset\)"):
        start_session(store, {"options": {"epochs": 10.0}}, ENV, code_digest())


def test_cli_refuses_a_reused_name_with_other_settings(tmp_path):
    store = make_run(tmp_path / "r1", options={"epochs": 10.0})
    before = (store.root / "measurements.jsonl").read_bytes()
    proc = run_cli("compare", "tiny-cnn", "--data", "digits", "--input-size", "32", "--epochs", "0.1",
                   "--runs-dir", str(tmp_path), "--name", "r1", "-r", "baseline")
    assert proc.returncode == 15, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "epochs 10.0 -> 0.1" in errors[0] and "Traceback" not in proc.stderr
    assert (store.root / "measurements.jsonl").read_bytes() == before


def test_gate_compares_fingerprints_per_row_not_the_last_sessions(tmp_path):
    from edgebench.gate.inputs import load_gate_run
    from edgebench.gate.verdict import evaluate

    base = make_run(tmp_path / "base")
    cur = make_run(tmp_path / "cur")
    # The current run was resumed on another machine: its last session says "Test CPU" like the
    # baseline, but its baseline row was measured in a session on "Other CPU".
    info = cur.run_info()
    info["sessions"] = [dict(info["sessions"][0], environment=dict(ENV, cpu_model="Other CPU")),
                        dict(info["sessions"][0], id=2, environment=ENV)]
    write_json(cur.root / "run.json", info)
    with pytest.raises(IncompatibleError, match="Other CPU"):
        evaluate(load_gate_run(base.root, "baseline"), load_gate_run(cur.root, "current"))
    info["sessions"][0]["environment"] = ENV
    write_json(cur.root / "run.json", info)
    assert evaluate(load_gate_run(base.root, "baseline"), load_gate_run(cur.root, "current")).passed


# --- every planned row in every report format --------------------------------------------------------

def test_skipped_unavailable_and_failed_rows_reach_every_report(tmp_path):
    store = make_run(tmp_path / "r")
    paths = render_run(store.root)
    html = paths["html"].read_text()
    assert "recipe <b>prune90</b> was not applied" in html and "ZeroDivisionError" in html
    assert "pip install &#39;edgebench[openvino]&#39;" in html and "engine build failed" in html
    assert "pytorch loads torch" in html
    statuses = {(r["name"], r["backend"], r["status"]) for r in json.loads(paths["json"].read_text())["rows"]}
    assert {("prune90", "(build)", "skipped"), ("small", "openvino", "unavailable"),
            ("small", "pytorch", "skipped"), ("small", "tensorrt", "failed")} <= statuses
    csv_rows = list(csv.DictReader(io.StringIO(paths["csv"].read_text())))
    assert {r["status"] for r in csv_rows} == {"ok", "failed", "skipped", "unavailable"}
    md = paths["markdown"].read_text()
    assert "**Not measured**" in md and "prune90" in md and "unavailable" in md and "**Failures**" in md


def test_plan_makes_rows_for_unavailable_runtimes_and_missing_formats(tmp_path, monkeypatch):
    from helpers.plans import built_in_inputs

    from edgebench.backends import Availability, availability
    from edgebench.backends import _availability_cache as cache
    from edgebench.backends.host import local_device
    from edgebench.backends.onnxruntime_runner import OnnxRuntimeRunner
    from edgebench.compare import CompareOptions, plan_tasks

    info = CandidateInfo(id="q-1", name="q", precision="int8", artifacts={"onnx-int8": "x.onnx"})
    (tmp_path / "x.onnx").write_bytes(b"")
    rows: list = []

    def unavailable(runtime):
        return Availability(False, reason=f"{runtime} broke", install="pip install it")

    tasks = plan_tasks(info, local_device(), tmp_path, CompareOptions(model="m"), "here",
                       built_in_inputs(tmp_path / "e.npz"), unavailable, rows)
    assert tasks == [] and rows and all(r.status == "unavailable" and "broke; pip install it" in r.error
                                        for r in rows)
    # An availability check that raises is an unavailable row with the error, not a silent drop.
    def broken(cls):
        raise OSError("libonnxruntime.so: cannot open shared object file")

    monkeypatch.setattr(OnnxRuntimeRunner, "availability", classmethod(broken))
    monkeypatch.delitem(cache, "onnxruntime", raising=False)
    rows = []
    plan_tasks(info, local_device(), tmp_path, CompareOptions(model="m", runtimes=["onnxruntime"]), "here",
               built_in_inputs(tmp_path / "e.npz"), availability, rows)
    assert [(r.backend, r.status) for r in rows] == [("onnxruntime", "unavailable")]
    assert "OSError: libonnxruntime.so" in rows[0].error
    cache.pop("onnxruntime", None)


# --- exit codes ----------------------------------------------------------------------------------------

def test_compare_outcome_codes(tmp_path):
    from edgebench.cli.outcome import outcome_error

    store = make_run(tmp_path / "r")
    error = outcome_error(store.measurements(), store.root)
    assert isinstance(error, MeasurementsFailed) and error.exit_code == 13 and "1 planned" in str(error)
    only_skips = [m for m in store.measurements() if m.status in ("skipped", "unavailable")]
    error = outcome_error(only_skips, store.root)
    assert isinstance(error, NothingMeasured) and error.exit_code == 14
    assert outcome_error([m for m in store.measurements() if m.ok], store.root) is None
    readme = (REPO / "README.md").read_text()
    for code in (8, 9, 13, 14, 15):
        assert f"| {code} |" in readme, f"exit code {code} is not documented"


def test_cli_nothing_measured_exits_14_and_still_writes_the_report(tmp_path):
    proc = run_cli("compare", "tiny-cnn", "--data", "digits", "--input-size", "32", "--epochs", "0.1",
                   "--runs-dir", str(tmp_path), "--name", "none", "-r", "baseline", "--runtimes", "tensorrt")
    assert proc.returncode == 14, proc.stderr[-2000:]
    assert (tmp_path / "none" / "report.html").is_file() and "Traceback" not in proc.stderr


# --- checkpoints ------------------------------------------------------------------------------------------

def test_partly_matching_checkpoint_is_an_error_unless_asked_for(tmp_path, digits):
    from edgebench.compress.builder import BaselineOptions, build_baseline
    from edgebench.models.zoo import build_module, resolve_model

    source = resolve_model("tiny-cnn")
    state = build_module(source, 10).state_dict()
    head = list(state)[-2:]  # the classifier's weight and bias
    partial = {k: v for k, v in state.items() if k not in head}
    partial["extra.weight"] = torch.zeros(1)
    path = tmp_path / "w.pt"
    torch.save(partial, str(path))
    with pytest.raises(IncompatibleError) as info:
        build_baseline(source, digits, BaselineOptions(weights=str(path)))
    message = str(info.value)
    assert all(k in message for k in head) and "extra.weight" in message and "--partial-weights" in message
    candidate = build_baseline(source, digits, BaselineOptions(weights=str(path), partial_weights=True))
    assert "2 missing, 1 unexpected" in candidate.lineage[0]["config"]["partial_weights"]
    assert any("--partial-weights" in n and head[0] in n for n in candidate.notes)


# --- corrupt state ----------------------------------------------------------------------------------------

def test_report_says_what_it_dropped_and_quarantine_moves_bad_lines(tmp_path):
    store = make_run(tmp_path / "r")
    with open(store.measurements_path, "ab") as f:
        f.write(b'[1, 2]\n{"key": 3}\n{"key": "half-wr')
    (store.candidate_dir("small-1") / "candidate.json").write_text("{not json")
    write_json(store.candidate_dir("gone") / "candidate.json",
               CandidateInfo(id="gone", name="gone", artifacts={"onnx": "candidates/gone/model.onnx"}).to_dict())
    run, cands, meas, rows = load_tables(store.root)
    dropped = run["dropped"]
    assert "a JSON list, not an object" in dropped["measurements.jsonl line 7"]
    assert "key" in dropped["measurements.jsonl line 8"]
    assert "torn" in dropped["measurements.jsonl line 9"]
    assert "not valid JSON" in dropped["candidate small-1"] and "missing" in dropped["candidate gone"]
    proc = run_cli("report", str(store.root))
    assert proc.returncode == 0 and proc.stdout.count("left out of the report") == len(dropped), proc.stderr
    md = (store.root / "summary.md").read_text()
    assert "Left out of this report" in md and "torn" in md
    assert "Left out of this report" in (store.root / "report.html").read_text()
    with store:
        assert store.quarantine() == 3
    assert len((store.root / "quarantine.jsonl").read_text().splitlines()) == 3
    fresh = RunStore(store.root)
    assert len(fresh.measurements()) == len(meas) and not fresh.dropped


def test_garbage_run_json_is_one_line_error(tmp_path):
    store = make_run(tmp_path / "r")
    for garbage in (b"\x00\xff garbage", b"[1, 2, 3]", b'{"figures_are_target": "no"}'):
        (store.root / "run.json").write_bytes(garbage)
        with pytest.raises(CorruptInputError):
            load_tables(store.root)
        proc = run_cli("report", str(store.root))
        assert proc.returncode == 4 and "Traceback" not in proc.stderr
        assert len([x for x in proc.stderr.splitlines() if x.strip()]) == 1


# --- inputs that escape their place -------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../../x", "/abs/path", "a/b", "..", ".", "", "~x", "a\\b"])
def test_run_names_are_names(name):
    with pytest.raises(UsageError, match="plain folder name"):
        check_run_name(name)


def test_cli_refuses_a_path_as_name(tmp_path):
    proc = run_cli("compare", "tiny-cnn", "--name", "../escaped", "--runs-dir", str(tmp_path / "runs"))
    assert proc.returncode == 2 and "plain folder name" in proc.stderr
    assert not (tmp_path / "escaped").exists()


def test_csv_cells_that_start_a_formula_are_quoted(tmp_path):
    store = make_run(tmp_path / "r", names={"small-1": "=cmd|' /C calc'!A0", "recipe": "@SUM(1+1)"})
    render_run(store.root)
    cells = [row for row in csv.reader(io.StringIO((store.root / "results.csv").read_text()))]
    names = {row[0] for row in cells[1:]}
    assert "'=cmd|' /C calc'!A0" in names and "'@SUM(1+1)" in names
    assert not any(cell.startswith(("=", "+", "@")) for row in cells for cell in row)


def test_rich_markup_in_names_and_paths_is_shown_verbatim(tmp_path):
    from edgebench.cli.progress import RichReporter
    from edgebench.cli.terminal import print_summary
    from edgebench.core.records import Measurement

    out = io.StringIO()
    console = Console(file=out, width=300)
    reporter = RichReporter(console)
    reporter.stage("candidate evil[/bogus]")
    reporter.note("recipe evil[/bogus] skipped: [bold]x")
    reporter.measured(Measurement(key="k", candidate="evil[/bogus]", backend="b", processor="cpu", precision="p",
                                  device="d", source="measured", status="failed", error="[red]boom\\"))
    store = make_run(tmp_path / "out[/x]", names={"small-1": "evil[/bogus]", "recipe": "r[bold]"})
    render_run(store.root)
    print_summary(console, store.root)
    text = out.getvalue()
    assert text.count("evil[/bogus]") >= 4 and "out[/x]" in text and "r[bold]" in text and "[red]boom\\" in text
    proc = run_cli("report", str(tmp_path / "x[bold]"))
    assert proc.returncode == 3 and "x[bold]" in proc.stderr


class _Boom:
    def __reduce__(self):
        return (Path.touch, (Path(os.environ["EDGEBENCH_CACHE"]) / "pwned",))


def test_module_cache_refuses_unsigned_entries(tmp_path, monkeypatch):
    from edgebench.core.module_cache import cached_module, module_path

    monkeypatch.setenv("EDGEBENCH_CACHE", str(tmp_path))
    planted = module_path("k")
    planted.parent.mkdir(parents=True)
    planted.write_bytes(pickle.dumps(_Boom()))
    built = cached_module("k", lambda: torch.nn.Linear(2, 2))
    assert isinstance(built, torch.nn.Linear) and not (tmp_path / "pwned").exists()
    again = cached_module("k", lambda: pytest.fail("a signed entry is reused"))
    assert torch.equal(again.weight, built.weight)


# --- narrowed excepts ----------------------------------------------------------------------------------

def test_prune_declines_only_on_torch_pruning_errors(digits, monkeypatch):
    import torch_pruning as tp

    from edgebench.compress.prune import PruneConfig, prune_channels
    from edgebench.models.zoo import build_module, resolve_model

    model = build_module(resolve_model("tiny-cnn"), 10)
    for error, expected in ((ZeroDivisionError("modulo by zero"), IncompatibleError),
                            (NotImplementedError("op"), IncompatibleError), (TypeError("a bug"), TypeError),
                            (KeyError("a bug"), KeyError)):
        def raising(*a, error=error, **k):
            raise error

        monkeypatch.setattr(tp.pruner, "MetaPruner", raising)
        with pytest.raises(expected):
            prune_channels(model, digits, PruneConfig())


def test_qat_fold_falls_back_only_when_fx_cannot_trace(monkeypatch):
    import torch.fx.experimental.optimization as opt

    from edgebench.compress.fake_quant import fold_batchnorm

    class Dynamic(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)

        def forward(self, x):
            return self.bn(self.conv(x)) if x.sum() > 0 else self.conv(x)

    model, folded = fold_batchnorm(Dynamic())
    assert not folded and isinstance(model, Dynamic)

    def bug(*a, **k):
        raise AttributeError("a bug")

    monkeypatch.setattr(opt, "fuse", bug)
    with pytest.raises(AttributeError):
        fold_batchnorm(Dynamic())


# --- piped output ------------------------------------------------------------------------------------------

def test_piped_tables_are_full_width_and_json_is_offered():
    proc = run_cli("backends")
    assert proc.returncode == 0
    lines = [line for line in proc.stdout.splitlines() if "onnxruntime" in line]
    assert lines and "available" in lines[0] and max(len(x) for x in proc.stdout.splitlines()) > 80
    found = json.loads(run_cli("backends", "--json").stdout)
    assert {"onnxruntime", "openvino"} <= {r["runtime"] for r in found}
    devices = json.loads(run_cli("devices", "--json").stdout)
    assert any(d["device"] == "jetson" or "jetson" in d["aliases"] for d in devices)
    proc = run_cli("devices")
    assert proc.returncode == 0 and "jetson-orin-nano" in proc.stdout
    assert any("jetson" in line and "tensorrt" in line for line in proc.stdout.splitlines())


def test_measured_helper_is_a_valid_record():
    from edgebench.core import validate

    assert validate.measurement(measured("a", 1.0).to_dict()).ok


def test_compare_json_summary_and_rows_carry_their_session(tmp_path):
    # One epoch: 0.1 leaves tiny-cnn at chance, where Ship (rightly) makes no pick.
    args = ("compare", "tiny-cnn", "--data", "digits", "--input-size", "32", "--epochs", "1", "-r",
            "baseline,evil.yaml", "--runtimes", "onnxruntime", "--timing-budget", "0.1",
            "--runs-dir", str(tmp_path), "--name", "j", "--json")
    # A recipe named like rich markup crashed compare with a MarkupError before.
    (tmp_path / "evil.yaml").write_text('name: "evil[/bogus]"\npasses: [{pass: prune, config: {ratio: 0.5, '
                                        'epochs: 0.1}}]\n')
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "candidate evil[/bogus]" in proc.stderr  # progress goes to stderr with --json, verbatim
    summary = json.loads(proc.stdout)
    assert summary["counts"]["measured"] >= 1 and summary["ship"]["backend"] == "onnxruntime"
    rows = [json.loads(x) for x in (tmp_path / "j" / "measurements.jsonl").read_text().splitlines()]
    assert rows and all(r["session"] == 1 for r in rows)
    again = run_cli(*args, cwd=tmp_path)
    assert again.returncode == 0
    assert json.loads((tmp_path / "j" / "run.json").read_text())["session"] == 2
    assert (tmp_path / "j" / "measurements.jsonl").read_text().splitlines() == \
        [json.dumps(r, sort_keys=True) for r in rows]  # the resume measured nothing again
