"""compare's terminal table tells rows of different scenarios and batch sizes apart (columns that
appear only when a run has several), in the full-width plain output a pipe gets too."""
import dataclasses
import io
import json

from helpers.run_folder import make_run, measured
from rich.console import Console

from edgebench.cli.consoles import PIPED_WIDTH
from edgebench.cli.terminal import print_summary, summary_json
from edgebench.core.records import measurement_key


def _plain(run_dir) -> str:
    out = io.StringIO()
    print_summary(Console(file=out, width=PIPED_WIDTH, no_color=True, soft_wrap=True), run_dir)
    return out.getvalue()


def _add(store, scenario: str, batch: int, ms: float, per_s=None) -> None:
    for candidate in ("baseline", "small-1"):
        m = measured(candidate, ms * (2 if candidate == "baseline" else 1))
        throughput = {"in_flight": 2, "completed": 50, "elapsed_s": 1.0, "batch_size": batch, "samples_per_s": per_s,
                      "idiom": "2 threads on one session", "stop_reason": "time-budget"} if per_s else None
        store.append(dataclasses.replace(m, key=measurement_key(candidate, "onnxruntime", "cpu", "fp32", "host", batch,
                                                                None, scenario),
                                         scenario=scenario, batch_size=batch, throughput=throughput))


def test_default_run_prints_no_scenario_or_batch_column(tmp_path):
    text = _plain(make_run(tmp_path / "r").root)
    header = next(line for line in text.splitlines() if "candidate" in line and "runtime" in line)
    assert "scenario" not in header and "batch" not in header
    assert "skipped: small / pytorch / int8: pytorch loads torch" in text  # message lines as before


def test_scenarios_and_batches_get_columns_and_rows_no_longer_look_alike(tmp_path):
    store = make_run(tmp_path / "r")
    _add(store, "single-stream", 8, 3.0)
    _add(store, "offline", 8, 5.0, per_s=1600.0)
    text = _plain(store.root)
    lines = text.splitlines()
    header = next(line for line in lines if "candidate" in line and "runtime" in line)
    assert "scenario" in header and "batch" in header
    small = [line for line in lines if line.lstrip("│┃| ").startswith("small ")]
    # The same candidate on the same runtime three times: the scenario and batch cells set them apart.
    assert len(small) == 3 and len(set(small)) == 3
    assert any("offline: 1,600 samples/s (2 in flight)" in line and "│ 8 " in line for line in small), small
    assert any("single-stream: p90 latency" in line and "│ 1 " in line for line in small), small
    assert "skipped: small / pytorch / int8 / single-stream / batch 1: pytorch loads torch" in text

    summary = json.loads(json.dumps(summary_json(store.root, {})))
    assert {(r["scenario"], r["batch_size"]) for r in summary["pareto"]} <= {("single-stream", 1),
                                                                            ("single-stream", 8), ("offline", 8)}
    assert all("scenario" in r and "batch_size" in r for r in summary["not_measured"])
